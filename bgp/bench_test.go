package bgp

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkFRRConvergence measures, against a real FRR, the time from
// SetAdvertisements with 1,000 Service IPs until FRR has all of them, and
// from removing one until FRR withdrew it. FRR is polled with vtysh, which
// takes tens of milliseconds per call: that is the resolution.
//
//	go test -run '^$' -bench FRRConvergence -benchtime 3x ./bgp/
func BenchmarkFRRConvergence(b *testing.B) {
	const n = 1000
	neighbors := fmt.Sprintf(" neighbor %s remote-as 64501", nodeV4(0))
	afs := fmt.Sprintf(" address-family ipv4 unicast\n  neighbor %s activate\n exit-address-family", nodeV4(0))
	tp := newTopology(b, 1, neighbors, afs)
	h := startHelper(b, tp.nodes[0], "node1", nodeV4(0))
	h.setPeers(b, Peer{Addr: routerV4, ASN: routerASN, MyASN: 64501})
	tp.waitNeighbor(b, nodeV4(0), "Established")

	received := func() int {
		var sum struct {
			Peers map[string]struct {
				PfxRcd int `json:"pfxRcd"`
			} `json:"peers"`
		}
		tp.frr.vtyshJSON(b, "show bgp ipv4 unicast summary json", &sum)
		return sum.Peers[nodeV4(0).String()].PfxRcd
	}
	var learn, withdraw, setCall time.Duration
	b.ResetTimer()
	for i := range b.N {
		ads := make([]Advertisement, n)
		for j := range ads {
			// A fresh block of addresses per iteration.
			ads[j] = Advertisement{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(64 + i%64), byte(j >> 8), byte(j)}), 32)}
		}
		start := time.Now()
		setCall += h.must(b, helperCmd{Op: "ads", Ads: ads}).Took
		// Poll without sleeping: each vtysh call is the resolution.
		for got := received(); got != n; got = received() {
			if time.Since(start) > 120*time.Second {
				b.Fatalf("FRR has %d of %d prefixes", got, n)
			}
		}
		tLearn := time.Since(start)
		learn += tLearn

		gone := ads[n/2].Prefix
		start = time.Now()
		h.must(b, helperCmd{Op: "ads", Ads: append(ads[:n/2:n/2], ads[n/2+1:]...)})
		for len(tp.frr.route(b, gone)) != 0 {
			if time.Since(start) > 60*time.Second {
				b.Fatalf("FRR still has %s", gone)
			}
		}
		tWithdraw := time.Since(start)
		withdraw += tWithdraw
		b.Logf("iteration %d: FRR had all %d prefixes after %s, withdrew one after %s", i, n, tLearn, tWithdraw)

		b.StopTimer()
		h.setAds(b)
		waitFor(b, 120*time.Second, "FRR has no prefixes", func() error {
			if got := received(); got != 0 {
				return fmt.Errorf("%d prefixes", got)
			}
			return nil
		})
		b.StartTimer()
	}
	b.ReportMetric(float64(learn.Milliseconds())/float64(b.N), "ms-until-FRR-has-1000")
	b.ReportMetric(float64(setCall.Milliseconds())/float64(b.N), "ms-SetAdvertisements-1000")
	b.ReportMetric(float64(withdraw.Milliseconds())/float64(b.N), "ms-until-FRR-withdrew-1")
}
