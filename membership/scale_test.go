package membership

import (
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"
)

func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFailureDetection runs clusters of 10 to 150 members in this
// process (distinct loopback addresses, encrypted, default timings), makes
// one member vanish per iteration and measures how long until the first
// survivor and until every survivor declares it dead. It also reports the
// idle cost of the cluster. Figures only, no assertions on timing:
//
//	go test ./membership -run XXX -bench FailureDetection -benchtime 5x
func BenchmarkFailureDetection(b *testing.B) {
	for _, n := range []int{10, 50, 100, 150} {
		for _, mode := range []string{"cut", "crash"} {
			b.Run(fmt.Sprintf("members=%d/%s", n, mode), func(b *testing.B) {
				c := newCluster(b, "bench secret key")
				c.rejoin = 2 * time.Second
				// Seeding everyone with everyone would make 100 members do
				// 10,000 joins at start; three seeds are enough to converge.
				c.seeds = func() []netip.AddrPort {
					all := c.allAddrs()
					return all[:min(3, len(all))]
				}
				// Start members 50 ms apart, as a DaemonSet rollout does. All
				// at once, 50+ members in one process on a loaded 2-core
				// machine flap for minutes: every join is processed by the
				// same starved process (each real speaker has its own node).
				setup := time.Now()
				var ms []*member
				for i := range n {
					ms = append(ms, c.start(fmt.Sprintf("node-%d", i), i, -1, c.secret))
					time.Sleep(50 * time.Millisecond)
				}
				waitConverged(b, 3*time.Minute, ms)
				b.Logf("members=%d converged %s after the first start", n, time.Since(setup))
				time.Sleep(2 * time.Second) // let join gossip die down

				// Idle cost of the whole cluster, and false failures while
				// nothing fails.
				failures := func() int {
					count := 0
					for _, m := range ms {
						m.rec.mu.Lock()
						for _, e := range m.rec.events {
							if e.kind == eventFailed {
								count++
							}
						}
						m.rec.mu.Unlock()
					}
					return count
				}
				f0 := failures()
				cpu0, p0, by0, t0 := cpuTime(b), c.net.packets.Load(), c.net.bytes.Load(), time.Now()
				time.Sleep(3 * time.Second)
				el := time.Since(t0).Seconds()
				idleCPU := float64(cpuTime(b)-cpu0) / float64(time.Millisecond) / el / float64(n)
				idlePkts := float64(c.net.packets.Load()-p0) / el / float64(n)
				idleBytes := float64(c.net.bytes.Load()-by0) / el / float64(n)
				falseFailures := failures() - f0

				var firsts, lasts []time.Duration
				alive := slices.Clone(ms)
				i := 0
				for ; b.Loop(); i++ {
					victim := alive[len(alive)-1-i%(len(alive)-3)]
					survivors := slices.DeleteFunc(slices.Clone(alive), func(m *member) bool { return m == victim })
					start := time.Now()
					if mode == "cut" {
						c.net.setCut(victim.addr(), true)
					} else {
						victim.crash(b)
					}
					first, last := detection(b, survivors, victim.name, eventFailed, start)
					firsts, lasts = append(firsts, first), append(lasts, last)
					alive = survivors
				}
				slices.Sort(firsts)
				slices.Sort(lasts)
				ms1 := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
				b.ReportMetric(ms1(firsts[len(firsts)/2]), "first-p50-ms")
				b.ReportMetric(ms1(lasts[len(lasts)/2]), "all-p50-ms")
				b.ReportMetric(ms1(lasts[len(lasts)-1]), "all-max-ms")
				b.ReportMetric(idleCPU, "idle-cpu-ms/s/member")
				b.ReportMetric(idlePkts, "pkts/s/member")
				b.ReportMetric(idleBytes, "udp-B/s/member")
				b.ReportMetric(float64(falseFailures), "false-failures")
				b.Logf("members=%d %s: first %v, all %v", n, mode, firsts, lasts)
			})
		}
	}
}
