package layer2_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/ironlb/ironlb/layer2"
	"github.com/ironlb/ironlb/layer2/netlab"
)

// Before, every malformed frame made the ARP reader sleep 50ms, so 20
// malformed frames a second stalled it for good: the socket's queue filled
// with junk and real requests were dropped or answered late.
func TestMalformedFramesDoNotDelayReplies(t *testing.T) {
	lab := newLab(t, 1)
	procs := startAnnouncers(t, lab)
	setOwned(t, procs[0], vip4)
	// Warm up: the first answer proves the announcer serves.
	if got := arping(t, lab, vip4, 1); len(got) == 0 {
		t.Fatal("no answer before the junk")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := netlab.ARPAmidJunk(ctx, lab.Client, vip4, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 10 {
		t.Fatalf("%d results, want 10", len(rs))
	}
	var worst time.Duration
	for i, r := range rs {
		if !r.Answered {
			t.Errorf("request %d (after 100 malformed frames, amid 1000 a second): no reply within 1s", i)
			continue
		}
		if r.MAC.String() != lab.Nodes[0].MAC.String() {
			t.Errorf("request %d: reply from %s, want %s", i, r.MAC, lab.Nodes[0].MAC)
		}
		worst = max(worst, r.After)
	}
	t.Logf("slowest of 10 replies amid malformed frames: %s", worst)
	// A 50ms sleep per bad frame needs 5s for the first 100; an answer in
	// half a second is prompt however loaded the machine is.
	if limit := 500 * time.Millisecond; worst > limit {
		t.Errorf("slowest reply took %s, want under %s", worst, limit)
	}
}

// Two announcers owning the same IP (a split brain) settle on one, the one
// ConflictWinner names, and the other takes it back once the winner stops.
func TestSplitBrainResolved(t *testing.T) {
	lab := newLab(t, 2)
	procs := make([]*netlab.AnnouncerProc, 2)
	for i, h := range lab.Nodes {
		p, err := netlab.StartAnnouncer(context.Background(), h, netlab.AnnouncerConfig{
			Interfaces: []string{h.If}, Debug: true, ResolveConflicts: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		procs[i] = p
		t.Cleanup(func() {
			p.Close()
			if t.Failed() {
				t.Logf("log of announcer on %s:\n%s", h.Name, p.Logs())
			}
		})
	}
	for _, ip := range []netip.Addr{vip4, vip6} {
		t.Run(ip.String(), func(t *testing.T) {
			t.Cleanup(func() {
				_ = procs[0].SetOwned()
				_ = procs[1].SetOwned()
			})
			win, lose := 0, 1
			if !layer2.ConflictWinner(ip, lab.Nodes[0].MAC, lab.Nodes[1].MAC) {
				win, lose = 1, 0
			}
			// The loser owns it first, as the old owner of a split would.
			setOwned(t, procs[lose], ip)
			time.Sleep(300 * time.Millisecond)
			t0 := time.Now()
			setOwned(t, procs[win], ip)
			query := func() []string {
				if ip.Is4() {
					return arping(t, lab, ip, 3)
				}
				return ndisc(t, lab, ip)
			}
			only := func(want string) bool {
				got := query()
				if len(got) == 0 {
					return false
				}
				for _, m := range got {
					if m != want {
						return false
					}
				}
				return true
			}
			winMAC, loseMAC := lab.Nodes[win].MAC.String(), lab.Nodes[lose].MAC.String()
			waitUntil(t, 3*time.Second, "only the winner "+winMAC+" answers", func() bool { return only(winMAC) })
			t.Logf("one MAC answers %s after %s", ip, time.Since(t0).Round(time.Millisecond))
			if v, err := procs[lose].Metric("ironlb_layer2_conflicts_yielded_total", ip); err != nil || v < 1 {
				t.Errorf("loser's conflicts_yielded_total{ip=%s} = %v, %v; want >= 1", ip, v, err)
			}
			// The conflict lasts: still only the winner, after several probe rounds.
			time.Sleep(5 * time.Second)
			if !only(winMAC) {
				t.Fatalf("after 5s of conflict: not only %s answers", winMAC)
			}
			// The winner goes away: the loser takes the IP back.
			setOwned(t, procs[win])
			waitUntil(t, 10*time.Second, "the loser "+loseMAC+" answers again", func() bool { return only(loseMAC) })
		})
	}
}

// waitUntil polls cond (which may take its own time) until it holds.
func waitUntil(t *testing.T, budget time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(budget)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", budget, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
