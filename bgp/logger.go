package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// gobgpLogger adapts GoBGP's logger to slog. GoBGP's own Info messages are
// demoted to Debug because the speaker logs session changes itself; two
// Debug messages are inspected because GoBGP only reports them there: the
// reason of a state change, and failed connection attempts (which is all a
// TCP MD5 password mismatch looks like from the dialling side).
type gobgpLogger struct {
	log *slog.Logger
	s   *Speaker
}

var _ gobgplog.Logger = (*gobgpLogger)(nil)

func (l *gobgpLogger) emit(level slog.Level, msg string, fields gobgplog.Fields) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys)+1)
	attrs = append(attrs, slog.String("component", "gobgp"))
	for _, k := range keys {
		attrs = append(attrs, slog.String(k, fmt.Sprint(fields[k])))
	}
	l.log.LogAttrs(context.Background(), level, msg, attrs...)
}

func peerKey(fields gobgplog.Fields) (netip.Addr, bool) {
	k, ok := fields["Key"].(string)
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(k)
	return a.Unmap(), err == nil
}

func (l *gobgpLogger) Panic(msg string, fields gobgplog.Fields) { l.emit(slog.LevelError, msg, fields) }
func (l *gobgpLogger) Fatal(msg string, fields gobgplog.Fields) { l.emit(slog.LevelError, msg, fields) }
func (l *gobgpLogger) Error(msg string, fields gobgplog.Fields) { l.emit(slog.LevelError, msg, fields) }
func (l *gobgpLogger) Warn(msg string, fields gobgplog.Fields)  { l.emit(slog.LevelWarn, msg, fields) }
func (l *gobgpLogger) Info(msg string, fields gobgplog.Fields)  { l.emit(slog.LevelDebug, msg, fields) }

func (l *gobgpLogger) Debug(msg string, fields gobgplog.Fields) {
	switch msg {
	case "state changed":
		if peer, ok := peerKey(fields); ok {
			l.s.noteReason(peer, fmt.Sprint(fields["reason"]))
		}
	case "failed to connect":
		if peer, ok := peerKey(fields); ok {
			l.s.noteConnectFailure(peer, fmt.Sprint(fields["Error"]))
		}
	}
	l.emit(slog.LevelDebug, msg, fields)
}

// SetLevel is ignored: the slog handler decides what is shown.
func (l *gobgpLogger) SetLevel(gobgplog.LogLevel) {}

// GetLevel reports Debug so that GoBGP produces the Debug messages
// inspected above.
func (l *gobgpLogger) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }
