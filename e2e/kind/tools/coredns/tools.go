//go:build tools

// Package tools pins CoreDNS, preloaded into the offline kind node image as
// registry.k8s.io/coredns/coredns.
package tools

import (
	_ "github.com/coredns/coredns"
)
