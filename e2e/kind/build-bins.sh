#!/usr/bin/env bash
# build-bins.sh — builds (once per version, into $IRONLB_CACHE) every binary the offline kind
# node image and the cluster scripts need: kind, Kubernetes (via hack/build-k8s.sh), etcd,
# CoreDNS. Prints progress lines prefixed with `>>`. Safe to run again: cached binaries are kept.
source "$(dirname "$0")/lib.sh"

ensure_kind
# One command per call: build-k8s.sh holds its lock for the whole call, and other callers (the
# API-server tests) should not wait for kubelet and kubeadm to finish.
k8s_start=$(date +%s)
for c in kubectl kube-apiserver kube-scheduler kube-proxy kube-controller-manager kubelet kubeadm; do
  "$REPO_ROOT/hack/build-k8s.sh" "$c" >/dev/null
done
log "kubernetes $K8S_VERSION binaries ready ($(( $(date +%s) - k8s_start ))s)"
gobuild_cached "$E2E_KIND_DIR/tools/etcd" go.etcd.io/etcd/server/v3 \
  "$IRONLB_CACHE/etcd/$ETCD_VERSION/etcd"
gobuild_cached "$E2E_KIND_DIR/tools/coredns" github.com/coredns/coredns \
  "$IRONLB_CACHE/coredns/$COREDNS_VERSION/coredns"
log "binaries ready in $IRONLB_CACHE"
