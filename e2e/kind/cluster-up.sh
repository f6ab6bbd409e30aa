#!/usr/bin/env bash
# cluster-up.sh — the walkthrough's kind cluster, ready for tests and the demo: Docker engine
# (docker-up.sh), node image (node-image.sh), `kind create cluster` with cluster.yaml, the pod
# network (podroutes), the project images (images.sh). An existing healthy cluster is reused.
# Writes the kubeconfig to $KUBECONFIG (default $IRONLB_CACHE/kubeconfig-kind) and prints
# `export KUBECONFIG=...` on its last line.
source "$(dirname "$0")/lib.sh"

start=$(date +%s)
"$E2E_KIND_DIR/docker-up.sh"
timed "node image" "$E2E_KIND_DIR/node-image.sh"
ensure_kind
"$REPO_ROOT/hack/build-k8s.sh" kubectl >/dev/null

healthy() {
  "$KIND" get kubeconfig --name "$CLUSTER_NAME" >"$KUBECONFIG.tmp" 2>/dev/null &&
    mv "$KUBECONFIG.tmp" "$KUBECONFIG" &&
    kubectl get --raw /readyz >/dev/null 2>&1 &&
    [ "$(kubectl get nodes --no-headers 2>/dev/null | wc -l)" -eq 4 ]
}
if kind_cluster_exists; then
  if healthy; then
    log "kind cluster $CLUSTER_NAME exists and answers: reusing it"
  else
    log "kind cluster $CLUSTER_NAME exists but is unhealthy (API down or not 4 nodes): recreating it"
    "$KIND" delete cluster --name "$CLUSTER_NAME" >&2
  fi
fi
if ! kind_cluster_exists; then
  log "kind create cluster --name $CLUSTER_NAME --image $NODE_IMAGE (1 control plane + 3 workers)"
  timed "kind create cluster" "$KIND" create cluster --name "$CLUSTER_NAME" --image "$NODE_IMAGE" \
    --config "$E2E_KIND_DIR/cluster.yaml" --kubeconfig "$KUBECONFIG" --wait 3m >&2
fi
"$KIND" get kubeconfig --name "$CLUSTER_NAME" >"$KUBECONFIG"

# Images before the pod network: podroutes' own image has to be in the nodes first.
rc=0
timed "project images" "$E2E_KIND_DIR/images.sh" || rc=$?
case $rc in
  0) ;;
  3) log "WARNING: the ironlb image is not up to date (./cmd/ironlb does not build); the cluster is fine" ;;
  *) exit "$rc" ;;
esac
log "pod network: podroutes DaemonSet"
kubectl apply -f "$E2E_KIND_DIR/manifests/podroutes.yaml" >&2
timed "podroutes rollout" kubectl -n kube-system rollout status daemonset/podroutes --timeout=3m >&2
timed "nodes Ready" kubectl wait --for=condition=Ready node --all --timeout=3m >&2

# rollout status can pass before a crash loop shows, so check the routes themselves: every node
# needs one to each other node's pod CIDR.
routes_ok() {
  local nodes n want have
  nodes=$(kubectl get nodes -o jsonpath='{.items[*].metadata.name}')
  want=$(( $(wc -w <<<"$nodes") - 1 ))
  for n in $nodes; do
    have=$(docker exec "$n" ip route show proto 77 2>/dev/null | grep -c ' via ' || true)
    [ "$have" -eq "$want" ] || return 1
  done
}
check_routes() {
  for _ in $(seq 1 60); do
    routes_ok && return 0
    sleep 1
  done
  kubectl -n kube-system logs -l app=podroutes --tail=20 >&2 || true
  die "pod routes missing on some node (see the podroutes logs above)"
}
timed "pod routes on every node" check_routes
timed "CoreDNS ready" kubectl -n kube-system rollout status deployment/coredns --timeout=3m >&2
kubectl get nodes -o wide >&2
log "cluster $CLUSTER_NAME ready in $(( $(date +%s) - start ))s"
echo "export KUBECONFIG=$KUBECONFIG"
