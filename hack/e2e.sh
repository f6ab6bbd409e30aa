#!/usr/bin/env bash
# e2e.sh — the end-to-end suite on the kind cluster. Creates the cluster when there is none
# (building the offline node image on first use) and, in that case, deletes it again afterwards
# and stops the Docker engine it started, so the machine is left as it was found.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export IRONLB_CACHE="${IRONLB_CACHE:-$HOME/.cache/ironlb}"
export KUBECONFIG="${KUBECONFIG:-$IRONLB_CACHE/kubeconfig-kind}"

created=0
if ! { docker info >/dev/null 2>&1 && docker inspect kind-control-plane >/dev/null 2>&1; }; then
  created=1
fi
cleanup() {
  if [ "$created" = 1 ] && [ -z "${IRONLB_KEEP_CLUSTER:-}" ]; then
    "$root/e2e/kind/cluster-down.sh" || true
  fi
}
trap cleanup EXIT

start=$(date +%s)
"$root/e2e/kind/cluster-up.sh"
echo ">> cluster ready after $(( $(date +%s) - start ))s"
# The demo is the README's main command: CI runs it as it is, on the cluster just built.
"$root/e2e/kind/demo.sh"
# MetalLB v0.12.1, the baseline of the migration test (and the benchmarks): built once per
# version into the cache (cold: 4 minutes on 2 busy cores, module download included),
# then only its two images are rebuilt and loaded (seconds).
start=$(date +%s)
"$root/hack/build-metallb.sh" >/dev/null
echo ">> MetalLB baseline ready after $(( $(date +%s) - start ))s"
cd "$root"
go test -tags e2e -count=1 -v -timeout 30m ./e2e/
