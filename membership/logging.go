package membership

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// badPeerInterval is how often one peer's undecryptable or unlabelled
// traffic is logged: a node with the wrong key (a half-done rotation, a
// MetalLB speaker still running) sends about ten packets a second, and a
// hostile sender as many as it likes.
const badPeerInterval = time.Minute

// maxBadPeers bounds the memory of the per-peer log limit against a sender
// spoofing many source addresses; when full, expired entries are dropped and,
// failing that, the whole table (which at worst logs a few lines twice).
const maxBadPeers = 4096

// badPeerMessages mark memberlist's log lines about traffic this member
// cannot read: wrong key, wrong label (another cluster), or garbage.
var badPeerMessages = []string{
	"Decrypt packet failed",
	"unacceptable label",
	"label header",
	"failed to receive",
	"Failed to read remote state",
	"missing message type byte",
	"not supported",
	"Failed to decode",
	"Failed to decompress",
}

// logWriter turns memberlist's "[LEVEL] memberlist: message" lines into
// slog records at the matching level. memberlist logs every failed probe at
// DEBUG, which at 10 probes a second must stay below the default level.
// Lines about unreadable traffic are logged at most once per peer address
// per badPeerInterval, with the count of those suppressed meanwhile.
type logWriter struct {
	log *slog.Logger
	now func() time.Time // nil: time.Now

	mu  sync.Mutex
	bad map[netip.Addr]*badPeer
}

type badPeer struct {
	last       time.Time
	suppressed int
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	level := slog.LevelInfo
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG] ", slog.LevelDebug},
		{"[INFO] ", slog.LevelInfo},
		{"[WARN] ", slog.LevelWarn},
		{"[ERR] ", slog.LevelError},
		{"[ERROR] ", slog.LevelError},
	} {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			line, level = rest, l.level
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	attrs := []any{"source", "memberlist"}
	if level >= slog.LevelWarn {
		if from, ok := badPeerSource(line); ok {
			log, suppressed := w.admit(from)
			if !log {
				return len(p), nil
			}
			attrs = append(attrs, "peer", from.String(), "suppressed_since_last", suppressed,
				"next_log_for_peer_in", badPeerInterval.String())
		}
	}
	w.log.Log(context.Background(), level, line, attrs...)
	return len(p), nil
}

// badPeerSource returns the sender of a line about unreadable traffic
// ("... from=10.0.0.1:7946").
func badPeerSource(line string) (netip.Addr, bool) {
	i := strings.LastIndex(line, "from=")
	if i < 0 {
		return netip.Addr{}, false
	}
	matched := false
	for _, m := range badPeerMessages {
		if strings.Contains(line, m) {
			matched = true
			break
		}
	}
	if !matched {
		return netip.Addr{}, false
	}
	field, _, _ := strings.Cut(line[i+len("from="):], " ")
	if ap, err := netip.ParseAddrPort(field); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(field); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

// admit reports whether a line about from may be logged now, and how many
// were suppressed since the last one. O(1) amortised.
func (w *logWriter) admit(from netip.Addr) (bool, int) {
	now := time.Now()
	if w.now != nil {
		now = w.now()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bad == nil {
		w.bad = map[netip.Addr]*badPeer{}
	}
	if b, ok := w.bad[from]; ok {
		if now.Sub(b.last) < badPeerInterval {
			b.suppressed++
			return false, 0
		}
		n := b.suppressed
		b.last, b.suppressed = now, 0
		return true, n
	}
	if len(w.bad) >= maxBadPeers {
		for a, b := range w.bad {
			if now.Sub(b.last) >= badPeerInterval {
				delete(w.bad, a)
			}
		}
		if len(w.bad) >= maxBadPeers {
			clear(w.bad)
		}
	}
	w.bad[from] = &badPeer{last: now}
	return true, 0
}
