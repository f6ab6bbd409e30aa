#!/usr/bin/env bash
# node-image.sh — makes the kind node image $NODE_IMAGE (default ironlb/kind-node:<k8s version>)
# available in Docker. Nothing to do when the tag exists. Otherwise, when a registry answers, the
# stock kindest/node image is pulled and tagged; when none does (these machines), the image is
# assembled offline, doing what `kind build node-image` does without its pulls:
#   1. Debian rootfs (debian-rootfs.sh) → docker import → ironlb/debian:<suite>
#   2. node base: Debian's systemd/containerd/runc/CNI plugins + kind's base files (node/)
#   3. Kubernetes, etcd, CoreDNS and pause binaries (build-bins.sh, pause/) → the images kubeadm
#      expects, under its exact tags
#   4. node = base + kubeadm/kubelet/kubectl + those images preloaded into containerd
# Every step is cached (binaries under $IRONLB_CACHE, images in Docker, whose data-root is under
# $IRONLB_CACHE too). Set IRONLB_NODE_IMAGE_REBUILD=1 to force step 4.
source "$(dirname "$0")/lib.sh"
export DOCKER_BUILDKIT=0

"$E2E_KIND_DIR/docker-up.sh"

if have_image "$NODE_IMAGE" && [ "${IRONLB_NODE_IMAGE_REBUILD:-}" != 1 ]; then
  log "node image $NODE_IMAGE present"
  exit 0
fi
if registry_reachable; then
  log "registry reachable: pulling $STOCK_NODE_IMAGE"
  if docker pull "$STOCK_NODE_IMAGE" >&2; then
    docker tag "$STOCK_NODE_IMAGE" "$NODE_IMAGE"
    log "node image $NODE_IMAGE = $STOCK_NODE_IMAGE"
    exit 0
  fi
  log "pull failed, building the node image offline"
fi

total_start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/ironlb-node-image.XXXXXX")
builder=""
cleanup() {
  [ -n "$builder" ] && docker rm -f "$builder" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# image_from_dir TAG DIR builds DIR's Dockerfile as TAG unless TAG exists.
image_from_dir() {
  if have_image "$1"; then return 0; fi
  log "docker build $1"
  dbuild -q -t "$1" "$2" >/dev/null
}

# 1. Debian base.
ensure_debian_image
debian_image=$DEBIAN_IMAGE

# 2. Node base. Its tag names kind's version and a hash of our inputs, so edits rebuild it.
ensure_kind
kind_src="$(cd "$REPO_ROOT/hack/tools/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)/images/base/files"
base_hash=$(cat "$E2E_KIND_DIR/node/Dockerfile.base" "$E2E_KIND_DIR/node/cni-template.json" | sha256sum | cut -c1-12)
base_image="ironlb/kind-base:$KIND_VERSION-$base_hash"
if ! have_image "$base_image"; then
  mkdir -p "$work/base"
  cp -r "$kind_src" "$work/base/files"
  chmod -R u+w "$work/base/files"
  cp "$E2E_KIND_DIR/node/Dockerfile.base" "$E2E_KIND_DIR/node/cni-template.json" "$work/base/"
  log "docker build $base_image (apt-get inside; cold: a few minutes)"
  timed "node base image" dbuild -q --build-arg "BASE_IMAGE=$debian_image" \
    -f "$work/base/Dockerfile.base" -t "$base_image" "$work/base" >/dev/null
fi

# 3. Binaries and the images kubeadm pulls (never pulled here: they are preloaded).
timed "binaries" "$E2E_KIND_DIR/build-bins.sh"
pause_bin="$IRONLB_CACHE/pause/$(go version | awk '{print $3}')/pause"
gobuild_cached "$REPO_ROOT" ./e2e/kind/pause "$pause_bin"

# scratch_image TAG BINARY NAME [ENTRYPOINT...] wraps one static binary in an empty image.
scratch_image() {
  local tag=$1 bin=$2 name=$3 dir
  shift 3
  have_image "$tag" && return 0
  dir="$work/img-$name"
  mkdir -p "$dir"
  cp "$bin" "$dir/$name"
  {
    echo "FROM scratch"
    echo "COPY $name $1"
    echo "ENV PATH=/usr/local/bin:/usr/bin:/bin"
    if [ $# -gt 1 ]; then echo "ENTRYPOINT [\"$2\"]"; fi
  } >"$dir/Dockerfile"
  image_from_dir "$tag" "$dir"
}
images=()
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  scratch_image "registry.k8s.io/$c:$K8S_VERSION" "$K8S_BIN/$c" "$c" "/usr/local/bin/$c"
  images+=("registry.k8s.io/$c:$K8S_VERSION")
done
scratch_image "$ETCD_TAG" "$IRONLB_CACHE/etcd/$ETCD_VERSION/etcd" etcd /usr/local/bin/etcd
scratch_image "$COREDNS_TAG" "$IRONLB_CACHE/coredns/$COREDNS_VERSION/coredns" coredns /coredns /coredns
scratch_image "${PAUSE_TAGS[0]}" "$pause_bin" pause /pause /pause
for t in "${PAUSE_TAGS[@]:1}"; do docker tag "${PAUSE_TAGS[0]}" "$t"; done
images+=("$ETCD_TAG" "$COREDNS_TAG" "${PAUSE_TAGS[@]}")
# kube-proxy programs iptables/nftables, so it needs those tools: the Debian base, not scratch.
proxy_tag="registry.k8s.io/kube-proxy:$K8S_VERSION"
if ! have_image "$proxy_tag"; then
  mkdir -p "$work/img-kube-proxy"
  cp "$K8S_BIN/kube-proxy" "$work/img-kube-proxy/"
  cat >"$work/img-kube-proxy/Dockerfile" <<EOF
FROM $debian_image
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iptables nftables conntrack ipset kmod && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY kube-proxy /usr/local/bin/kube-proxy
EOF
  log "docker build $proxy_tag (apt-get inside)"
  timed "kube-proxy image" dbuild -q -t "$proxy_tag" "$work/img-kube-proxy" >/dev/null
fi
images+=("$proxy_tag")

# 4. Assemble: binaries copied in, images imported into the node's containerd while it runs
# inside a throwaway container, then committed with kind's entrypoint restored.
log "assembling $NODE_IMAGE from $base_image"
step_start=$(date +%s)
builder="ironlb-node-build-$$"
docker run -d --privileged --name "$builder" --entrypoint=sleep "$base_image" infinity >/dev/null
for c in kubeadm kubelet kubectl; do
  docker cp "$K8S_BIN/$c" "$builder:/usr/bin/$c"
done
docker exec "$builder" sh -c "echo $K8S_VERSION >/kind/version && mkdir -p /kind/manifests"
docker exec -d "$builder" sh -c 'containerd >/var/log/containerd-build.log 2>&1'
for _ in $(seq 1 30); do
  docker exec "$builder" ctr version >/dev/null 2>&1 && break
  sleep 1
done
docker exec "$builder" ctr version >/dev/null 2>&1 ||
  die "containerd did not start in the build container: $(docker exec "$builder" tail -n 20 /var/log/containerd-build.log)"
docker save "${images[@]}" | docker exec -i "$builder" ctr -n k8s.io images import --no-unpack - >/dev/null
docker exec "$builder" ctr -n k8s.io images ls -q | grep -v '^sha256:' | sed 's/^/>>   preloaded /' >&2
docker exec "$builder" sh -c 'kill $(pidof containerd); sleep 1; rm -f /var/log/containerd-build.log'
docker commit \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
  --change 'CMD []' \
  "$builder" "$NODE_IMAGE" >/dev/null
# STOPSIGNAL and ENV container=docker come from the base image (docker commit keeps them).
log "assembled in $(( $(date +%s) - step_start ))s"
log "node image $NODE_IMAGE built in $(( $(date +%s) - total_start ))s ($(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" | numfmt --to=iec))"
