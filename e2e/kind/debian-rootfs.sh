#!/usr/bin/env bash
# debian-rootfs.sh — a minimal Debian root filesystem tarball from debootstrap, cached under
# $IRONLB_CACHE/debian/. It is the base of every offline image (kind node, client, FRR).
# Prints the tarball's path on its last line.
source "$(dirname "$0")/lib.sh"

out="$IRONLB_CACHE/debian/$DEBIAN_SUITE-minbase.tar"
mkdir -p "$(dirname "$out")"
exec 8>"$out.lock"
flock 8
if [ ! -s "$out" ]; then
  ensure_apt debootstrap
  dir=$(mktemp -d "$IRONLB_CACHE/debian/rootfs.XXXXXX")
  trap 'rm -rf "$dir"' EXIT
  log "debootstrap $DEBIAN_SUITE from $DEBIAN_MIRROR (cold: ~2 min)"
  start=$(date +%s)
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$dir" "$DEBIAN_MIRROR" >"$out.log" 2>&1 ||
    die "debootstrap failed, see $out.log"
  # Keep image layers small; apt in the image builds fetches fresh lists anyway.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" --numeric-owner -cf "$out.tmp" .
  mv "$out.tmp" "$out"
  log "debian rootfs in $(( $(date +%s) - start ))s: $(du -h "$out" | cut -f1)"
fi
echo "$out"
