package election

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// BenchmarkRecomputeAfterMembershipChange recomputes the owner of 10,000
// Service IPs over 1,000 nodes after one node left, as the speaker does on
// every membership change. One op = the full recomputation.
func BenchmarkRecomputeAfterMembershipChange(b *testing.B) {
	ips, nodes, owners := largeCluster()
	after := nodes[1:] // node 0 left the cluster

	b.ReportAllocs()
	moved := 0
	for b.Loop() {
		moved = 0
		for i, ip := range ips {
			if o := Owner(ip, after); o != owners[i] {
				moved++
			}
		}
	}
	b.ReportMetric(float64(moved), "moved")
	b.ReportMetric(float64(len(ips)*(len(nodes)-1)), "hashes/op")
}

// BenchmarkReelectAfterMembershipChange is the same workload through
// Reelect: one node leaves (only its IPs are re-picked) or joins (only the
// newcomer is hashed per IP).
func BenchmarkReelectAfterMembershipChange(b *testing.B) {
	ips, nodes, owners := largeCluster()
	cases := []struct {
		name       string
		candidates []string
		ch         Change
	}{
		{"leave", nodes[1:], Change{Removed: nodes[:1]}},
		{"join", append(slices.Clone(nodes), "worker-new"), Change{Added: []string{"worker-new"}}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			moved := 0
			for b.Loop() {
				moved = 0
				for i, ip := range ips {
					if o := Reelect(ip, owners[i], tc.candidates, tc.ch); o != owners[i] {
						moved++
					}
				}
			}
			b.ReportMetric(float64(moved), "moved")
		})
	}
}

func BenchmarkOwner(b *testing.B) {
	for _, n := range []int{3, 10, 100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			nodes := nodeNames(n)
			ip := netip.MustParseAddr("172.18.255.200")
			b.ReportAllocs()
			for b.Loop() {
				Owner(ip, nodes)
			}
		})
	}
}

// largeCluster returns 10,000 Service IPs, 1,000 node names and the owner of every IP.
func largeCluster() (ips []netip.Addr, nodes, owners []string) {
	const services, nodeCount = 10_000, 1_000
	ips = make([]netip.Addr, services)
	ip := netip.MustParseAddr("10.96.0.0")
	for i := range ips {
		ips[i] = ip
		ip = ip.Next()
	}
	nodes = make([]string, nodeCount)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("worker-%04d.rack-%02d.example.internal", i, i%40)
	}
	owners = make([]string, services)
	for i, ip := range ips {
		owners[i] = Owner(ip, nodes)
	}
	return ips, nodes, owners
}
