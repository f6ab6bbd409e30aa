#!/usr/bin/env bash
# images.sh — builds the project's images and loads the in-cluster ones into the kind cluster:
#   ironlb/ironlb:dev     the Dockerfile at the repo root, around a static bin/ironlb
#   ironlb/speaker:dev, ironlb/controller:dev   the same binary as MetalLB's /speaker and
#                         /controller (Dockerfile targets), for MetalLB's own manifest
#   ironlb/e2e-app:dev    e2e/app, the walkthrough's web app
#   ironlb/podroutes:dev  e2e/podroutes, the pod routes between kind nodes
#   ironlb/netshoot:dev   the client container, unless $CLIENT_IMAGE (nicolaka/netshoot) is at hand
#   ironlb/frr:dev        Debian's FRR, the BGP router of the BGP e2e tests
# The first three go into the cluster with `kind load docker-image` (when the cluster exists;
# --no-load skips that). Go builds are incremental, Debian images are built once. Exit status 3:
# everything but ironlb/ironlb:dev is ready (./cmd/ironlb does not build).
source "$(dirname "$0")/lib.sh"

load=1
[ "${1:-}" = --no-load ] && load=0

"$E2E_KIND_DIR/docker-up.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/ironlb-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

# debian_image TAG PACKAGES... builds a Debian image with PACKAGES, once.
debian_image() {
  local tag=$1 dir="$work/debian-${1//[:\/]/-}"
  shift
  have_image "$tag" && return 0
  ensure_debian_image
  mkdir -p "$dir"
  cat >"$dir/Dockerfile" <<DOCKERFILE
FROM $DEBIAN_IMAGE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $* \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
DOCKERFILE
  log "docker build $tag (apt-get inside)"
  timed "image $tag" dbuild -q -t "$tag" "$dir" >/dev/null
}
client=$(resolve_client_image)
if [ "$client" = "$LOCAL_CLIENT_IMAGE" ]; then
  debian_image "$LOCAL_CLIENT_IMAGE" ca-certificates curl iproute2 iputils-ping arping ndisc6 \
    tcpdump dnsutils procps iptables jq
fi
log "client image: $client"
debian_image "$FRR_IMAGE" frr frr-pythontools iproute2 iputils-ping tcpdump procps

# go_scratch_image TAG PKG wraps the static binary of PKG (a package of the main module) in an
# empty image whose entrypoint it is.
go_scratch_image() {
  local tag=$1 pkg=$2 dir
  dir="$work/$(basename "$2")"
  mkdir -p "$dir"
  (cd "$REPO_ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/bin" "$pkg")
  printf 'FROM scratch\nCOPY bin /%s\nENTRYPOINT ["/%s"]\n' "$(basename "$pkg")" "$(basename "$pkg")" >"$dir/Dockerfile"
  log "docker build $tag"
  dbuild -q -t "$tag" "$dir" >/dev/null
}
go_scratch_image "$APP_IMAGE" ./e2e/app
go_scratch_image "$PODROUTES_IMAGE" ./e2e/podroutes


# Loading is idempotent; without crictl in the node kind cannot tell the image is there already,
# so it loads again (a few seconds for these small images).
load_image() {
  [ "$load" = 1 ] || return 0
  if ! kind_cluster_exists; then
    log "no kind cluster $CLUSTER_NAME: $1 built, not loaded"
    return 0
  fi
  log "kind load docker-image $1"
  "$KIND" load docker-image --name "$CLUSTER_NAME" "$1" >/dev/null
}
load_image "$APP_IMAGE"
load_image "$PODROUTES_IMAGE"

# The ironlb binary is the part under development: when it does not build, the other images
# are still usable (exit status 3 tells cluster-up.sh so).
ironlb_ok=1
log "go build bin/ironlb"
if (cd "$REPO_ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/ironlb ./cmd/ironlb); then
  log "docker build $IRONLB_IMAGE"
  dbuild -q -t "$IRONLB_IMAGE" "$REPO_ROOT" >/dev/null
  load_image "$IRONLB_IMAGE"
  # The same binary as MetalLB's /speaker and /controller, for MetalLB's own manifest.
  for target in speaker controller; do
    img=$IRONLB_COMPAT_IMAGE_PREFIX$target:dev
    log "docker build --target $target $img"
    dbuild -q --target "$target" -t "$img" "$REPO_ROOT" >/dev/null
    load_image "$img"
  done
else
  ironlb_ok=0
  log "WARNING: ./cmd/ironlb does not build; $IRONLB_IMAGE not updated"
fi

for img in "$IRONLB_IMAGE" "${IRONLB_COMPAT_IMAGE_PREFIX}speaker:dev" "${IRONLB_COMPAT_IMAGE_PREFIX}controller:dev" "$APP_IMAGE" "$PODROUTES_IMAGE" "$client" "$FRR_IMAGE"; do
  if have_image "$img"; then
    log "  $img $(docker image inspect -f '{{.Size}}' "$img" | numfmt --to=iec)"
  fi
done
# Rebuilt tags leave dangling images behind; clean them only in a Docker engine of our own.
if [ -s "$IRONLB_CACHE/docker/started-by-ironlb" ]; then
  docker image prune -f >/dev/null
fi
[ "$ironlb_ok" = 1 ] || exit 3
