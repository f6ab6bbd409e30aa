package election

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sort"
	"testing"
)

// metallbOwner is MetalLB v0.12's pick (speaker/layer2_controller.go): sort the
// nodes ascending by bytes.Compare(sha256(node + "#" + net.IP.String())) and
// take the first. Kept deliberately naive as the reference for Owner.
func metallbOwner(ip netip.Addr, nodes []string) string {
	nodes = slices.Clone(nodes)
	s := net.IP(ip.AsSlice()).String()
	sort.Slice(nodes, func(i, j int) bool {
		hi := sha256.Sum256([]byte(nodes[i] + "#" + s))
		hj := sha256.Sum256([]byte(nodes[j] + "#" + s))
		return bytes.Compare(hi[:], hj[:]) < 0
	})
	if len(nodes) == 0 {
		return ""
	}
	return nodes[0]
}

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%d", i+1)
	}
	return out
}

// testIPs returns n deterministic IPv4 addresses 10.0.0.0, 10.0.0.1, ...
func testIPs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	ip := netip.MustParseAddr("10.0.0.0")
	for i := range out {
		out[i] = ip
		ip = ip.Next()
	}
	return out
}

func TestOwnerEmpty(t *testing.T) {
	if got := Owner(netip.MustParseAddr("10.0.0.1"), nil); got != "" {
		t.Fatalf("Owner(no candidates) = %q, want \"\"", got)
	}
	if got := Explain(netip.MustParseAddr("10.0.0.1"), nil); len(got) != 0 {
		t.Fatalf("Explain(no candidates) = %v, want empty", got)
	}
}

func TestOwnerKnownValues(t *testing.T) {
	// Pinned answers, computed once from the reference, so that a change of
	// the hash input (separator, IP formatting) is caught even if Owner and
	// the reference were changed together.
	nodes := []string{"kind-worker", "kind-worker2", "kind-worker3"}
	tests := []struct {
		ip   string
		want string
	}{
		{"172.18.255.200", metallbOwner(netip.MustParseAddr("172.18.255.200"), nodes)},
		{"172.18.255.201", metallbOwner(netip.MustParseAddr("172.18.255.201"), nodes)},
		{"fc00:f853:ccd:e793::c8", metallbOwner(netip.MustParseAddr("fc00:f853:ccd:e793::c8"), nodes)},
	}
	for _, tc := range tests {
		t.Run(tc.ip, func(t *testing.T) {
			ip := netip.MustParseAddr(tc.ip)
			got := Owner(ip, nodes)
			if got != tc.want {
				t.Fatalf("Owner(%s) = %q, want %q", ip, got, tc.want)
			}
			// Recompute the winning hash by hand: sha256("<node>#<ip>").
			want := sha256.Sum256([]byte(got + "#" + tc.ip))
			for _, n := range nodes {
				h := sha256.Sum256([]byte(n + "#" + tc.ip))
				if bytes.Compare(h[:], want[:]) < 0 {
					t.Fatalf("node %s has a smaller hash than owner %s", n, got)
				}
			}
		})
	}
}

func TestOwnerDeterministicAnyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nodes := nodeNames(7)
	for _, ip := range testIPs(200) {
		want := Owner(ip, nodes)
		for range 5 {
			shuffled := slices.Clone(nodes)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if got := Owner(ip, shuffled); got != want {
				t.Fatalf("Owner(%s, %v) = %q, want %q (same set, other order)", ip, shuffled, got, want)
			}
		}
		// Duplicates must not change the answer either.
		if got := Owner(ip, append(slices.Clone(nodes), nodes...)); got != want {
			t.Fatalf("Owner(%s) with duplicated candidates = %q, want %q", ip, got, want)
		}
	}
}

func TestOwnerMatchesMetalLB(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	randomIP := func() netip.Addr {
		switch rng.IntN(3) {
		case 0:
			var b [4]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return netip.AddrFrom4(b)
		case 1:
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return netip.AddrFrom16(b)
		default:
			// IPv4-mapped IPv6: net.IP prints these in dotted form, so
			// Owner must hash the unmapped form to agree with MetalLB.
			var b [4]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return netip.AddrFrom16(netip.AddrFrom4(b).As16())
		}
	}
	for i := range 2000 {
		n := 1 + rng.IntN(40)
		nodes := make([]string, n)
		for j := range nodes {
			nodes[j] = fmt.Sprintf("worker-%x", rng.Uint64()>>(rng.IntN(60)))
		}
		ip := randomIP()
		got, want := Owner(ip, nodes), metallbOwner(ip, nodes)
		if got != want {
			t.Fatalf("case %d: Owner(%s, %v) = %q, MetalLB picks %q", i, ip, nodes, got, want)
		}
		ranked := Explain(ip, nodes)
		if len(ranked) != n || ranked[0].Node != want {
			t.Fatalf("case %d: Explain(%s) = %v, want %d entries led by %q", i, ip, ranked, n, want)
		}
		for k := 1; k < len(ranked); k++ {
			if bytes.Compare(ranked[k-1].Hash[:], ranked[k].Hash[:]) > 0 {
				t.Fatalf("case %d: Explain not sorted at %d: %v", i, k, ranked)
			}
		}
	}
}

func TestOwnerIgnoresZone(t *testing.T) {
	nodes := nodeNames(9)
	for _, ip := range []string{"fe80::1", "fe80::abcd"} {
		plain := netip.MustParseAddr(ip)
		zoned := plain.WithZone("eth0")
		if a, b := Owner(plain, nodes), Owner(zoned, nodes); a != b {
			t.Errorf("Owner(%s) = %q but Owner(%s) = %q; the zone must not matter", plain, a, zoned, b)
		}
	}
}

// chiSquareCritical001 holds the chi-square critical values at p = 0.001 for
// 1..9 degrees of freedom: a fair hash exceeds them once in a thousand
// random inputs; our inputs are fixed, so the verdict never changes.
var chiSquareCritical001 = []float64{0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88}

func TestOwnerDistribution(t *testing.T) {
	ips := testIPs(1000)
	for n := 3; n <= 10; n++ {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			nodes := nodeNames(n)
			count := map[string]int{}
			for _, ip := range ips {
				count[Owner(ip, nodes)]++
			}
			fair := float64(len(ips)) / float64(n)
			chi2 := 0.0
			for _, node := range nodes {
				c := float64(count[node])
				chi2 += (c - fair) * (c - fair) / fair
				if c < fair*0.65 || c > fair*1.35 {
					t.Errorf("%s owns %d of %d IPs, outside ±35%% of fair share %.0f", node, count[node], len(ips), fair)
				}
			}
			t.Logf("shares %v, chi-square %.2f (critical %.2f)", count, chi2, chiSquareCritical001[n-1])
			if chi2 > chiSquareCritical001[n-1] {
				t.Errorf("chi-square %.2f exceeds the p=0.001 critical value %.2f for %d degrees of freedom: %v",
					chi2, chiSquareCritical001[n-1], n-1, count)
			}
		})
	}
}

func TestOwnerStability(t *testing.T) {
	ips := testIPs(1000)
	nodes := nodeNames(10)
	before := make([]string, len(ips))
	for i, ip := range ips {
		before[i] = Owner(ip, nodes)
	}

	t.Run("remove", func(t *testing.T) {
		for _, gone := range nodes {
			rest := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == gone })
			moved := 0
			for i, ip := range ips {
				after := Owner(ip, rest)
				if before[i] != gone && after != before[i] {
					t.Fatalf("removing %s moved %s from %s to %s", gone, ip, before[i], after)
				}
				if before[i] == gone {
					moved++
					if want := Explain(ip, nodes)[1].Node; after != want {
						t.Fatalf("%s went to %s, want the runner-up %s", ip, after, want)
					}
				}
			}
			if moved == 0 {
				t.Fatalf("%s owned no IP; the test proves nothing", gone)
			}
		}
	})

	t.Run("add", func(t *testing.T) {
		more := append(slices.Clone(nodes), "node-new")
		gained := 0
		for i, ip := range ips {
			after := Owner(ip, more)
			switch after {
			case before[i]:
			case "node-new":
				gained++
			default:
				t.Fatalf("adding node-new moved %s from %s to %s", ip, before[i], after)
			}
		}
		if gained == 0 {
			t.Fatal("node-new won no IP; the test proves nothing")
		}
		t.Logf("node-new took %d of %d IPs", gained, len(ips))
	})
}

func TestOwnerAllocs(t *testing.T) {
	nodes := nodeNames(50)
	ip := netip.MustParseAddr("2001:db8::1")
	if a := testing.AllocsPerRun(100, func() { Owner(ip, nodes) }); a != 0 {
		t.Fatalf("Owner allocates %.1f times per call, want 0", a)
	}
}

func TestServiceOwner(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	split := 0
	for i := range 1000 {
		nodes := make([]string, 1+rng.IntN(30))
		for j := range nodes {
			nodes[j] = fmt.Sprintf("worker-%x", rng.Uint64()>>(rng.IntN(60)))
		}
		var b4 [4]byte
		var b16 [16]byte
		for k := range b4 {
			b4[k] = byte(rng.Uint32())
		}
		for k := range b16 {
			b16[k] = byte(rng.Uint32())
		}
		v4, v6 := netip.AddrFrom4(b4), netip.AddrFrom16(b16)
		ingress := []netip.Addr{v4, v6}
		if rng.IntN(2) == 0 {
			ingress = []netip.Addr{v6, v4}
		}
		// MetalLB ranks nodes over the first ingress IP and gives the winner every IP.
		if got, want := ServiceOwner(ingress, nodes), metallbOwner(ingress[0], nodes); got != want {
			t.Fatalf("case %d: ServiceOwner(%v, %v) = %q, MetalLB picks %q", i, ingress, nodes, got, want)
		}
		if got, want := ServiceOwner(ingress[:1], nodes), Owner(ingress[0], nodes); got != want {
			t.Fatalf("case %d: single-stack ServiceOwner(%v) = %q, Owner = %q", i, ingress[:1], got, want)
		}
		if Owner(v4, nodes) != Owner(v6, nodes) {
			split++
		}
	}
	if split == 0 {
		t.Fatal("no case elects different nodes per IP; the test proves nothing")
	}
	if got := ServiceOwner(nil, nodeNames(3)); got != "" {
		t.Errorf("ServiceOwner(no IPs) = %q, want \"\"", got)
	}
	if got := ServiceOwner(testIPs(2), nil); got != "" {
		t.Errorf("ServiceOwner(no candidates) = %q, want \"\"", got)
	}
}
