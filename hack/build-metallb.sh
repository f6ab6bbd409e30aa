#!/usr/bin/env bash
# build-metallb.sh [--no-images] [--no-load] — MetalLB's controller and speaker, built from the
# Go module pinned in hack/tools/metallb (v0.12.1) as the baseline ironlb is compared with: the
# migration e2e test installs it, the benchmarks run side by side with it.
#
# Binaries are built once per version into $IRONLB_CACHE/metallb/<version>/ (CGO_ENABLED=0,
# static), with the same lock-and-cache helper as the kind node binaries, so a second caller
# waits instead of building twice. Images are `FROM scratch` + the binary, with MetalLB's
# entrypoints (/speaker, /controller) and tags (quay.io/metallb/<component>:<version>), so
# MetalLB's own manifest runs them unchanged; they are loaded into the kind cluster when it
# exists (--no-load skips that). The last two lines of output are the image names.
#
# Cold cost (2 busy cores, empty Go build and module caches): 4 minutes for both binaries,
# mostly the module download and client-go 0.20; cached: seconds (image build + kind load).
source "$(dirname "$0")/../e2e/kind/lib.sh"

images=1 load=1
for a in "$@"; do
  case $a in
  --no-images) images=0 ;;
  --no-load) load=0 ;;
  *) die "unknown argument $a (want --no-images, --no-load)" ;;
  esac
done

tools="$REPO_ROOT/hack/tools/metallb"
version=$(modver "$tools" go.universe.tf/metallb)
out="$IRONLB_CACHE/metallb/$version"
for c in controller speaker; do
  gobuild_cached "$tools" "go.universe.tf/metallb/$c" "$out/$c"
done
[ "$images" = 1 ] || { echo "$out"; exit 0; }

"$E2E_KIND_DIR/docker-up.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/ironlb-metallb.XXXXXX")
trap 'rm -rf "$work"' EXIT
names=()
for c in controller speaker; do
  tag="quay.io/metallb/$c:$version"
  mkdir -p "$work/$c"
  cp "$out/$c" "$work/$c/$c"
  printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' "$c" "$c" "$c" >"$work/$c/Dockerfile"
  log "docker build $tag"
  dbuild -q -t "$tag" "$work/$c" >/dev/null
  if [ "$load" = 1 ] && kind_cluster_exists; then
    log "kind load docker-image $tag"
    "$KIND" load docker-image --name "$CLUSTER_NAME" "$tag" >/dev/null
  fi
  names+=("$tag")
done
printf '%s\n' "${names[@]}"
