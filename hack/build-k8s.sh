#!/usr/bin/env bash
# build-k8s.sh CMD... — builds Kubernetes commands (kube-apiserver, kubelet, ...) from the
# k8s.io/kubernetes module pinned in hack/tools/kubernetes, once per version, into the cache.
# Prints the directory holding the binaries on its last line.
#
# The cache lives outside the tree (IRONLB_CACHE, default ~/.cache/ironlb) so a fresh clone on
# the same machine reuses it; a lock keeps concurrent callers from building the same thing twice.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools="$here/tools/kubernetes"
version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$tools/go.mod")
minor=$(echo "$version" | cut -d. -f2)
cache="${IRONLB_CACHE:-$HOME/.cache/ironlb}"
out="$cache/k8s/$version/bin"
mkdir -p "$out"
export PATH="/usr/local/go/bin:$PATH"

for cmd in "$@"; do
  [ -x "$out/$cmd" ] && continue
  # One lock per command: a caller needing kube-apiserver never waits behind a kubelet build.
  exec 9>"$out/.$cmd.lock"
  flock 9
  if [ -x "$out/$cmd" ]; then
    exec 9>&-
    continue
  fi
  echo ">> building $cmd $version (cached in $out; several minutes on a cold cache)" >&2
  start=$(date +%s)
  (cd "$tools" && CGO_ENABLED=0 go build -trimpath -o "$out/$cmd.tmp" \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    "k8s.io/kubernetes/cmd/$cmd")
  mv "$out/$cmd.tmp" "$out/$cmd"
  echo ">> built $cmd in $(( $(date +%s) - start ))s" >&2
  exec 9>&-
done
echo "$out"
