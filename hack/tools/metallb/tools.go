//go:build tools

// Package tools pins MetalLB v0.12.1's speaker and controller (hack/build-metallb.sh).
package tools

import (
	_ "go.universe.tf/metallb/controller"
	_ "go.universe.tf/metallb/speaker"
)
