package layer2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// ErrAlreadyRunning is returned by Run when the Announcer is already running.
var ErrAlreadyRunning = errors.New("layer2: announcer already running")

// DefaultGratuitousSchedule is when gratuitous announcements are sent,
// measured from the takeover: at once, then a few repeats for clients that
// missed the first packet.
var DefaultGratuitousSchedule = []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, time.Second, 2 * time.Second}

// DefaultRescanInterval is how often the interface list is re-read.
const DefaultRescanInterval = 10 * time.Second

// duplicateReportInterval limits how often one (IP, MAC) conflict is logged
// and reported to OnDuplicate; the metric counts every packet.
const duplicateReportInterval = 10 * time.Second

// Options configures an Announcer.
type Options struct {
	// Interfaces lists the interface names to serve. Empty means every up,
	// non-loopback Ethernet interface with an IPv4 or IPv6 address; the list
	// is re-read every RescanInterval so interfaces that appear later are
	// served too.
	Interfaces []string
	// Logger receives the announcer's logs; nil means slog.Default().
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// OnDuplicate is called (outside any lock, at most every 10 s per IP and
	// MAC) when another MAC claims an owned IP. May be nil.
	OnDuplicate func(ip netip.Addr, otherMAC net.HardwareAddr, iface string)
	// GratuitousSchedule holds the offsets from a takeover at which
	// gratuitous ARP / unsolicited NA are sent. Nil means
	// DefaultGratuitousSchedule; an empty non-nil slice sends none.
	GratuitousSchedule []time.Duration
	// RescanInterval is how often interfaces are re-read; 0 means
	// DefaultRescanInterval.
	RescanInterval time.Duration
}

// Announcer answers ARP and NDP for the IPs this node owns. Its methods are
// safe for concurrent use.
type Announcer struct {
	opts     Options
	log      *slog.Logger
	metrics  *Metrics
	schedule []time.Duration

	// mu guards everything below. Every send happens with mu held (read
	// lock for replies, write lock for gratuitous bursts) after checking
	// ownership, which is what makes SetOwned and Stop take effect at once.
	mu      sync.RWMutex
	owned   map[netip.Addr]uint64 // IP -> takeover epoch
	epoch   uint64
	bursts  []*burst
	ifaces  map[string]*iface
	ourMACs map[string]bool // every MAC of a served interface
	running bool
	stopped bool

	kick     chan struct{} // wakes the gratuitous scheduler
	stopCh   chan struct{} // closed by Stop
	stopOnce sync.Once
	readers  sync.WaitGroup

	dupMu   sync.Mutex
	lastDup map[dupKey]time.Time
}

// burst is one takeover's gratuitous schedule. IPs removed or re-added since
// (their epoch in owned differs) are skipped.
type burst struct {
	epoch uint64
	ips   []netip.Addr
	start time.Time // zero until the scheduler first sees it
	step  int
}

type dupKey struct {
	ip  netip.Addr
	mac string
}

// NewAnnouncer validates opts and returns an Announcer that owns no IP. No
// socket is opened before Run.
func NewAnnouncer(opts Options) (*Announcer, error) {
	sched := DefaultGratuitousSchedule
	if opts.GratuitousSchedule != nil {
		sched = slices.Clone(opts.GratuitousSchedule)
		for i, d := range sched {
			if d < 0 {
				return nil, fmt.Errorf("layer2: GratuitousSchedule[%d] is %v: offsets must not be negative", i, d)
			}
		}
		slices.Sort(sched)
	}
	if opts.RescanInterval < 0 {
		return nil, fmt.Errorf("layer2: RescanInterval is %v: must not be negative", opts.RescanInterval)
	}
	if opts.RescanInterval == 0 {
		opts.RescanInterval = DefaultRescanInterval
	}
	for i, name := range opts.Interfaces {
		if name == "" {
			return nil, fmt.Errorf("layer2: Interfaces[%d] is empty", i)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Announcer{
		opts:     opts,
		log:      log.With("component", "layer2"),
		metrics:  opts.Metrics,
		schedule: sched,
		owned:    map[netip.Addr]uint64{},
		ifaces:   map[string]*iface{},
		ourMACs:  map[string]bool{},
		kick:     make(chan struct{}, 1),
		stopCh:   make(chan struct{}),
		lastDup:  map[dupKey]time.Time{},
	}, nil
}

// Run opens the sockets and serves until ctx ends or Stop is called; it then
// withdraws every IP, closes every socket, waits for its goroutines and
// returns nil. Run may be called once.
func (a *Announcer) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return ErrAlreadyRunning
	}
	a.running = true
	stopped := a.stopped
	now := time.Now()
	for _, b := range a.bursts {
		b.start = now // takeovers decided before Run start counting now
	}
	a.mu.Unlock()
	if stopped {
		return nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	a.scan()
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		a.runScheduler(ctx)
	}()

	ticker := time.NewTicker(a.opts.RescanInterval)
	defer ticker.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-a.stopCh:
			break loop
		case <-ticker.C:
			a.scan()
		}
	}
	a.Stop()
	cancel()
	<-schedDone
	a.readers.Wait()
	return nil
}

// SetOwned replaces the set of owned IPs. Newly owned IPs are announced on
// the gratuitous schedule; IPs no longer owned stop being answered and their
// pending gratuitous sends are cancelled before SetOwned returns. Invalid
// addresses are ignored; IPv4-mapped IPv6 addresses are treated as IPv4.
// After Stop, SetOwned does nothing.
func (a *Announcer) SetOwned(ips []netip.Addr) {
	want := make(map[netip.Addr]bool, len(ips))
	for _, ip := range ips {
		if ip = normalize(ip); ip.IsValid() {
			want[ip] = true
		}
	}

	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		a.log.Debug("ignoring SetOwned after Stop", "ips", len(want))
		return
	}
	var removed, added []netip.Addr
	for ip := range a.owned {
		if !want[ip] {
			delete(a.owned, ip)
			removed = append(removed, ip)
			for _, ifc := range a.ifaces {
				ifc.unwatch(ip)
			}
		}
	}
	if len(removed) > 0 {
		a.pruneBursts()
	}
	for ip := range want {
		if _, ok := a.owned[ip]; !ok {
			added = append(added, ip)
		}
	}
	if len(added) > 0 {
		a.epoch++
		b := &burst{epoch: a.epoch, ips: added}
		if a.running {
			b.start = time.Now()
		}
		for _, ip := range added {
			a.owned[ip] = a.epoch
			for _, ifc := range a.ifaces {
				ifc.watch(ip)
			}
		}
		if len(a.schedule) > 0 {
			a.bursts = append(a.bursts, b)
		}
	}
	a.mu.Unlock()

	if len(added) > 0 {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
	for _, ip := range added {
		a.log.Info("taking over IP", "ip", ip)
	}
	for _, ip := range removed {
		a.log.Info("releasing IP", "ip", ip)
	}
}

// Reannounce starts the gratuitous schedule again for every owned IP, superseding bursts in
// progress. The speaker calls it when a member rejoins after a partition: clients that followed
// another node during the split come back at once instead of when their neighbour entry expires.
func (a *Announcer) Reannounce() {
	a.mu.Lock()
	if a.stopped || len(a.owned) == 0 || len(a.schedule) == 0 {
		a.mu.Unlock()
		return
	}
	a.epoch++
	b := &burst{epoch: a.epoch}
	if a.running {
		b.start = time.Now()
	}
	for ip := range a.owned {
		a.owned[ip] = a.epoch
		b.ips = append(b.ips, ip)
	}
	a.pruneBursts()
	a.bursts = append(a.bursts, b)
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Owned returns the owned IPs, sorted.
func (a *Announcer) Owned() []netip.Addr {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]netip.Addr, 0, len(a.owned))
	for ip := range a.owned {
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Interfaces returns the names of the interfaces currently served (with an
// ARP or NDP socket open), sorted.
func (a *Announcer) Interfaces() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]string, 0, len(a.ifaces))
	for name, ifc := range a.ifaces {
		if ifc.arp != nil || ifc.ndp != nil {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Stop withdraws every IP now, for a planned handover: when it returns no
// reply and no gratuitous packet will be sent any more, and every socket is
// closed. Stop is final (later SetOwned calls are ignored) and makes Run
// return. It may be called more than once, and before Run.
func (a *Announcer) Stop() {
	a.mu.Lock()
	if !a.stopped {
		a.stopped = true
		n := len(a.owned)
		a.owned = map[netip.Addr]uint64{}
		a.bursts = nil
		for name, ifc := range a.ifaces {
			ifc.close()
			delete(a.ifaces, name)
		}
		a.ourMACs = map[string]bool{}
		if n > 0 {
			a.log.Info("withdrew all IPs", "ips", n)
		}
	}
	a.mu.Unlock()
	a.stopOnce.Do(func() { close(a.stopCh) })
}

// pruneBursts drops IPs whose ownership ended from pending bursts, and
// bursts left empty. Called with mu held.
func (a *Announcer) pruneBursts() {
	kept := a.bursts[:0]
	for _, b := range a.bursts {
		ips := b.ips[:0]
		for _, ip := range b.ips {
			if a.owned[ip] == b.epoch {
				ips = append(ips, ip)
			}
		}
		b.ips = ips
		if len(ips) > 0 {
			kept = append(kept, b)
		}
	}
	clear(a.bursts[len(kept):])
	a.bursts = kept
}

// runScheduler sends gratuitous announcements when they are due.
func (a *Announcer) runScheduler(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := a.sendDue(time.Now())
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-timer.C:
		}
	}
}

// sendDue sends every burst step due at now and returns when the next one is
// due (zero: none pending).
func (a *Announcer) sendDue(now time.Time) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var next time.Time
	kept := a.bursts[:0]
	for _, b := range a.bursts {
		if b.start.IsZero() {
			b.start = now
		}
		sent := false
		for b.step < len(a.schedule) && !now.Before(b.start.Add(a.schedule[b.step])) {
			// Several due steps (a late wake-up) collapse into one send.
			if !sent {
				for _, ip := range b.ips {
					if a.owned[ip] == b.epoch {
						a.gratuitousLocked(ip)
					}
				}
				sent = true
			}
			b.step++
		}
		if b.step < len(a.schedule) {
			kept = append(kept, b)
			if due := b.start.Add(a.schedule[b.step]); next.IsZero() || due.Before(next) {
				next = due
			}
		}
	}
	clear(a.bursts[len(kept):])
	a.bursts = kept
	return next
}

// gratuitousLocked announces ip on every served interface. Called with mu
// held.
func (a *Announcer) gratuitousLocked(ip netip.Addr) {
	for _, ifc := range a.ifaces {
		if err := ifc.gratuitous(ip, a.metrics); err != nil {
			a.log.Warn("sending gratuitous announcement", "ip", ip, "interface", ifc.name, "error", err)
		}
	}
}

// isOwned reports whether ip is owned. Called with mu held.
func (a *Announcer) isOwnedLocked(ip netip.Addr) bool {
	_, ok := a.owned[ip]
	return ok
}

// duplicate records that mac claimed the owned ip on iface. Must be called
// without mu held, since OnDuplicate may call back into the Announcer.
func (a *Announcer) duplicate(ip netip.Addr, mac net.HardwareAddr, ifName string) {
	a.metrics.duplicateSeen(ip)
	key := dupKey{ip: ip, mac: mac.String()}
	now := time.Now()
	a.dupMu.Lock()
	last, seen := a.lastDup[key]
	report := !seen || now.Sub(last) >= duplicateReportInterval
	if report {
		a.lastDup[key] = now
		for k, t := range a.lastDup {
			if now.Sub(t) >= duplicateReportInterval {
				delete(a.lastDup, k)
			}
		}
		a.lastDup[key] = now
	}
	a.dupMu.Unlock()
	if !report {
		return
	}
	a.log.Warn("another MAC claims an IP this node owns (split brain?)", "ip", ip, "otherMAC", mac.String(), "interface", ifName)
	if a.opts.OnDuplicate != nil {
		a.opts.OnDuplicate(ip, slices.Clone(mac), ifName)
	}
}

func normalize(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}
