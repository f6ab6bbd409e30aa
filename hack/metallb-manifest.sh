#!/usr/bin/env bash
# metallb-manifest.sh [--speaker-image IMG] [--controller-image IMG] [--namespace] — prints
# MetalLB's own manifests/metallb.yaml (or, with --namespace, its manifests/namespace.yaml) from
# the module pinned in hack/tools/metallb, read from the Go module cache, never copied into this
# tree. Two changes only, both needed to apply it to a current cluster:
#   - its PodSecurityPolicy objects are dropped (policy/v1beta1 was removed in Kubernetes 1.25);
#   - with --speaker-image / --controller-image, the two image references are replaced, which is
#     how "MetalLB's manifest runs ironlb" is tested.
# Everything else (RBAC, env, args, probes, tolerations) stays MetalLB's.
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH"
tools=$(cd "$(dirname "$0")/tools/metallb" && pwd)
speaker="" controller="" file=metallb.yaml
while [ $# -gt 0 ]; do
  case $1 in
  --speaker-image) speaker=$2; shift 2 ;;
  --controller-image) controller=$2; shift 2 ;;
  --namespace) file=namespace.yaml; shift ;;
  *) echo "metallb-manifest.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
version=$(awk '$1=="require" && $2=="go.universe.tf/metallb" {print $3}' "$tools/go.mod")
dir=$(cd "$tools" && go mod download -json "go.universe.tf/metallb@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
src="$dir/manifests/$file"
[ -f "$src" ] || { echo "metallb-manifest.sh: $src not found" >&2; exit 1; }

# Documents are split on "---" lines; a document is dropped when it is of kind
# PodSecurityPolicy. The image lines are matched exactly, so a changed upstream manifest fails
# loudly below instead of silently keeping MetalLB's images.
awk -v sp="$speaker" -v ct="$controller" -v ver="$version" '
  function flush() { if (doc != "" && !psp) printf "%s", (printed++ ? "---\n" : "") doc; doc = ""; psp = 0 }
  /^---[[:space:]]*$/ { flush(); next }
  /^kind:[[:space:]]*PodSecurityPolicy[[:space:]]*$/ { psp = 1 }
  {
    line = $0
    if (sp != "" && line ~ "^[[:space:]]*image: quay.io/metallb/speaker:" ver "$") { sub("quay.io/metallb/speaker:" ver, sp, line); ns++ }
    if (ct != "" && line ~ "^[[:space:]]*image: quay.io/metallb/controller:" ver "$") { sub("quay.io/metallb/controller:" ver, ct, line); nc++ }
    doc = doc line "\n"
  }
  END {
    flush()
    if (sp != "" && ns != 1) { print "metallb-manifest.sh: expected one speaker image line, found " ns+0 > "/dev/stderr"; exit 1 }
    if (ct != "" && nc != 1) { print "metallb-manifest.sh: expected one controller image line, found " nc+0 > "/dev/stderr"; exit 1 }
  }' "$src"
