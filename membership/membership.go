package membership

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalidOptions: New was given options it cannot work with; the
	// wrapped message names the field and the value.
	ErrInvalidOptions = errors.New("invalid membership options")
	// ErrClosed: the member has been shut down (Run returned).
	ErrClosed = errors.New("membership is shut down")
	// ErrAlreadyRunning: Run was called a second time.
	ErrAlreadyRunning = errors.New("membership is already running")
)

// MinSecretLength is the shortest memberlist Secret value accepted. The
// walkthrough's `openssl rand -base64 128` gives 172 characters; a few
// characters typed by hand would make the AES key guessable.
const MinSecretLength = 16

// Label is put on every memberlist packet and stream (and authenticated with
// the key): traffic of another memberlist cluster on the same port, MetalLB's
// for one, is rejected before it is even decrypted.
const Label = "ironlb"

const (
	// DefaultPort is MetalLB's memberlist port.
	DefaultPort = 7946
	// DefaultRejoinInterval is how often Run joins seeds that are missing
	// from the membership.
	DefaultRejoinInterval = 3 * time.Second
	// shutdownLeaveTimeout bounds the Leave that Run does on its way out
	// when the caller has not left already.
	shutdownLeaveTimeout = time.Second
	// maxParallelJoins bounds the concurrent re-join attempts: each may wait
	// TCPTimeout for a seed whose link is cut, and they must not serialise.
	maxParallelJoins = 8
)

// Options configures a member. NodeName and BindAddr are required.
type Options struct {
	// NodeName is the Kubernetes node name, used as the memberlist name.
	NodeName string
	// BindAddr is the node IP to bind and advertise; it must be a specific
	// address (not 0.0.0.0 or ::) so that peers learn a reachable one.
	BindAddr netip.Addr
	// BindPort defaults to DefaultPort when zero. Tests that need a free
	// port ask for one with a negative value (the kernel picks it).
	BindPort int
	// SecretKey is the raw value of the memberlist Secret; the AES-256 key
	// is KeyFromSecret(SecretKey). Empty means no encryption: the caller
	// decides whether that is allowed. A non-empty value must have at least
	// MinSecretLength bytes.
	SecretKey []byte
	// ExtraSecretKeys are further Secret values whose keys decrypt incoming
	// traffic but never encrypt: during a key rotation each speaker accepts
	// both the old and the new key (see "Key rotation" in the package doc).
	// Each needs MinSecretLength bytes; they require SecretKey.
	ExtraSecretKeys [][]byte
	// Standby starts the member as alive but not a candidate: it tells the
	// others (in its node metadata) not to elect it, because it cannot serve
	// (the speaker has no valid configuration yet). See SetStandby.
	Standby bool
	// Seeds returns the addresses of the other speakers (the glue reads them
	// from the Kubernetes API). It is called on every re-join tick and may
	// return this member's own address, which is ignored.
	Seeds func() []netip.AddrPort
	// RejoinInterval defaults to DefaultRejoinInterval.
	RejoinInterval time.Duration
	// Timings zero fields take the DefaultTimings values.
	Timings Timings
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// wrapTransport lets in-package tests put a lossy network between
	// members (partitions, cut links) without touching the host.
	wrapTransport func(*memberlist.NetTransport) memberlist.NodeAwareTransport
	// observe lets in-package tests timestamp each membership event.
	observe func(event)
}

// eventKind says what happened to a member.
type eventKind int

const (
	eventJoin   eventKind = iota + 1 // a new or returning member is alive
	eventFailed                      // declared dead by failure detection
	eventLeft                        // announced its own departure (Leave)
	eventUpdate                      // metadata changed
)

func (k eventKind) String() string {
	switch k {
	case eventJoin:
		return "joined"
	case eventFailed:
		return "failed"
	case eventLeft:
		return "left"
	case eventUpdate:
		return "updated"
	}
	return "unknown(" + strconv.Itoa(int(k)) + ")"
}

// event is one membership change as seen by this member.
type event struct {
	kind eventKind
	node string
	addr netip.AddrPort
	at   time.Time
}

// Members is this speaker's view of the speaker cluster.
type Members struct {
	opts    Options
	log     *slog.Logger
	ml      *memberlist.Memberlist
	self    netip.AddrPort
	changes chan struct{}

	// peers mirrors memberlist's alive (and suspect) members, kept from its
	// callbacks: the *Node values memberlist hands out are mutated later
	// under its own lock, so reading them afterwards would race.
	peersMu sync.Mutex
	peers   map[string]peer

	running  atomic.Bool
	left     atomic.Bool
	leaving  atomic.Bool // advertised in the node metadata, see delegate
	standby  atomic.Bool // advertised in the node metadata, see delegate
	shutMu   sync.Mutex  // serialises Leave and Shutdown: memberlist panics on Leave after Shutdown
	shutdown bool

	departures sync.Map // member name → eventKind of its last departure (eventLeft or eventFailed)
}

// peer is what this member knows of another alive member.
type peer struct {
	addr    netip.AddrPort
	standby bool // it asked not to be elected (no usable configuration)
}

// KeyFromSecret derives the AES-256 memberlist key from the Secret's value:
// all 32 bytes of its SHA-256 (MetalLB v0.12 meant the same but ended up
// with a 16-byte AES-128 key; the two are deliberately not compatible).
func KeyFromSecret(secret []byte) []byte {
	sum := sha256.Sum256(secret)
	return sum[:]
}

// New binds the member's UDP and TCP sockets on BindAddr:BindPort and starts
// failure detection; it does not contact anyone until Run. Run must be
// called to join the cluster and, at the end, to release the sockets.
func New(opts Options) (*Members, error) {
	if opts.NodeName == "" {
		return nil, fmt.Errorf("%w: NodeName is empty", ErrInvalidOptions)
	}
	if !opts.BindAddr.IsValid() || opts.BindAddr.IsUnspecified() {
		return nil, fmt.Errorf("%w: BindAddr %q: need the node's own IP, not an unspecified address", ErrInvalidOptions, opts.BindAddr)
	}
	opts.BindAddr = opts.BindAddr.Unmap()
	switch {
	case opts.BindPort == 0:
		opts.BindPort = DefaultPort
	case opts.BindPort < 0:
		opts.BindPort = 0
	case opts.BindPort > 65535:
		return nil, fmt.Errorf("%w: BindPort %d is out of range", ErrInvalidOptions, opts.BindPort)
	}
	if n := len(opts.SecretKey); n > 0 && n < MinSecretLength {
		return nil, fmt.Errorf("%w: SecretKey is %d bytes long, need at least %d: create the Secret with "+
			"--from-literal=secretkey=\"$(openssl rand -base64 128)\"", ErrInvalidOptions, n, MinSecretLength)
	}
	for i, k := range opts.ExtraSecretKeys {
		if len(opts.SecretKey) == 0 {
			return nil, fmt.Errorf("%w: ExtraSecretKeys given without SecretKey: extra keys only widen what an encrypted member accepts", ErrInvalidOptions)
		}
		if len(k) < MinSecretLength {
			return nil, fmt.Errorf("%w: ExtraSecretKeys[%d] is %d bytes long, need at least %d", ErrInvalidOptions, i, len(k), MinSecretLength)
		}
	}
	if opts.RejoinInterval < 0 {
		return nil, fmt.Errorf("%w: RejoinInterval %s is negative", ErrInvalidOptions, opts.RejoinInterval)
	}
	if opts.RejoinInterval == 0 {
		opts.RejoinInterval = DefaultRejoinInterval
	}
	timings := opts.Timings.withDefaults()
	if err := timings.validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Members{
		opts:    opts,
		log:     opts.Logger.With("component", "membership", "node", opts.NodeName),
		changes: make(chan struct{}, 1),
		peers:   make(map[string]peer),
	}
	m.standby.Store(opts.Standby)

	stdLog := log.New(&logWriter{log: m.log}, "", 0)
	nt, err := newNetTransport(opts.BindAddr, opts.BindPort, stdLog)
	if err != nil {
		return nil, err
	}
	port := nt.GetAutoBindPort()
	var transport memberlist.NodeAwareTransport = nt
	if opts.wrapTransport != nil {
		transport = opts.wrapTransport(nt)
	}
	m.self = netip.AddrPortFrom(opts.BindAddr, uint16(port))

	conf := memberlist.DefaultLANConfig()
	conf.Name = opts.NodeName
	conf.BindAddr = opts.BindAddr.String()
	conf.BindPort = port
	conf.AdvertiseAddr = opts.BindAddr.String()
	conf.AdvertisePort = port
	conf.Transport = transport
	conf.Logger = stdLog
	conf.Events = &events{m: m}
	conf.Delegate = &delegate{m: m}
	timings.apply(conf)
	conf.Label = Label
	if len(opts.SecretKey) > 0 {
		primary := KeyFromSecret(opts.SecretKey)
		keys := [][]byte{primary}
		for _, k := range opts.ExtraSecretKeys {
			keys = append(keys, KeyFromSecret(k))
		}
		ring, err := memberlist.NewKeyring(keys, primary)
		if err != nil {
			_ = nt.Shutdown()
			return nil, fmt.Errorf("%w: memberlist keyring: %v", ErrInvalidOptions, err)
		}
		conf.Keyring = ring
	} else {
		m.log.Warn("memberlist traffic is not encrypted: no secret key given")
	}

	ml, err := memberlist.Create(conf)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("starting memberlist as %q on %s: %w", opts.NodeName, m.self, err)
	}
	m.ml = ml
	return m, nil
}

// newNetTransport binds memberlist's UDP+TCP transport. Port 0 asks the
// kernel for a free TCP port and then binds UDP on the same number, which
// can race with another process, hence the retries (as memberlist does).
func newNetTransport(addr netip.Addr, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	attempts := 1
	if port == 0 {
		attempts = 10
	}
	var err error
	for range attempts {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{addr.String()},
			BindPort:  port,
			Logger:    logger,
		})
		if err == nil {
			return nt, nil
		}
	}
	return nil, fmt.Errorf("binding memberlist UDP and TCP on %s: %w", netip.AddrPortFrom(addr, uint16(port)), err)
}

// Run joins the seeds, then every RejoinInterval joins again the seeds that
// are not alive members (this heals partitions within a few intervals), and
// blocks until ctx ends. Then it leaves (unless Leave was called already),
// shuts memberlist down and releases the sockets.
func (m *Members) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	m.rejoin(ctx)
	t := time.NewTicker(m.opts.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return m.stop()
		case <-t.C:
			m.rejoin(ctx)
		}
	}
}

func (m *Members) stop() error {
	var errs []error
	if !m.left.Load() {
		if err := m.Leave(shutdownLeaveTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	m.shutMu.Lock()
	defer m.shutMu.Unlock()
	if !m.shutdown {
		m.shutdown = true
		if err := m.ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("shutting memberlist down: %w", err))
		}
	}
	return errors.Join(errs...)
}

// rejoin joins, in parallel, every seed that is not an alive member.
func (m *Members) rejoin(ctx context.Context) {
	if m.left.Load() || m.opts.Seeds == nil {
		return
	}
	members := make(map[netip.AddrPort]bool)
	m.peersMu.Lock()
	for _, p := range m.peers {
		members[p.addr] = true
	}
	m.peersMu.Unlock()
	var missing []netip.AddrPort
	for _, s := range m.opts.Seeds() {
		s = netip.AddrPortFrom(s.Addr().Unmap(), s.Port())
		if s == m.self || members[s] || slices.Contains(missing, s) {
			continue
		}
		missing = append(missing, s)
	}
	if len(missing) == 0 {
		return
	}
	sem := make(chan struct{}, maxParallelJoins)
	var wg sync.WaitGroup
	for _, s := range missing {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := m.ml.Join([]string{s.String()}); err != nil {
				// Expected while a speaker starts or its node is cut off;
				// the next tick tries again.
				m.log.Debug("joining seed failed", "seed", s, "err", err)
				return
			}
			m.log.Info("joined seed", "seed", s)
		})
	}
	wg.Wait()
}

// Alive returns the names of the members that have not failed or left
// (suspected members still count: they may refute), sorted, including this
// one, whether or not they are on standby. O(n log n).
func (m *Members) Alive() []string { return m.list(false) }

// Candidates is Alive without the members on standby (see SetStandby): the
// members an election may choose. This member is included unless it is on
// standby itself. O(n log n).
func (m *Members) Candidates() []string { return m.list(true) }

func (m *Members) list(candidatesOnly bool) []string {
	m.peersMu.Lock()
	names := make([]string, 0, len(m.peers))
	for name, p := range m.peers {
		if candidatesOnly && p.standby {
			continue
		}
		names = append(names, name)
	}
	m.peersMu.Unlock()
	slices.Sort(names)
	return names
}

// Withdrawn reports whether the named member is known not to serve for now:
// it left on purpose, or it is alive but on standby. The restart grace of
// [Liveness] is for members that crashed and will be back shortly; a
// withdrawn member gets none. O(1).
func (m *Members) Withdrawn(name string) bool {
	if m.Left(name) {
		return true
	}
	m.peersMu.Lock()
	p, ok := m.peers[name]
	m.peersMu.Unlock()
	return ok && p.standby
}

// SetStandby changes whether this member asks not to be elected and, when
// that changed, gossips its new metadata, waiting up to timeout for the
// update to be sent. A speaker is on standby while it has no valid
// configuration: it announces nothing, so the IPs it would win would be
// dark; the others keep them instead.
func (m *Members) SetStandby(standby bool, timeout time.Duration) error {
	if m.standby.Swap(standby) == standby {
		return nil
	}
	m.log.Info("changing candidacy", "standby", standby)
	m.shutMu.Lock()
	defer m.shutMu.Unlock()
	if m.shutdown {
		return ErrClosed
	}
	if err := m.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("gossiping standby=%t as %q (timeout %s): %w", standby, m.opts.NodeName, timeout, err)
	}
	return nil
}

// Changes delivers one value after any membership change (join, failure,
// leave, metadata update). Notifications coalesce: after a burst the
// receiver sees at least one value and should re-read Alive.
func (m *Members) Changes() <-chan struct{} { return m.changes }

// Leave announces a planned departure and waits up to timeout for the
// announcement to be sent; the others then drop this member at once instead
// of waiting for failure detection. The member keeps answering probes until
// Run ends. Re-joining stops.
func (m *Members) Leave(timeout time.Duration) error {
	m.shutMu.Lock()
	defer m.shutMu.Unlock()
	if m.shutdown {
		return ErrClosed
	}
	m.left.Store(true)
	// memberlist tells the others "dead" in both cases and its callbacks do
	// not say whether a member left or failed. Advertising "leaving" in the
	// metadata first lets them tell a planned departure from a failure.
	// The update is gossiped to completion before the leave (a queued
	// leave would cancel it), which costs about two gossip intervals.
	start := time.Now()
	m.leaving.Store(true)
	if err := m.ml.UpdateNode(timeout); err != nil {
		m.log.Warn("the others may report this planned leave as a failure", "err", err)
	}
	if err := m.ml.Leave(max(timeout-time.Since(start), time.Millisecond)); err != nil {
		return fmt.Errorf("leaving memberlist as %q (timeout %s): %w", m.opts.NodeName, timeout, err)
	}
	return nil
}

func (m *Members) notify() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

func nodeAddr(n *memberlist.Node) (netip.AddrPort, bool) {
	a, ok := netip.AddrFromSlice(n.Addr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), n.Port), true
}

// events receives memberlist's callbacks. They run with memberlist's node
// lock held: they must not block or call back into memberlist.
type events struct{ m *Members }

func (e *events) NotifyJoin(n *memberlist.Node) { e.emit(eventJoin, n) }
func (e *events) NotifyUpdate(n *memberlist.Node) {
	// A member announcing that it is leaving is gone for the election from now on: the next
	// owner takes over while the leaver, which has already withdrawn, still forwards traffic.
	if isLeaving(n.Meta) {
		e.emit(eventLeft, n)
		return
	}
	e.emit(eventUpdate, n)
}
func (e *events) NotifyLeave(n *memberlist.Node) {
	// memberlist never fills n.State for callbacks; the metadata says it.
	if isLeaving(n.Meta) {
		e.emit(eventLeft, n)
		return
	}
	e.emit(eventFailed, n)
}

func (e *events) emit(kind eventKind, n *memberlist.Node) {
	ev := event{kind: kind, node: n.Name, at: time.Now()}
	ev.addr, _ = nodeAddr(n)
	e.m.peersMu.Lock()
	switch kind {
	case eventJoin, eventUpdate:
		e.m.peers[n.Name] = peer{addr: ev.addr, standby: isStandby(n.Meta)}
	default:
		delete(e.m.peers, n.Name)
	}
	e.m.peersMu.Unlock()
	level := slog.LevelInfo
	if kind == eventFailed {
		level = slog.LevelWarn
	}
	switch kind {
	case eventLeft, eventFailed:
		e.m.departures.Store(n.Name, kind)
	case eventJoin:
		e.m.departures.Delete(n.Name)
	}
	e.m.log.Log(context.Background(), level, "member "+kind.String(), "member", n.Name, "addr", ev.addr, "standby", isStandby(n.Meta))
	if e.m.opts.observe != nil {
		e.m.opts.observe(ev)
	}
	e.m.notify()
}

// Node metadata. A candidate publishes none; the other two states are plain
// words, so that the versions before standby existed, which compare the
// metadata with "leaving", still read a leave right.
var (
	// metaLeaving: the member is leaving on purpose.
	metaLeaving = []byte("leaving")
	// metaStandby: the member is alive but must not be elected.
	metaStandby = []byte("standby")
)

func isLeaving(meta []byte) bool { return bytes.Equal(meta, metaLeaving) }

// isStandby: a leaving member is about to be gone, so it is not a candidate
// either, but Left covers it.
func isStandby(meta []byte) bool { return bytes.Equal(meta, metaStandby) }

// delegate publishes this member's metadata; ironlb sends no user messages.
type delegate struct{ m *Members }

func (d *delegate) NodeMeta(limit int) []byte {
	var meta []byte
	switch {
	case d.m.leaving.Load():
		meta = metaLeaving
	case d.m.standby.Load():
		meta = metaStandby
	}
	if len(meta) > limit {
		return nil
	}
	return meta
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// Make sure the transport we build satisfies what memberlist wants, so that
// it never falls back to its shim.
var _ memberlist.NodeAwareTransport = (*memberlist.NetTransport)(nil)
