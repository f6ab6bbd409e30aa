package config

import (
	"testing"

	"github.com/ironlb/ironlb/internal/parityrows"
)

// TestMetalLBParity checks, rule by rule (internal/parityrows), that ironlb gives the answer
// MetalLB v0.12.1 gives (its internal/config Parse with its native speaker's DiscardFRROnly, the
// default mode), or the documented different one (doc.go). The MetalLB column was read from
// MetalLB's source; internal/metallbparity checks it against the real MetalLB speaker.
func TestMetalLBParity(t *testing.T) {
	for _, tc := range parityrows.Rows() {
		t.Run(tc.Rule, func(t *testing.T) {
			_, err := Parse([]byte(tc.In))
			if got := err == nil; got != tc.IronLB {
				t.Errorf("ironlb accepts: %v (error %v), want %v (MetalLB v0.12.1: %v)", got, err, tc.IronLB, tc.MetalLB)
			}
		})
	}
}
