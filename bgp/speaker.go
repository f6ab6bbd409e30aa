package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Options configure a Speaker.
type Options struct {
	// RouterID is the default BGP identifier (an IPv4 address, usually the
	// node's), used by peers that do not set their own.
	RouterID netip.Addr
	// ListenPort is the TCP port to accept sessions on; 0 means 179 and -1
	// means the speaker only dials out, as MetalLB speakers do.
	ListenPort int
	// ConnectRetry is the interval between connection attempts (GoBGP
	// waits between one and two intervals); 0 means 5s.
	ConnectRetry time.Duration
	Logger       *slog.Logger
	Metrics      *Metrics
	// OnSessionChange is called, outside of any lock, when a session
	// becomes established (up) or stops being so, with GoBGP's reason.
	OnSessionChange func(peer netip.Addr, up bool, reason string)
}

// SessionState is a peer's session as reported by GoBGP.
type SessionState struct {
	Peer netip.Addr
	// State is the FSM state in lower case: idle, connect, active,
	// opensent, openconfirm, established.
	State string
	Up    bool
	// Advertised is the number of prefixes currently sent on the session.
	Advertised uint64
	// UpdatesSent counts UPDATE messages sent since the peer was added.
	UpdatesSent uint64
}

// Speaker is an embedded BGP speaker. Its methods are safe for concurrent
// use.
type Speaker struct {
	opts Options
	log  *slog.Logger

	// mu serialises the desired-state calls and guards the fields below.
	mu        sync.Mutex
	closed    bool
	instances map[netip.Addr]*instance // by router ID
	peers     map[netip.Addr]Peer
	ads       map[netip.Prefix]Advertisement

	// evMu guards what GoBGP's goroutines report; it is never held while
	// calling GoBGP.
	evMu         sync.Mutex
	up           map[netip.Addr]bool
	reasons      map[netip.Addr]string
	lastConnWarn map[netip.Addr]time.Time
	passwords    map[netip.Addr]bool

	done chan struct{}
}

// instance is one GoBGP server. GoBGP has one router ID per server, so
// peers with different router IDs get separate servers; normally there is
// one.
type instance struct {
	routerID netip.Addr
	srv      *server.BgpServer
	stop     context.CancelFunc
	peers    map[netip.Addr]bool
}

const connWarnInterval = time.Minute

// New validates the options and returns a Speaker with no peers and no
// advertisements. GoBGP servers are started when SetPeers first needs them
// (one per distinct router ID) and stopped by Shutdown.
func New(opts Options) (*Speaker, error) {
	if opts.RouterID.IsValid() {
		opts.RouterID = opts.RouterID.Unmap()
		if !opts.RouterID.Is4() {
			return nil, fmt.Errorf("%w: router ID %s: must be an IPv4 address", ErrInvalidOptions, opts.RouterID)
		}
	}
	if opts.ListenPort < -1 || opts.ListenPort > 65535 {
		return nil, fmt.Errorf("%w: listen port %d: must be -1 or 0..65535", ErrInvalidOptions, opts.ListenPort)
	}
	if opts.ConnectRetry < 0 {
		return nil, fmt.Errorf("%w: connect retry %s: must not be negative", ErrInvalidOptions, opts.ConnectRetry)
	}
	if opts.ConnectRetry == 0 {
		opts.ConnectRetry = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Speaker{
		opts:         opts,
		log:          opts.Logger,
		instances:    map[netip.Addr]*instance{},
		peers:        map[netip.Addr]Peer{},
		ads:          map[netip.Prefix]Advertisement{},
		up:           map[netip.Addr]bool{},
		reasons:      map[netip.Addr]string{},
		lastConnWarn: map[netip.Addr]time.Time{},
		passwords:    map[netip.Addr]bool{},
		done:         make(chan struct{}),
	}
	if opts.Metrics != nil {
		opts.Metrics.add(s)
	}
	return s, nil
}

// Run blocks until ctx ends, then shuts the speaker down gracefully (within
// 5 seconds).
func (s *Speaker) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.done:
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

// SetPeers makes the given peers the speaker's desired set: new peers are
// added, missing ones removed (their sessions closed with a Cease
// NOTIFICATION), and peers whose parameters changed are re-created; sessions
// of unchanged peers are left alone. If any peer is invalid nothing changes.
func (s *Speaker) SetPeers(peers []Peer) error {
	want := make(map[netip.Addr]Peer, len(peers))
	for _, p := range peers {
		np, err := p.normalize(s.opts.RouterID)
		if err != nil {
			return err
		}
		if _, dup := want[np.Addr]; dup {
			return fmt.Errorf("%w: %s", ErrDuplicatePeer, np.Addr)
		}
		want[np.Addr] = np
	}

	var downs []netip.Addr
	defer func() { s.notifyDown(downs, "peer removed from configuration") }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	ctx := context.Background()
	var errs []error
	for _, addr := range sortedKeys(s.peers) {
		old := s.peers[addr]
		if np, ok := want[addr]; ok && np == old {
			continue
		}
		wasUp, err := s.deletePeer(ctx, old)
		if err != nil {
			errs = append(errs, err)
		}
		if wasUp {
			downs = append(downs, addr)
		}
	}
	for _, addr := range sortedKeys(want) {
		np := want[addr]
		if _, ok := s.peers[addr]; ok {
			continue // unchanged
		}
		if err := s.addPeer(ctx, np); err != nil {
			errs = append(errs, err)
		}
	}
	// Servers left without peers keep running: GoBGP's Serve goroutine never
	// returns, so stopping and recreating them on every reload would leak.
	return errors.Join(errs...)
}

// deletePeer removes a peer and reports whether its session was up.
func (s *Speaker) deletePeer(ctx context.Context, p Peer) (bool, error) {
	in := s.instances[p.RouterID]
	if in != nil {
		if err := in.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Addr.String()}); err != nil {
			return false, fmt.Errorf("removing BGP peer %s: %w", p.Addr, err)
		}
		delete(in.peers, p.Addr)
	}
	delete(s.peers, p.Addr)
	s.evMu.Lock()
	wasUp := s.up[p.Addr]
	delete(s.up, p.Addr)
	delete(s.passwords, p.Addr)
	delete(s.lastConnWarn, p.Addr)
	s.evMu.Unlock()
	s.log.Info("BGP peer removed", "peer", p.Addr, "sessionWasUp", wasUp)
	return wasUp, nil
}

// notifyDown calls OnSessionChange for sessions the speaker closed itself;
// it runs after s.mu is released so the callback may call the Speaker.
func (s *Speaker) notifyDown(peers []netip.Addr, reason string) {
	if s.opts.OnSessionChange == nil {
		return
	}
	for _, p := range peers {
		s.opts.OnSessionChange(p, false, reason)
	}
}

func (s *Speaker) addPeer(ctx context.Context, p Peer) error {
	in, err := s.instanceFor(ctx, p)
	if err != nil {
		return err
	}
	s.evMu.Lock()
	s.passwords[p.Addr] = p.Password != ""
	s.evMu.Unlock()
	if err := in.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p.apiPeer(s.opts.ConnectRetry)}); err != nil {
		return fmt.Errorf("adding BGP peer %s: %w", p, err)
	}
	in.peers[p.Addr] = true
	s.peers[p.Addr] = p
	s.log.Info("BGP peer added", "peer", p.Addr, "port", p.Port, "peerASN", p.ASN, "myASN", p.MyASN,
		"routerID", p.RouterID, "md5", p.Password != "", "ebgpMultihop", p.EBGPMultiHop)
	return nil
}

// instanceFor returns the GoBGP server for the peer's router ID, starting
// it (with the current advertisements) if needed.
func (s *Speaker) instanceFor(ctx context.Context, p Peer) (*instance, error) {
	if in := s.instances[p.RouterID]; in != nil {
		return in, nil
	}
	srv := server.NewBgpServer(server.LoggerOption(&gobgpLogger{log: s.log, s: s}))
	go srv.Serve()
	port := int32(-1)
	if p.RouterID == s.opts.RouterID && s.opts.ListenPort >= 0 {
		port = int32(s.opts.ListenPort)
		if port == 0 {
			port = 179
		}
	}
	// The global AS only matters as a default: every neighbor carries its
	// own local AS.
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        p.MyASN,
		RouterId:   p.RouterID.String(),
		ListenPort: port,
	}}); err != nil {
		srv.Stop()
		return nil, fmt.Errorf("starting BGP server with router ID %s: %w", p.RouterID, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	if err := srv.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, s.onEvent); err != nil {
		cancel()
		srv.Stop()
		return nil, fmt.Errorf("watching BGP server with router ID %s: %w", p.RouterID, err)
	}
	in := &instance{routerID: p.RouterID, srv: srv, stop: cancel, peers: map[netip.Addr]bool{}}
	s.instances[p.RouterID] = in
	for _, pfx := range sortedPrefixes(s.ads) {
		if err := addPath(ctx, srv, s.ads[pfx]); err != nil {
			return in, err
		}
	}
	return in, nil
}

func (s *Speaker) stopInstance(ctx context.Context, in *instance) {
	_ = in.srv.StopBgp(ctx, &api.StopBgpRequest{})
	in.stop()
}

// SetAdvertisements makes ads the set of prefixes announced to every peer
// of the matching address family: new prefixes are announced, missing ones
// withdrawn and those whose attributes changed re-announced (an implicit
// replacement, without a withdrawal in between). Advertisements of the same
// prefix are merged: union of communities, highest local preference.
// Calling it again with the same set sends nothing.
func (s *Speaker) SetAdvertisements(ads []Advertisement) error {
	for _, ad := range ads {
		if !ad.Prefix.IsValid() {
			return fmt.Errorf("%w: prefix %v: not a valid prefix", ErrInvalidAdvertisement, ad.Prefix)
		}
	}
	want := make(map[netip.Prefix]Advertisement, len(ads))
	for _, ad := range mergeAdvertisements(unmapPrefixes(ads)) {
		want[ad.Prefix] = ad
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	ctx := context.Background()
	var errs []error
	for _, pfx := range sortedPrefixes(s.ads) {
		if _, ok := want[pfx]; ok {
			continue
		}
		failed := false
		for _, in := range s.instances {
			if err := deletePath(ctx, in.srv, s.ads[pfx]); err != nil {
				errs = append(errs, err)
				failed = true
			}
		}
		if !failed { // else retried by the next call
			delete(s.ads, pfx)
			s.log.Debug("BGP prefix withdrawn", "prefix", pfx)
		}
	}
	for _, pfx := range sortedPrefixes(want) {
		ad := want[pfx]
		if cur, ok := s.ads[pfx]; ok && sameAttributes(cur, ad) {
			continue
		}
		failed := false
		for _, in := range s.instances {
			if err := addPath(ctx, in.srv, ad); err != nil {
				errs = append(errs, err)
				failed = true
			}
		}
		if !failed {
			s.ads[pfx] = ad
			s.log.Debug("BGP prefix announced", "prefix", pfx, "localPref", ad.LocalPref, "communities", formatCommunities(ad.Communities))
		}
	}
	return errors.Join(errs...)
}

func unmapPrefixes(ads []Advertisement) []Advertisement {
	out := make([]Advertisement, len(ads))
	for i, ad := range ads {
		out[i] = ad
		if ad.Prefix.Addr().Is4In6() {
			bits := ad.Prefix.Bits() - 96
			if bits < 0 {
				bits = 0
			}
			out[i].Prefix = netip.PrefixFrom(ad.Prefix.Addr().Unmap(), bits)
		}
	}
	return out
}

func formatCommunities(cs []uint32) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = FormatCommunity(c)
	}
	return strings.Join(parts, " ")
}

// apiPath builds the GoBGP path of an advertisement. The next hop is left
// unspecified so that GoBGP sends the session's local address, on eBGP and
// iBGP sessions alike.
func apiPath(ad Advertisement) (*api.Path, error) {
	v4 := ad.Prefix.Addr().Is4()
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: ad.Prefix.Addr().String(), PrefixLen: uint32(ad.Prefix.Bits())})
	if err != nil {
		return nil, err
	}
	attrs := []proto.Message{&api.OriginAttribute{Origin: 0}} // IGP
	if v4 {
		attrs = append(attrs, &api.NextHopAttribute{NextHop: "0.0.0.0"})
	} else {
		attrs = append(attrs, &api.MpReachNLRIAttribute{Family: family(false), NextHops: []string{"::"}, Nlris: []*anypb.Any{nlri}})
	}
	// Always set, 0 when the advertisement has none: MetalLB's native speaker sends
	// LOCAL_PREF 0 on iBGP, where GoBGP would add its default of 100. GoBGP removes the
	// attribute on eBGP sessions.
	attrs = append(attrs, &api.LocalPrefAttribute{LocalPref: ad.LocalPref})
	if len(ad.Communities) > 0 {
		attrs = append(attrs, &api.CommunitiesAttribute{Communities: ad.Communities})
	}
	pattrs := make([]*anypb.Any, 0, len(attrs))
	for _, a := range attrs {
		x, err := anypb.New(a)
		if err != nil {
			return nil, err
		}
		pattrs = append(pattrs, x)
	}
	return &api.Path{Family: family(v4), Nlri: nlri, Pattrs: pattrs}, nil
}

func addPath(ctx context.Context, srv *server.BgpServer, ad Advertisement) error {
	p, err := apiPath(ad)
	if err == nil {
		_, err = srv.AddPath(ctx, &api.AddPathRequest{Path: p})
	}
	if err != nil {
		return fmt.Errorf("announcing %s: %w", ad.Prefix, err)
	}
	return nil
}

func deletePath(ctx context.Context, srv *server.BgpServer, ad Advertisement) error {
	p, err := apiPath(ad)
	if err == nil {
		err = srv.DeletePath(ctx, &api.DeletePathRequest{Path: p})
	}
	if err != nil {
		return fmt.Errorf("withdrawing %s: %w", ad.Prefix, err)
	}
	return nil
}

// Shutdown withdraws every route, waits (up to 2s or ctx) until no peer has
// any left, then closes all sessions with a Cease NOTIFICATION. Later calls
// return nil; other methods return ErrClosed.
func (s *Speaker) Shutdown(ctx context.Context) error {
	var wasUp []netip.Addr
	defer func() { s.notifyDown(wasUp, "speaker shutdown") }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	defer close(s.done)
	if s.opts.Metrics != nil {
		s.opts.Metrics.remove(s)
	}
	var errs []error
	for _, in := range s.instances {
		if err := in.srv.DeletePath(ctx, &api.DeletePathRequest{}); err != nil {
			errs = append(errs, fmt.Errorf("withdrawing all routes: %w", err))
		}
	}
	s.ads = map[netip.Prefix]Advertisement{}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for !s.allWithdrawn(wctx) {
		select {
		case <-wctx.Done():
			s.log.Warn("BGP shutdown: routes still advertised, closing sessions anyway")
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	for id, in := range s.instances {
		s.stopInstance(ctx, in)
		delete(s.instances, id)
	}
	s.evMu.Lock()
	for p, up := range s.up {
		if up {
			wasUp = append(wasUp, p)
		}
	}
	s.up = map[netip.Addr]bool{}
	s.evMu.Unlock()
	slices.SortFunc(wasUp, netip.Addr.Compare)
	for _, p := range wasUp {
		s.log.Info("BGP session closed", "peer", p, "reason", "speaker shutdown")
	}
	s.peers = map[netip.Addr]Peer{}
	return errors.Join(errs...)
}

func (s *Speaker) allWithdrawn(ctx context.Context) bool {
	for _, in := range s.instances {
		for _, st := range listPeers(ctx, in.srv) {
			if st.Up && st.Advertised > 0 {
				return false
			}
		}
	}
	return true
}

// Sessions returns the state of every configured peer, sorted by address.
// It queries GoBGP: O(peers + advertised prefixes).
func (s *Speaker) Sessions() []SessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SessionState
	for _, in := range s.instances {
		out = append(out, listPeers(context.Background(), in.srv)...)
	}
	slices.SortFunc(out, func(a, b SessionState) int { return a.Peer.Compare(b.Peer) })
	return out
}

func listPeers(ctx context.Context, srv *server.BgpServer) []SessionState {
	var out []SessionState
	_ = srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.State == nil {
			return
		}
		addr, err := netip.ParseAddr(p.State.NeighborAddress)
		if err != nil {
			return
		}
		st := SessionState{
			Peer:  addr.Unmap(),
			State: strings.ToLower(p.State.SessionState.String()),
			Up:    p.State.SessionState == api.PeerState_ESTABLISHED,
		}
		if m := p.State.Messages; m != nil && m.Sent != nil {
			st.UpdatesSent = m.Sent.Update
		}
		for _, af := range p.AfiSafis {
			if af.State != nil {
				st.Advertised += af.State.Advertised
			}
		}
		out = append(out, st)
	})
	return out
}

// onEvent runs on GoBGP's watcher goroutine.
func (s *Speaker) onEvent(r *api.WatchEventResponse) {
	pe := r.GetPeer()
	if pe == nil || pe.Type != api.WatchEventResponse_PeerEvent_STATE || pe.Peer == nil || pe.Peer.State == nil {
		return
	}
	addr, err := netip.ParseAddr(pe.Peer.State.NeighborAddress)
	if err != nil {
		return
	}
	addr = addr.Unmap()
	state := strings.ToLower(pe.Peer.State.SessionState.String())
	up := pe.Peer.State.SessionState == api.PeerState_ESTABLISHED

	s.evMu.Lock()
	_, configured := s.passwords[addr] // present for every configured peer
	wasUp := s.up[addr]
	if configured {
		s.up[addr] = up
	}
	reason := s.reasons[addr]
	if up {
		delete(s.lastConnWarn, addr)
	}
	s.evMu.Unlock()

	if !configured || up == wasUp {
		s.log.Debug("BGP session state", "peer", addr, "state", state)
		return
	}
	if up {
		local := ""
		if pe.Peer.Transport != nil {
			local = pe.Peer.Transport.LocalAddress
		}
		s.log.Info("BGP session established", "peer", addr, "localAddress", local, "peerRouterID", pe.Peer.State.RouterId)
		reason = "established"
	} else {
		s.log.Warn("BGP session down", "peer", addr, "state", state, "reason", reason)
	}
	if s.opts.OnSessionChange != nil {
		s.opts.OnSessionChange(addr, up, reason)
	}
}

func (s *Speaker) noteReason(peer netip.Addr, reason string) {
	s.evMu.Lock()
	s.reasons[peer] = reason
	s.evMu.Unlock()
}

// noteConnectFailure logs failed connection attempts at most once a
// minute per peer. A router that does not accept our TCP MD5 signature
// drops the SYN silently, so the attempt just times out; say so.
func (s *Speaker) noteConnectFailure(peer netip.Addr, errText string) {
	s.evMu.Lock()
	md5, configured := s.passwords[peer]
	last := s.lastConnWarn[peer]
	now := time.Now()
	warn := configured && now.Sub(last) >= connWarnInterval
	if warn {
		s.lastConnWarn[peer] = now
	}
	s.evMu.Unlock()
	if !warn {
		return
	}
	if md5 {
		s.log.Warn("BGP connection to peer failed; TCP MD5 password is set, so a password mismatch with the router (it then drops our packets silently) is a likely cause",
			"peer", peer, "error", errText)
		return
	}
	s.log.Warn("BGP connection to peer failed", "peer", peer, "error", errText)
}

func sortedKeys(m map[netip.Addr]Peer) []netip.Addr {
	keys := make([]netip.Addr, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, netip.Addr.Compare)
	return keys
}

func sortedPrefixes(m map[netip.Prefix]Advertisement) []netip.Prefix {
	keys := make([]netip.Prefix, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, comparePrefix)
	return keys
}
