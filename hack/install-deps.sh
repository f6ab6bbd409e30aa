#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages the tests need (once; quick when present).
#   etcd-server  etcd behind the real kube-apiserver of the controller tests
#   arping ndisc6 tcpdump iproute2  the layer-2 tests' client tools
#   frr          the BGP router of the bgp tests
#   prometheus   promtool, which evaluates MetalLB's Helm chart alerts on ironlb's metrics
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in etcd-server arping ndisc6 tcpdump iproute2 frr iptables prometheus; do
  have "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo ">> apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts no daemons here (no systemd), but make sure a packaged FRR is not running on the
# host: the tests start their own instances inside namespaces.
