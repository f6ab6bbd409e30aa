package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestReelectMatchesOwner(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ips := testIPs(300)
	for round := range 200 {
		prevNodes := nodeNames(1 + rng.IntN(20))
		// Build the next set: drop some, add some new ones.
		var ch Change
		var next []string
		for _, n := range prevNodes {
			if rng.IntN(4) == 0 {
				ch.Removed = append(ch.Removed, n)
				continue
			}
			next = append(next, n)
		}
		for i := range rng.IntN(3) {
			n := fmt.Sprintf("new-%d-%d", round, i)
			ch.Added = append(ch.Added, n)
			next = append(next, n)
		}
		for _, ip := range ips {
			prev := Owner(ip, prevNodes)
			got, want := Reelect(ip, prev, next, ch), Owner(ip, next)
			if got != want {
				t.Fatalf("round %d: Reelect(%s, prev %q, %v, %+v) = %q, Owner = %q", round, ip, prev, next, ch, got, want)
			}
		}
	}
}

func TestReelectEdgeCases(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.10")
	nodes := nodeNames(5)
	owner := Owner(ip, nodes)
	rest := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == owner })
	tests := []struct {
		name       string
		prev       string
		candidates []string
		ch         Change
		want       string
	}{
		{"no change keeps owner", owner, nodes, Change{}, owner},
		{"no previous owner", "", nodes, Change{Added: nodes}, owner},
		{"owner removed", owner, rest, Change{Removed: []string{owner}}, Owner(ip, rest)},
		{"everyone removed", owner, nil, Change{Removed: nodes}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Reelect(ip, tc.prev, tc.candidates, tc.ch); got != tc.want {
				t.Fatalf("Reelect = %q, want %q", got, tc.want)
			}
		})
	}
}
