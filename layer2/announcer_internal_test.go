package layer2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestAnnouncer serves an interface that cannot exist, so no socket is
// ever opened in the test's own network namespace.
func newTestAnnouncer(t *testing.T, opts Options) *Announcer {
	t.Helper()
	opts.Interfaces = []string{"ironlb-none0"}
	opts.Logger = quietLogger()
	a, err := NewAnnouncer(opts)
	if err != nil {
		t.Fatalf("NewAnnouncer: %v", err)
	}
	return a
}

func TestNewAnnouncerValidates(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{"defaults", Options{}, false},
		{"custom schedule", Options{GratuitousSchedule: []time.Duration{0, time.Second}}, false},
		{"empty schedule disables bursts", Options{GratuitousSchedule: []time.Duration{}}, false},
		{"negative offset", Options{GratuitousSchedule: []time.Duration{-time.Second}}, true},
		{"negative rescan", Options{RescanInterval: -time.Second}, true},
		{"empty interface name", Options{Interfaces: []string{"eth0", ""}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAnnouncer(tc.opts)
			if (err != nil) != tc.wantErr {
				t.Fatalf("NewAnnouncer(%+v) error = %v, want error: %v", tc.opts, err, tc.wantErr)
			}
		})
	}
}

func TestSetOwnedNormalizesAndSorts(t *testing.T) {
	a := newTestAnnouncer(t, Options{})
	a.SetOwned([]netip.Addr{
		netip.MustParseAddr("fd00::1"),
		netip.MustParseAddr("::ffff:10.0.0.2"), // IPv4-mapped: treated as 10.0.0.2
		netip.MustParseAddr("10.0.0.1"),
		netip.MustParseAddr("10.0.0.1"),
		{}, // invalid: ignored
		netip.MustParseAddr("fe80::1%eth0"),
	})
	want := []netip.Addr{
		netip.MustParseAddr("10.0.0.1"),
		netip.MustParseAddr("10.0.0.2"),
		netip.MustParseAddr("fd00::1"),
		netip.MustParseAddr("fe80::1"),
	}
	if got := a.Owned(); !slices.Equal(got, want) {
		t.Fatalf("Owned() = %v, want %v", got, want)
	}
}

func TestRemovedIPsLeavePendingBursts(t *testing.T) {
	ip1, ip2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a := newTestAnnouncer(t, Options{})
	a.SetOwned([]netip.Addr{ip1, ip2})
	if len(a.bursts) != 1 || len(a.bursts[0].ips) != 2 {
		t.Fatalf("after takeover of 2 IPs: bursts = %+v, want one burst of 2", a.bursts)
	}
	a.SetOwned([]netip.Addr{ip2})
	if len(a.bursts) != 1 || !slices.Equal(a.bursts[0].ips, []netip.Addr{ip2}) {
		t.Fatalf("after releasing %s: bursts = %+v, want only %s pending", ip1, a.bursts[0].ips, ip2)
	}
	// Released and taken again: a new burst; the old one must not send
	// for it on the old schedule.
	a.SetOwned(nil)
	a.SetOwned([]netip.Addr{ip2})
	if len(a.bursts) != 1 || a.bursts[0].epoch != a.owned[ip2] {
		t.Fatalf("after re-taking %s: bursts = %+v, want a single burst of the new epoch %d", ip2, a.bursts, a.owned[ip2])
	}
	a.Stop()
	if len(a.bursts) != 0 || len(a.Owned()) != 0 {
		t.Fatalf("after Stop: bursts = %d, owned = %v; want none", len(a.bursts), a.Owned())
	}
	a.SetOwned([]netip.Addr{ip1})
	if len(a.Owned()) != 0 {
		t.Fatalf("SetOwned after Stop took effect: %v", a.Owned())
	}
}

func TestSendDueFollowsSchedule(t *testing.T) {
	sched := []time.Duration{0, 100 * time.Millisecond, time.Second}
	a := newTestAnnouncer(t, Options{GratuitousSchedule: sched})
	a.SetOwned([]netip.Addr{netip.MustParseAddr("10.0.0.1")})
	start := time.Unix(1000, 0)
	a.bursts[0].start = start

	tests := []struct {
		name     string
		at       time.Duration
		wantStep int
		wantNext time.Duration // -1: nothing pending
	}{
		{"takeover sends at once", 0, 1, 100 * time.Millisecond},
		{"nothing due yet", 50 * time.Millisecond, 1, 100 * time.Millisecond},
		{"second send", 150 * time.Millisecond, 2, time.Second},
		{"last send ends the burst", 5 * time.Second, 3, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b *burst
			if len(a.bursts) > 0 {
				b = a.bursts[0]
			}
			next := a.sendDue(start.Add(tc.at))
			if b != nil && b.step != tc.wantStep {
				t.Errorf("step = %d, want %d", b.step, tc.wantStep)
			}
			if tc.wantNext < 0 {
				if !next.IsZero() || len(a.bursts) != 0 {
					t.Errorf("next = %v, bursts = %d; want nothing pending", next, len(a.bursts))
				}
				return
			}
			if want := start.Add(tc.wantNext); !next.Equal(want) {
				t.Errorf("next = %v, want %v", next.Sub(start), tc.wantNext)
			}
		})
	}
}

func TestRunLifecycle(t *testing.T) {
	a := newTestAnnouncer(t, Options{RescanInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	// A second Run is refused while the first is running.
	deadline := time.Now().Add(5 * time.Second)
	for {
		a.mu.RLock()
		running := a.running
		a.mu.RUnlock()
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if err := a.Run(ctx); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run = %v, want ErrAlreadyRunning", err)
	}
	a.SetOwned([]netip.Addr{netip.MustParseAddr("10.0.0.1")})
	time.Sleep(30 * time.Millisecond) // a few rescans of a missing interface
	a.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after Stop, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
	if got := a.Owned(); len(got) != 0 {
		t.Fatalf("Owned() after Stop = %v, want none", got)
	}
}

func TestMetrics(t *testing.T) {
	var nilMetrics *Metrics
	ip := netip.MustParseAddr("10.0.0.1")
	nilMetrics.requestReceived(ip) // must not panic
	nilMetrics.duplicateSeen(ip)

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	again := NewMetrics(reg) // same registry: reuses the collectors
	m.duplicateSeen(ip)
	again.duplicateSeen(ip)
	if got := counterValue(t, m.duplicates, ip); got != 2 {
		t.Fatalf("duplicate_owner_total = %v, want 2", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	// Vectors without a child are not gathered: only the one incremented.
	if want := []string{"ironlb_layer2_duplicate_owner_total"}; !slices.Equal(names, want) {
		t.Fatalf("gathered %v, want %v", names, want)
	}
}

func TestDuplicateReportsAreRateLimited(t *testing.T) {
	var calls []string
	m := NewMetrics(nil)
	a := newTestAnnouncer(t, Options{
		Metrics: m,
		OnDuplicate: func(ip netip.Addr, mac net.HardwareAddr, iface string) {
			calls = append(calls, ip.String()+" "+mac.String()+" "+iface)
		},
	})
	ip := netip.MustParseAddr("10.0.0.1")
	mac1 := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	mac2 := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	ip2 := netip.MustParseAddr("10.0.0.2")
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	a.SetOwned([]netip.Addr{ip, ip2})
	a.duplicate(ip, mac1, "eth0")
	a.duplicate(ip, mac1, "eth0")                              // same claim again: counted, not reported
	a.duplicate(ip, mac2, "eth0")                              // another MAC, same IP: counted, not reported (a spoofer has many MACs)
	a.duplicate(ip2, mac2, "eth0")                             // another IP: reported
	a.duplicate(netip.MustParseAddr("10.0.0.3"), mac2, "eth0") // not owned: ignored
	now = now.Add(duplicateReportInterval)
	a.duplicate(ip, mac2, "eth0") // the interval passed: reported again
	want := []string{"10.0.0.1 02:00:00:00:00:01 eth0", "10.0.0.2 02:00:00:00:00:02 eth0", "10.0.0.1 02:00:00:00:00:02 eth0"}
	if !slices.Equal(calls, want) {
		t.Fatalf("OnDuplicate calls = %q, want %q", calls, want)
	}
	if got := counterValue(t, m.duplicates, ip); got != 4 {
		t.Fatalf("duplicate_owner_total = %v, want 4", got)
	}
}

func counterValue(t *testing.T, v *prometheus.CounterVec, ip netip.Addr) float64 {
	t.Helper()
	var m dto.Metric
	if err := v.WithLabelValues(ip.String()).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestReannounceSupersedesBursts(t *testing.T) {
	ip1, ip2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a := newTestAnnouncer(t, Options{})
	a.Reannounce()
	if len(a.bursts) != 0 {
		t.Fatalf("Reannounce with nothing owned queued %+v", a.bursts)
	}
	a.SetOwned([]netip.Addr{ip1})
	a.SetOwned([]netip.Addr{ip1, ip2})
	if len(a.bursts) != 2 {
		t.Fatalf("two takeovers: bursts = %+v, want two", a.bursts)
	}
	a.Reannounce()
	if len(a.bursts) != 1 {
		t.Fatalf("after Reannounce: %d bursts, want the older ones superseded by one", len(a.bursts))
	}
	b := a.bursts[0]
	got := slices.Clone(b.ips)
	slices.SortFunc(got, func(x, y netip.Addr) int { return x.Compare(y) })
	if !slices.Equal(got, []netip.Addr{ip1, ip2}) || b.epoch != a.owned[ip1] || b.epoch != a.owned[ip2] || b.step != 0 {
		t.Fatalf("after Reannounce: burst %+v (owned %v), want every owned IP from the start of the schedule", b, a.owned)
	}
	a.Stop()
	a.Reannounce()
	if len(a.bursts) != 0 {
		t.Fatalf("Reannounce after Stop queued %+v", a.bursts)
	}
}

// macs returns n distinct locally administered MACs.
func macs(n int) []net.HardwareAddr {
	out := make([]net.HardwareAddr, n)
	for i := range out {
		out[i] = net.HardwareAddr{0x02, 0xee, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
	}
	return out
}

func TestConflictWinnerIsAntisymmetric(t *testing.T) {
	ips := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}
	ms := macs(50)
	for _, ip := range ips {
		for i, a := range ms {
			if !ConflictWinner(ip, a, a) {
				t.Fatalf("%s: a MAC against itself must keep the IP", ip)
			}
			for _, b := range ms[i+1:] {
				if ConflictWinner(ip, a, b) == ConflictWinner(ip, b, a) {
					t.Fatalf("%s: %s vs %s: both sides reach the same verdict %t", ip, a, b, ConflictWinner(ip, a, b))
				}
			}
		}
	}
}

// conflictPair returns, for ip and ours, a MAC that loses to ours and one
// that beats it.
func conflictPair(t *testing.T, ip netip.Addr, ours net.HardwareAddr) (loser, winner net.HardwareAddr) {
	t.Helper()
	for _, m := range macs(64) {
		if ConflictWinner(ip, ours, m) {
			loser = m
		} else {
			winner = m
		}
		if loser != nil && winner != nil {
			return loser, winner
		}
	}
	t.Fatal("no pair of MACs found")
	return nil, nil
}

func TestConflictYieldAndReclaim(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.1")
	ours := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	weaker, stronger := conflictPair(t, ip, ours)
	var events []string
	a := newTestAnnouncer(t, Options{
		ResolveConflicts:   true,
		GratuitousSchedule: []time.Duration{0},
		OnYield: func(ip netip.Addr, mac net.HardwareAddr, iface string) {
			events = append(events, "yield "+ip.String()+" "+mac.String()+" "+iface)
		},
		OnReclaim: func(ip netip.Addr) { events = append(events, "reclaim "+ip.String()) },
	})
	now := time.Unix(1000, 0)
	a.now = func() time.Time { return now }
	// A served interface without sockets: sends are no-ops.
	a.ifaces["eth0"] = &iface{name: "eth0", mac: ours, groups: map[netip.Addr]int{}, closed: make(chan struct{}), log: quietLogger()}
	a.SetOwned([]netip.Addr{ip})
	answered := func() bool {
		a.mu.RLock()
		defer a.mu.RUnlock()
		return a.isOwnedLocked(ip)
	}

	steps := []struct {
		name     string
		do       func()
		answered bool
		events   int
	}{
		{"a weaker claimant: we keep it and reassert", func() { a.duplicate(ip, weaker, "eth0") }, true, 0},
		{"a stronger claimant: we yield", func() { a.duplicate(ip, stronger, "eth0") }, false, 1},
		{"it keeps answering our probes", func() {
			for range 5 {
				now = now.Add(yieldProbeInterval)
				a.duplicate(ip, stronger, "eth0")
				a.checkYields(now)
			}
		}, false, 1},
		{"it falls silent: we take the IP back", func() {
			now = now.Add(yieldTimeout)
			a.checkYields(now)
		}, true, 2},
		{"it comes back: we yield again", func() { a.duplicate(ip, stronger, "eth0") }, false, 3},
		{"a member rejoined: yields end", a.Reannounce, true, 4},
		{"no yield while the election settles", func() {
			now = now.Add(rejoinHoldoff - time.Millisecond)
			a.duplicate(ip, stronger, "eth0")
		}, true, 4},
		{"after that, yield once more, then no longer owned", func() {
			now = now.Add(time.Millisecond)
			a.duplicate(ip, stronger, "eth0")
			if len(a.Yielded()) != 1 {
				t.Fatal("not yielded after the holdoff")
			}
			a.SetOwned(nil)
		}, false, 5},
	}
	for _, st := range steps {
		st.do()
		if got := answered(); got != st.answered {
			t.Fatalf("%s: answered = %t, want %t (events %q)", st.name, got, st.answered, events)
		}
		if len(events) != st.events {
			t.Fatalf("%s: events %q, want %d", st.name, events, st.events)
		}
	}
	if len(a.Yielded()) != 0 || len(a.Owned()) != 0 {
		t.Fatalf("after SetOwned(nil): yielded %v, owned %v", a.Yielded(), a.Owned())
	}
	want := []string{"yield 10.0.0.1 " + stronger.String() + " eth0", "reclaim 10.0.0.1"}
	if !slices.Equal(events[:2], want) {
		t.Fatalf("events %q, want to start with %q", events, want)
	}
}

// A speaker that sees every other speaker alive has no split brain: a claim is
// a moment of overlap the election settles, and yielding could only leave
// the IP dark until the yield times out.
func TestNoYieldWhenMayYieldSaysNo(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.1")
	ours := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	_, stronger := conflictPair(t, ip, ours)
	partitioned := false
	a := newTestAnnouncer(t, Options{ResolveConflicts: true, MayYield: func() bool { return partitioned }})
	a.ifaces["eth0"] = &iface{name: "eth0", mac: ours, groups: map[netip.Addr]int{}, closed: make(chan struct{}), log: quietLogger()}
	a.SetOwned([]netip.Addr{ip})
	a.duplicate(ip, stronger, "eth0")
	if y := a.Yielded(); len(y) != 0 {
		t.Fatalf("yielded %v although MayYield says no", y)
	}
	partitioned = true
	now := time.Now().Add(time.Minute) // past the report interval: not relevant here
	a.now = func() time.Time { return now }
	a.duplicate(ip, stronger, "eth0")
	if y := a.Yielded(); len(y) != 1 {
		t.Fatalf("yielded %v once partitioned, want the IP", y)
	}
}

// A speaker cut off from memberlist still sees its peers (as suspect) for seconds, but the
// new owner's takeover announcements keep claiming the IP: a claim lasting a second is a
// split brain whatever MayYield says, and the weaker side yields.
func TestPersistentClaimYieldsWithoutPartition(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.1")
	ours := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	_, stronger := conflictPair(t, ip, ours)
	a := newTestAnnouncer(t, Options{ResolveConflicts: true, MayYield: func() bool { return false }})
	a.ifaces["eth0"] = &iface{name: "eth0", mac: ours, groups: map[netip.Addr]int{}, closed: make(chan struct{}), log: quietLogger()}
	a.SetOwned([]netip.Addr{ip})
	start := time.Now()
	for _, tc := range []struct {
		at    time.Duration
		yield bool
	}{
		{0, false},
		{300 * time.Millisecond, false},
		{900 * time.Millisecond, false},
		{time.Second, true},
	} {
		now := start.Add(tc.at)
		a.now = func() time.Time { return now }
		a.duplicate(ip, stronger, "eth0")
		if got := len(a.Yielded()) == 1; got != tc.yield {
			t.Fatalf("claim at +%v: yielded %v, want %v", tc.at, got, tc.yield)
		}
	}

	// Claims far apart are separate moments of overlap, not one conflict.
	b := newTestAnnouncer(t, Options{ResolveConflicts: true, MayYield: func() bool { return false }})
	b.ifaces["eth0"] = &iface{name: "eth0", mac: ours, groups: map[netip.Addr]int{}, closed: make(chan struct{}), log: quietLogger()}
	b.SetOwned([]netip.Addr{ip})
	for _, at := range []time.Duration{0, 6 * time.Second, 12 * time.Second} {
		now := start.Add(at)
		b.now = func() time.Time { return now }
		b.duplicate(ip, stronger, "eth0")
		if y := b.Yielded(); len(y) != 0 {
			t.Fatalf("claim at +%v: yielded %v for isolated claims", at, y)
		}
	}
}

func TestConflictsIgnoredWithoutResolve(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.1")
	ours := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	_, stronger := conflictPair(t, ip, ours)
	a := newTestAnnouncer(t, Options{})
	a.ifaces["eth0"] = &iface{name: "eth0", mac: ours, groups: map[netip.Addr]int{}, closed: make(chan struct{}), log: quietLogger()}
	a.SetOwned([]netip.Addr{ip})
	a.duplicate(ip, stronger, "eth0")
	if y := a.Yielded(); len(y) != 0 {
		t.Fatalf("yielded %v without ResolveConflicts", y)
	}
}

// BenchmarkSpoofedReplies feeds ARP replies claiming an owned IP, from 1 to
// 10,000 distinct MACs in turn: the cost per packet must stay flat.
func BenchmarkSpoofedReplies(b *testing.B) {
	ip := netip.MustParseAddr("10.0.0.1")
	ours := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	for _, resolve := range []bool{false, true} {
		for _, n := range []int{1, 100, 10000} {
			b.Run(fmt.Sprintf("resolve=%t/macs=%d", resolve, n), func(b *testing.B) {
				a, err := NewAnnouncer(Options{
					Interfaces: []string{"ironlb-none0"}, Logger: quietLogger(), Metrics: NewMetrics(nil),
					ResolveConflicts: resolve, OnDuplicate: func(netip.Addr, net.HardwareAddr, string) {},
				})
				if err != nil {
					b.Fatal(err)
				}
				ifc := &iface{name: "eth0", mac: ours, groups: map[netip.Addr]int{}, closed: make(chan struct{}), log: quietLogger()}
				a.ifaces["eth0"] = ifc
				a.SetOwned([]netip.Addr{ip})
				pkts := make([]*arp.Packet, n)
				frames := make([]*ethernet.Frame, n)
				for i, m := range macs(n) {
					p, err := arp.NewPacket(arp.OperationReply, m, ip, ethernet.Broadcast, ip)
					if err != nil {
						b.Fatal(err)
					}
					pkts[i] = p
					frames[i] = &ethernet.Frame{Source: m, Destination: ethernet.Broadcast, EtherType: ethernet.EtherTypeARP}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					a.handleARP(ifc, nil, pkts[i%n], frames[i%n])
				}
			})
		}
	}
}
