//go:build tools

// Package tools pins the kind command used by e2e/kind to create the test clusters.
package tools

import (
	_ "sigs.k8s.io/kind"
)
