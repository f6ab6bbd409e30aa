package membership

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Liveness decides which speakers count as alive for the election: memberlist's alive members,
// plus speakers that crashed (failed, not left) on a host that still answers, for a short grace.
// A container restart then leaves the IPs where they are instead of moving them away and back,
// while a cut link or a dead host (no answer at all) moves them at once.
type Liveness struct {
	self  string
	grace time.Duration
	// hostUp probes a failed member's host; true when the host answers although its speaker
	// does not (the speaker restarts).
	hostUp func(node string) bool
	// left reports whether a member is known not to serve for now (a planned Leave, or
	// alive on standby): it gets no grace.
	left func(node string) bool
	// expired is called when a grace ends, to trigger a new decision.
	expired func()
	log     *slog.Logger

	last  map[string]bool
	until map[string]time.Time
}

// NewLiveness returns a tracker for the speaker named self. hostUp probes the host of a member
// that failed (HostAnswers does it over TCP), left tells a member that is not coming back as a
// candidate soon (Members.Withdrawn: a planned Leave or standby), and
// expired is called when a grace ends, so the caller decides again.
func NewLiveness(self string, grace time.Duration, hostUp, left func(string) bool, expired func(), log *slog.Logger) *Liveness {
	return &Liveness{self: self, grace: grace, hostUp: hostUp, left: left, expired: expired, log: log,
		last: map[string]bool{}, until: map[string]time.Time{}}
}

// Update takes memberlist's current alive set and returns the set the election uses.
func (l *Liveness) Update(now time.Time, alive []string) map[string]bool {
	current := map[string]bool{l.self: true}
	for _, n := range alive {
		current[n] = true
	}
	// Members that just failed: probe their hosts all at once, so k simultaneous failures cost
	// one probe timeout, not k.
	var failed []string
	for n := range l.last {
		if current[n] {
			delete(l.until, n)
			continue
		}
		if _, pending := l.until[n]; pending || l.left(n) {
			continue
		}
		failed = append(failed, n)
	}
	up := make([]bool, len(failed))
	if l.grace > 0 {
		var wg sync.WaitGroup
		for i, n := range failed {
			wg.Go(func() { up[i] = l.hostUp(n) })
		}
		wg.Wait()
	}
	for i, n := range failed {
		if up[i] {
			l.until[n] = now.Add(l.grace)
			l.log.Info("speaker failed but its host answers; it keeps its IPs during the restart grace", "member", n, "grace", l.grace)
			time.AfterFunc(l.grace, l.expired)
		} else {
			l.log.Warn("speaker failed and its host does not answer; its IPs move now", "member", n)
		}
	}
	for n, until := range l.until {
		switch {
		case current[n]:
			delete(l.until, n)
		case l.left(n):
			// Back, but not as a candidate (on standby, or it left): its IPs move now.
			delete(l.until, n)
			l.log.Info("speaker is back without serving (standby) or left; its IPs move now", "member", n)
		case now.Before(until):
			current[n] = true
		default:
			delete(l.until, n)
			l.log.Warn("speaker did not come back within the restart grace; its IPs move now", "member", n)
		}
	}
	l.last = current
	return current
}

// HostAnswers reports whether the host at addr is reachable although its speaker is not: a TCP
// connection to the memberlist port is actively refused (RST) rather than timing out. A new
// speaker already listening counts as answering too.
func HostAnswers(addr netip.AddrPort, timeout time.Duration) bool {
	conn, err := net.DialTimeout("tcp", addr.String(), timeout)
	if err == nil {
		conn.Close()
		return true
	}
	return strings.Contains(err.Error(), "connection refused")
}
