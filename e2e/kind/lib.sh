# lib.sh — shared settings and helpers of the e2e/kind scripts. Source it; do not run it.
#
# Everything built here is cached by version under $IRONLB_CACHE (default ~/.cache/ironlb),
# outside the tree, so a fresh clone on the same machine reuses it and `git clean` never costs a
# 30-minute rebuild.

# shellcheck disable=SC2034 # the settings below are used by the scripts that source this file
set -euo pipefail

E2E_KIND_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$E2E_KIND_DIR/../.." && pwd)
IRONLB_CACHE="${IRONLB_CACHE:-$HOME/.cache/ironlb}"
export IRONLB_CACHE
export PATH="/usr/local/go/bin:$PATH"

# modver DIR MODULE prints the version that the go.mod in DIR requires of MODULE.
modver() {
  awk -v m="$2" '($1=="require" && $2==m) {print $3} ($1==m) {print $2}' "$1/go.mod" | head -n1
}

K8S_VERSION=$(modver "$REPO_ROOT/hack/tools/kubernetes" k8s.io/kubernetes)
KIND_VERSION=$(modver "$REPO_ROOT/hack/tools/kind" sigs.k8s.io/kind)
ETCD_VERSION=$(modver "$E2E_KIND_DIR/tools/etcd" go.etcd.io/etcd/server/v3)
COREDNS_VERSION=$(modver "$E2E_KIND_DIR/tools/coredns" github.com/coredns/coredns)
# Tags kubeadm $K8S_VERSION looks for (cmd/kubeadm/app/constants); kind's containerd config
# names pause:3.10 as the sandbox image, so both pause tags are loaded.
ETCD_TAG="registry.k8s.io/etcd:${ETCD_VERSION#v}-0"
COREDNS_TAG="registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
PAUSE_TAGS=(registry.k8s.io/pause:3.10.2 registry.k8s.io/pause:3.10)
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

NODE_IMAGE="${NODE_IMAGE:-ironlb/kind-node:$K8S_VERSION}"
STOCK_NODE_IMAGE="kindest/node:$K8S_VERSION"
CLUSTER_NAME="${CLUSTER_NAME:-kind}"
KIND_NETWORK=kind
CLIENT_IMAGE="${CLIENT_IMAGE:-nicolaka/netshoot}"
LOCAL_CLIENT_IMAGE=ironlb/netshoot:dev
IRONLB_IMAGE=ironlb/ironlb:dev
IRONLB_COMPAT_IMAGE_PREFIX=ironlb/ # + speaker:dev, controller:dev (Dockerfile targets)
APP_IMAGE=ironlb/e2e-app:dev
FRR_IMAGE=ironlb/frr:dev
PODROUTES_IMAGE=ironlb/podroutes:dev

KIND="$IRONLB_CACHE/kind/$KIND_VERSION/kind"
K8S_BIN="$IRONLB_CACHE/k8s/$K8S_VERSION/bin"
export KUBECONFIG="${KUBECONFIG:-$IRONLB_CACHE/kubeconfig-$CLUSTER_NAME}"

log() { echo ">> $*" >&2; }
die() { echo ">> ERROR: $*" >&2; exit 1; }

# timed NAME CMD... runs CMD and logs how long it took, so cold-cache costs are visible.
timed() {
  local name=$1 start rc=0
  shift
  start=$(date +%s)
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    log "$name: done in $(( $(date +%s) - start ))s"
  else
    log "$name: FAILED after $(( $(date +%s) - start ))s (exit $rc)"
  fi
  return "$rc"
}

# gobuild_cached MODDIR PKG OUT [LDFLAGS] builds the command PKG from the tools module MODDIR
# into OUT unless OUT exists. A lock next to OUT makes concurrent callers wait, not rebuild.
gobuild_cached() {
  local moddir=$1 pkg=$2 out=$3 ldflags=${4:-}
  mkdir -p "$(dirname "$out")"
  (
    flock 8
    if [ -x "$out" ]; then
      exit 0
    fi
    log "building $(basename "$out") from $pkg (cold: minutes)"
    local start
    start=$(date +%s)
    (cd "$moddir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
    log "built $(basename "$out") in $(( $(date +%s) - start ))s"
  ) 8>"$out.lock"
}

ensure_kind() {
  gobuild_cached "$REPO_ROOT/hack/tools/kind" sigs.k8s.io/kind "$KIND"
}

# ensure_apt PKG... installs the Debian packages that are missing.
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
  fi
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# registry_reachable answers quickly whether Docker Hub / registry.k8s.io can be used at all.
registry_reachable() {
  [ "${IRONLB_OFFLINE:-}" = 1 ] && return 1
  curl -s -o /dev/null --max-time 3 https://registry-1.docker.io/v2/ 2>/dev/null
}

kubectl() { "$K8S_BIN/kubectl" "$@"; }

# run_shown prints a command the way a user would type it, then runs it.
run_shown() {
  printf '+ %s\n' "$*"
  "$@"
}

# ensure_debian_image makes ironlb/debian:<suite> (debootstrap → docker import), the base of
# every Debian-based image built here.
DEBIAN_IMAGE="ironlb/debian:$DEBIAN_SUITE"
ensure_debian_image() {
  have_image "$DEBIAN_IMAGE" && return 0
  local rootfs
  rootfs=$("$E2E_KIND_DIR/debian-rootfs.sh" | tail -n1)
  log "docker import $DEBIAN_IMAGE"
  docker import "$rootfs" "$DEBIAN_IMAGE" >/dev/null
}

# resolve_client_image prints the image of the client container on the kind network:
# $CLIENT_IMAGE (default nicolaka/netshoot) when present or pullable, else the local stand-in.
resolve_client_image() {
  if have_image "$CLIENT_IMAGE"; then
    echo "$CLIENT_IMAGE"
  elif registry_reachable && docker pull -q "$CLIENT_IMAGE" >/dev/null 2>&1; then
    echo "$CLIENT_IMAGE"
  else
    echo "$LOCAL_CLIENT_IMAGE"
  fi
}

# kind_cluster_exists answers whether `kind get clusters` lists $CLUSTER_NAME.
kind_cluster_exists() {
  [ -x "$KIND" ] && "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"
}

# dbuild is `docker build` with the legacy builder (Debian's docker.io has no BuildKit) minus
# the client's deprecation notice about it.
dbuild() {
  DOCKER_BUILDKIT=0 docker build "$@" 2> >(grep -v -e 'legacy builder is deprecated' \
    -e 'BuildKit is currently disabled' -e 'environment-variable\.$' -e '^$' >&2)
}
