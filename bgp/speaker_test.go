package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func newSpeaker(t *testing.T, opts Options) *Speaker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// freePort returns a loopback TCP port nothing listens on: connections to
// it are refused at once, or a speaker may listen on it.
func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func TestSetPeersValidation(t *testing.T) {
	s := newSpeaker(t, Options{RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: -1})
	lo := netip.MustParseAddr("127.0.0.1")
	good := Peer{Addr: lo, Port: freePort(t), ASN: 65002, MyASN: 65001}
	if err := s.SetPeers([]Peer{good}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		peers []Peer
		want  error
	}{
		{name: "invalid peer", peers: []Peer{good, {Addr: netip.MustParseAddr("127.0.0.2"), ASN: 1}}, want: ErrInvalidPeer},
		{name: "duplicate address", peers: []Peer{good, good}, want: ErrDuplicatePeer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.SetPeers(tc.peers); !errors.Is(err, tc.want) {
				t.Fatalf("SetPeers() error = %v, want %v", err, tc.want)
			}
			// A rejected set changes nothing.
			got := s.Sessions()
			if len(got) != 1 || got[0].Peer != lo || got[0].Up {
				t.Fatalf("sessions after rejected SetPeers: %+v", got)
			}
		})
	}
	if err := s.SetAdvertisements([]Advertisement{{}}); !errors.Is(err, ErrInvalidAdvertisement) {
		t.Errorf("SetAdvertisements(zero prefix) = %v, want ErrInvalidAdvertisement", err)
	}
	if err := s.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	if got := s.Sessions(); len(got) != 0 {
		t.Fatalf("sessions after removing all peers: %+v", got)
	}
	// Peers come back on the same GoBGP server.
	if err := s.SetPeers([]Peer{good}); err != nil {
		t.Fatal(err)
	}
	if got := s.Sessions(); len(got) != 1 || len(s.instances) != 1 {
		t.Fatalf("sessions after re-adding the peer: %+v (%d servers)", got, len(s.instances))
	}
}

func TestRunShutsDown(t *testing.T) {
	s := newSpeaker(t, Options{RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: -1})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run() = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if err := s.SetPeers(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SetPeers after shutdown: %v, want ErrClosed", err)
	}
	if err := s.SetAdvertisements(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SetAdvertisements after shutdown: %v, want ErrClosed", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

type sessionEvents struct {
	mu sync.Mutex
	ev []string
}

func (e *sessionEvents) add(peer netip.Addr, up bool, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ev = append(e.ev, fmt.Sprintf("%s up=%v %s", peer, up, reason))
}

func (e *sessionEvents) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ev)
}

// receivedPaths lists what a speaker learnt, straight from its GoBGP RIB.
func receivedPaths(t *testing.T, s *Speaker) map[netip.Prefix]*api.Path {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	got := map[netip.Prefix]*api.Path{}
	for _, in := range s.instances {
		for _, v4 := range []bool{true, false} {
			err := in.srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: family(v4)}, func(d *api.Destination) {
				for _, p := range d.Paths {
					if !p.IsWithdraw {
						got[netip.MustParsePrefix(d.Prefix)] = p
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return got
}

// TestSpeakerToSpeaker peers two Speakers over loopback: one only dials
// (as in production), the other listens. It checks what the FRR test cannot
// see from outside: advertisements set before any peer, LOCAL_PREF
// stripped on eBGP, withdrawal, and the reason passed to OnSessionChange.
func TestSpeakerToSpeaker(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	port := freePort(t)
	var evB sessionEvents
	b := newSpeaker(t, Options{RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: int(port), ConnectRetry: time.Second, OnSessionChange: evB.add})
	a := newSpeaker(t, Options{RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: -1, ConnectRetry: time.Second})

	p1 := netip.MustParsePrefix("10.1.0.1/32")
	p2 := netip.MustParsePrefix("10.1.1.0/24")
	if err := a.SetAdvertisements([]Advertisement{
		{Prefix: p1, LocalPref: 200, Communities: []uint32{65001<<16 | 7}},
		{Prefix: p2},
		{Prefix: netip.MustParsePrefix("2001:db8::1/128")}, // no IPv6 session: not sent
	}); err != nil {
		t.Fatal(err)
	}
	// B must not dial A (A does not listen): make B passive by pointing its
	// dialer at a port nobody listens on; A's connection is accepted anyway.
	if err := b.SetPeers([]Peer{{Addr: lo, Port: freePort(t), ASN: 65001, MyASN: 65002}}); err != nil {
		t.Fatal(err)
	}
	// A per-peer router ID runs its own GoBGP server.
	aRouterID := netip.MustParseAddr("10.9.9.9")
	if err := a.SetPeers([]Peer{{Addr: lo, Port: port, ASN: 65002, MyASN: 65001, RouterID: aRouterID}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "B learns A's IPv4 prefixes", func() error {
		if got := receivedPaths(t, b); len(got) != 2 || got[p1] == nil || got[p2] == nil {
			return fmt.Errorf("B has %v", got)
		}
		return nil
	})
	path := receivedPaths(t, b)[p1]
	var sawComm, sawLocalPref bool
	var nexthop string
	for _, a := range path.Pattrs {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		switch v := m.(type) {
		case *api.CommunitiesAttribute:
			sawComm = slices.Equal(v.Communities, []uint32{65001<<16 | 7})
		case *api.LocalPrefAttribute:
			sawLocalPref = true
		case *api.NextHopAttribute:
			nexthop = v.NextHop
		}
	}
	if !sawComm || sawLocalPref || nexthop != "127.0.0.1" {
		t.Errorf("path %s: community ok %v, local-pref present %v, next hop %q; want true, false, 127.0.0.1", p1, sawComm, sawLocalPref, nexthop)
	}
	if st := a.Sessions(); len(st) != 1 || !st[0].Up || st[0].Advertised != 2 {
		t.Errorf("A's sessions: %+v, want one up with 2 prefixes advertised", st)
	}
	var remoteID string
	_ = b.instances[netip.MustParseAddr("10.0.0.2")].srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		remoteID = p.State.RouterId
	})
	if remoteID != aRouterID.String() {
		t.Errorf("B sees router ID %q, want the peer's own %s", remoteID, aRouterID)
	}

	if err := a.SetAdvertisements([]Advertisement{{Prefix: p2}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "B drops the withdrawn prefix", func() error {
		if got := receivedPaths(t, b); len(got) != 1 || got[p2] == nil {
			return fmt.Errorf("B has %v", got)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "B sees the session go down with a cease", func() error {
		ev := evB.list()
		want := []string{"127.0.0.1 up=true established"}
		if len(ev) == 2 && ev[0] == want[0] && ev[1] != "" {
			return nil
		}
		return fmt.Errorf("events %q", ev)
	})
	t.Logf("B's session events: %q", evB.list())
	if got := receivedPaths(t, b); len(got) != 0 {
		t.Errorf("B still has %v after A's shutdown", got)
	}
}
