package membership

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// lossyNet sits between test members: it can cut a member's link (every
// packet to or from it vanishes, dials time out, as with a pulled cable)
// and split members into partitions. Each member's transport drops what it
// would send across a cut, which is enough because every exchange starts
// with a send.
type lossyNet struct {
	packets, bytes atomic.Int64 // UDP packets and bytes actually sent

	mu    sync.RWMutex
	cut   map[netip.AddrPort]bool
	group map[netip.AddrPort]int // members in different non-zero groups cannot talk
}

func newLossyNet() *lossyNet {
	return &lossyNet{cut: map[netip.AddrPort]bool{}, group: map[netip.AddrPort]int{}}
}

func (n *lossyNet) blocked(from, to netip.AddrPort) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.cut[from] || n.cut[to] {
		return true
	}
	gf, gt := n.group[from], n.group[to]
	return gf != 0 && gt != 0 && gf != gt
}

func (n *lossyNet) setCut(a netip.AddrPort, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[a] = cut
}

func (n *lossyNet) setGroup(a netip.AddrPort, g int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group[a] = g
}

func (n *lossyNet) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
	clear(n.group)
}

type lossyTransport struct {
	*memberlist.NetTransport
	net  *lossyNet
	self netip.AddrPort
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout (link cut by test)" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (t *lossyTransport) drop(addr string) bool {
	to, err := netip.ParseAddrPort(addr)
	return err == nil && t.net.blocked(t.self, to)
}

func (t *lossyTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.drop(addr) {
		return time.Now(), nil
	}
	t.net.packets.Add(1)
	t.net.bytes.Add(int64(len(b)))
	return t.NetTransport.WriteTo(b, addr)
}

func (t *lossyTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *lossyTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.drop(addr) {
		time.Sleep(timeout)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: timeoutError{}}
	}
	return t.NetTransport.DialTimeout(addr, timeout)
}

func (t *lossyTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// recorder keeps the events one member saw.
type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) add(e event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// first returns the first event of kind about node at or after since.
func (r *recorder) first(kind eventKind, node string, since time.Time) (event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.kind == kind && e.node == node && !e.at.Before(since) {
			return e, true
		}
	}
	return event{}, false
}

func (r *recorder) about(node string, since time.Time) []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event
	for _, e := range r.events {
		if e.node == node && !e.at.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

type member struct {
	name string
	m    *Members
	rec  *recorder
	stop context.CancelFunc
	done chan error
}

func (tm *member) addr() netip.AddrPort { return tm.m.self }

// crash stops the member the way a killed process does: no Leave, sockets
// closed, nobody told.
func (tm *member) crash(t testing.TB) {
	t.Helper()
	tm.m.shutMu.Lock()
	tm.m.shutdown = true
	err := tm.m.ml.Shutdown()
	tm.m.shutMu.Unlock()
	if err != nil {
		t.Fatalf("crash %s: %v", tm.name, err)
	}
	tm.stop()
	tm.done <- <-tm.done // hand the result on to the cleanup's wait
}

type cluster struct {
	t       testing.TB
	net     *lossyNet
	secret  []byte
	timings Timings
	rejoin  time.Duration
	logger  *slog.Logger
	ipBase  int

	mu      sync.Mutex
	members []*member
	seeds   func() []netip.AddrPort // nil: every member's address
}

func newCluster(t testing.TB, secret string) *cluster {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("MEMBERSHIP_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c := &cluster{
		t:      t,
		net:    newLossyNet(),
		secret: []byte(secret),
		rejoin: 500 * time.Millisecond,
		logger: logger,
		// Spread tests over 127.0.0.0/8 so that leftovers of one test can
		// never be mistaken for members of another.
		ipBase: os.Getpid() % 200,
	}
	if _, isTest := t.(*testing.T); isTest {
		// Behaviour tests (not the benchmarks, which measure the defaults) share two cores
		// with the rest of the suite; timings with more slack keep a starved scheduler from
		// looking like a failure. No test asserts how fast detection is.
		c.timings = Timings{ProbeInterval: 250 * time.Millisecond, ProbeTimeout: 150 * time.Millisecond, SuspicionMult: 4}
	}
	return c
}

func (c *cluster) allAddrs() []netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []netip.AddrPort
	for _, m := range c.members {
		out = append(out, m.addr())
	}
	return out
}

func loopback(base, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(10 + base), byte(i / 250), byte(i%250 + 1)})
}

// start creates and runs a member; ipIndex picks its loopback address, port
// picks its port (-1: any free one).
func (c *cluster) start(name string, ipIndex, port int, secret []byte) *member {
	c.t.Helper()
	return c.startWith(name, ipIndex, port, func(o *Options) { o.SecretKey = secret })
}

// startWith is start with the options adjusted by tweak (secret: the
// cluster's unless tweak sets another).
func (c *cluster) startWith(name string, ipIndex, port int, tweak func(*Options)) *member {
	c.t.Helper()
	rec := &recorder{}
	ip := loopback(c.ipBase, ipIndex)
	opts := Options{
		NodeName:       name,
		BindAddr:       ip,
		BindPort:       port,
		SecretKey:      c.secret,
		RejoinInterval: c.rejoin,
		Timings:        c.timings,
		Logger:         c.logger,
		Seeds: func() []netip.AddrPort {
			c.mu.Lock()
			seeds := c.seeds
			c.mu.Unlock()
			if seeds != nil {
				return seeds()
			}
			return c.allAddrs()
		},
		observe: rec.add,
		wrapTransport: func(nt *memberlist.NetTransport) memberlist.NodeAwareTransport {
			return &lossyTransport{NetTransport: nt, net: c.net, self: netip.AddrPortFrom(ip, uint16(nt.GetAutoBindPort()))}
		},
	}
	if tweak != nil {
		tweak(&opts)
	}
	m, err := New(opts)
	if err != nil {
		c.t.Fatalf("New(%s): %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tm := &member{name: name, m: m, rec: rec, stop: cancel, done: make(chan error, 1)}
	go func() { tm.done <- m.Run(ctx) }()
	c.t.Cleanup(func() {
		cancel()
		if err := <-tm.done; err != nil && !errors.Is(err, ErrClosed) {
			c.t.Logf("stopping %s: %v", name, err)
		}
	})
	c.mu.Lock()
	c.members = append(c.members, tm)
	c.mu.Unlock()
	return tm
}

func (c *cluster) startN(n int) []*member {
	c.t.Helper()
	out := make([]*member, n)
	for i := range out {
		out[i] = c.start(fmt.Sprintf("node-%d", i), i, -1, c.secret)
	}
	return out
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(ms []*member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.name)
	}
	slices.Sort(out)
	return out
}

// waitConverged waits until every member of ms sees exactly ms as alive.
func waitConverged(t testing.TB, timeout time.Duration, ms []*member) {
	t.Helper()
	want := names(ms)
	what := fmt.Sprintf("%v to see each other", want)
	if len(ms) > 10 {
		what = fmt.Sprintf("%d members to see each other", len(ms))
	}
	defer func() {
		if t.Failed() {
			sizes := map[int]int{}
			failures := 0
			for _, m := range ms {
				sizes[len(m.m.Alive())]++
				m.rec.mu.Lock()
				for _, e := range m.rec.events {
					if e.kind == eventFailed {
						failures++
					}
				}
				m.rec.mu.Unlock()
			}
			load, _ := os.ReadFile("/proc/loadavg")
			t.Logf("views: alive-count -> members %v; %d failure events recorded so far; load average %s"+
				"(many members in one process starve when the machine is busy: see the package doc)",
				sizes, failures, load)
		}
	}()
	waitFor(t, timeout, what, func() bool {
		for _, m := range ms {
			if !slices.Equal(m.m.Alive(), want) {
				return false
			}
		}
		return true
	})
}
