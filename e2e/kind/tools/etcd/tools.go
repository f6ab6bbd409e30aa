//go:build tools

// Package tools pins the etcd server preloaded into the offline kind node image as
// registry.k8s.io/etcd (kubeadm v1.37 needs etcd 3.7; Debian ships 3.4).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
