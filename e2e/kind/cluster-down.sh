#!/usr/bin/env bash
# cluster-down.sh (`make demo-down`) — deletes the kind cluster, then stops the Docker engine if
# docker-up.sh started it. Images and binaries stay cached for the next cluster-up.sh.
source "$(dirname "$0")/lib.sh"

if docker info >/dev/null 2>&1 && kind_cluster_exists; then
  log "kind delete cluster --name $CLUSTER_NAME"
  "$KIND" delete cluster --name "$CLUSTER_NAME" >&2
else
  log "no kind cluster $CLUSTER_NAME"
fi
# Client and router containers the demo or tests left on the kind network.
if docker info >/dev/null 2>&1; then
  ids=$(docker ps -aq --filter label=ironlb.e2e=true)
  if [ -n "$ids" ]; then
    log "removing e2e containers: $(echo "$ids" | tr '\n' ' ')"
    # shellcheck disable=SC2086
    docker rm -f $ids >/dev/null
  fi
fi
rm -f "$KUBECONFIG"
"$E2E_KIND_DIR/docker-down.sh"
