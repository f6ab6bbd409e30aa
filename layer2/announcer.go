package layer2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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

// duplicateReportInterval limits how often a conflict about one IP is logged
// and reported to OnDuplicate, whatever the number of MACs claiming it (a
// spoofer may use thousands); the metric counts every packet.
const duplicateReportInterval = 10 * time.Second

// Split-brain resolution (Options.ResolveConflicts).
const (
	// reassertInterval bounds how often the winner of a conflict answers a
	// claim with a gratuitous announcement of its own (which is what makes
	// the other side notice and yield).
	reassertInterval = 500 * time.Millisecond
	// yieldProbeInterval is how often the loser asks, with an ARP probe or
	// a Neighbor Solicitation, whether the winner still answers.
	yieldProbeInterval = time.Second
	// yieldTimeout: the loser takes the IP back once the winner has been
	// silent this long (it died, or withdrew when the partition healed).
	yieldTimeout = 3500 * time.Millisecond
	// rejoinHoldoff: after Reannounce (a member rejoined) nothing is yielded for this long.
	// The two sides of a healed split learn of each other a moment apart; meanwhile the
	// election's owner would otherwise yield to the other, which is about to withdraw, and
	// stay silent until yieldTimeout.
	rejoinHoldoff = 2 * time.Second
	// persistentConflict: a claim by a stronger MAC that lasts this long is a split brain
	// even while memberlist still shows every speaker. The side cut off from memberlist sees
	// its peers only as suspect until its suspicion timeout runs out (several seconds with
	// nobody to confirm it), while the new owner's takeover announcements reach it at once;
	// an election's overlap ends within milliseconds.
	persistentConflict = time.Second
	// contestForget: claims further apart than this are separate episodes.
	contestForget = 5 * time.Second
)

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
	// OnDuplicate is called (outside any lock, at most every 10 s per IP,
	// whatever the number of MACs) when another MAC claims an owned IP. May
	// be nil.
	OnDuplicate func(ip netip.Addr, otherMAC net.HardwareAddr, iface string)
	// ResolveConflicts makes two announcers that both own an IP (a split
	// brain: they cannot hear each other's membership traffic) settle who
	// keeps it, without talking: each compares ConflictWinner over the IP
	// and the two MACs, the winner announces again at once so that the other
	// hears it, and the loser stops answering for the IP while the winner
	// still answers its probes (every second). It takes the IP back when the
	// winner has been silent for 3.5 s, and at once on Reannounce (the
	// speaker calls it when a member rejoins, which ends the split; for 2 s
	// after it nothing is yielded, while the election settles).
	ResolveConflicts bool
	// MayYield, when set, is asked (with the Announcer's lock held: it must
	// be cheap and not call back) before yielding; false means a claim
	// cannot come from a split brain (the speaker sees every other speaker
	// alive, so the election alone settles who announces), and the IP is
	// kept. Nil means always.
	MayYield func() bool
	// OnYield is called (outside any lock) when this announcer yields an IP
	// to winnerMAC, and OnReclaim when it takes a yielded IP back. Either
	// may be nil.
	OnYield   func(ip netip.Addr, winnerMAC net.HardwareAddr, iface string)
	OnReclaim func(ip netip.Addr)
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
	// yields holds the owned IPs given up to another announcer in a
	// conflict: they are not answered nor announced until reclaimed.
	yields map[netip.Addr]*yield
	// holdoff: no yielding before this time (set by Reannounce).
	holdoff time.Time

	kick     chan struct{} // wakes the gratuitous scheduler
	stopCh   chan struct{} // closed by Stop
	stopOnce sync.Once
	readers  sync.WaitGroup

	// reported and reasserted are per-IP times of the last duplicate report
	// and of the last reassertion; guarded by mu, pruned with owned.
	reported   map[netip.Addr]time.Time
	reasserted map[netip.Addr]time.Time
	// contested: owned IPs a stronger MAC claimed while MayYield said no, with when the
	// claims began and when the last one came; guarded by mu, pruned with owned.
	contested map[netip.Addr]contest
	now       func() time.Time // tests; nil: time.Now
}

// contest is a run of claims on an owned IP by a MAC that wins the tie-break.
type contest struct{ since, last time.Time }

// yield is an owned IP left to another MAC while the conflict lasts.
type yield struct {
	winner   net.HardwareAddr
	iface    string
	lastSeen time.Time // last claim or probe answer from another MAC
}

// burst is one takeover's gratuitous schedule. IPs removed or re-added since
// (their epoch in owned differs) are skipped.
type burst struct {
	epoch uint64
	ips   []netip.Addr
	start time.Time // zero until the scheduler first sees it
	step  int
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

		yields:     map[netip.Addr]*yield{},
		reported:   map[netip.Addr]time.Time{},
		reasserted: map[netip.Addr]time.Time{},
		contested:  map[netip.Addr]contest{},
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
	yieldsDone := make(chan struct{})
	go func() {
		defer close(yieldsDone)
		a.runYields(ctx)
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
	<-yieldsDone
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
			delete(a.yields, ip)
			delete(a.reported, ip)
			delete(a.reasserted, ip)
			delete(a.contested, ip)
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
// progress, and takes back the IPs yielded in conflicts. The speaker calls it when a member
// rejoins after a partition: the election is made with everyone again, and clients that
// followed another node during the split come back at once instead of when their neighbour
// entry expires.
func (a *Announcer) Reannounce() {
	a.mu.Lock()
	var reclaimed []netip.Addr
	for ip := range a.yields {
		reclaimed = append(reclaimed, ip)
	}
	clear(a.yields)
	a.holdoff = a.clock().Add(rejoinHoldoff)
	defer a.reclaimed(reclaimed, "a member rejoined")
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

// Assert sends one gratuitous announcement now for every owned IP that is not yielded. The
// speaker calls it when it starts to miss a member (a possible split brain): a node on the
// other side that announces the same IPs hears it, so the conflict is found even if the other
// side's takeover announcements came before this node could yield.
func (a *Announcer) Assert() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return
	}
	for ip := range a.owned {
		if a.yields[ip] == nil {
			a.gratuitousLocked(ip)
		}
	}
}

// Yielded returns the owned IPs currently left to another announcer in a
// conflict, sorted.
func (a *Announcer) Yielded() []netip.Addr {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return slices.SortedFunc(maps.Keys(a.yields), netip.Addr.Compare)
}

// Owned returns the owned IPs, sorted.
func (a *Announcer) Owned() []netip.Addr {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return slices.SortedFunc(maps.Keys(a.owned), netip.Addr.Compare)
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
		clear(a.yields)
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

// isOwnedLocked reports whether ip is owned and answered (not yielded).
// Called with mu held.
func (a *Announcer) isOwnedLocked(ip netip.Addr) bool {
	_, ok := a.owned[ip]
	return ok && a.yields[ip] == nil
}

// isClaimedLocked reports whether a claim by another MAC on ip concerns us:
// ip is owned, answered or yielded. Called with mu held.
func (a *Announcer) isClaimedLocked(ip netip.Addr) bool {
	_, ok := a.owned[ip]
	return ok
}

// duplicate handles a claim by another MAC on an owned (or yielded) ip seen
// on ifName. It costs O(1) whatever the number of MACs: per-IP state only.
// Must be called without mu held, since the callbacks may call back into
// the Announcer.
func (a *Announcer) duplicate(ip netip.Addr, mac net.HardwareAddr, ifName string) {
	a.metrics.duplicateSeen(ip)
	now := a.clock()
	var report, yielded bool
	a.mu.Lock()
	if _, owned := a.owned[ip]; !owned || a.stopped {
		a.mu.Unlock()
		return
	}
	if y := a.yields[ip]; y != nil {
		// The winner still answers: the conflict lasts.
		y.lastSeen = now
		a.mu.Unlock()
		return
	}
	if last, ok := a.reported[ip]; !ok || now.Sub(last) >= duplicateReportInterval {
		a.reported[ip] = now
		report = true
	}
	if ifc := a.ifaces[ifName]; ifc != nil && a.opts.ResolveConflicts {
		// The winner always answers a claim (harmless: it owns the IP), so that a loser that
		// can yield hears it; the loser yields only outside the holdoff and when MayYield agrees.
		if ConflictWinner(ip, ifc.mac, mac) {
			if now.Sub(a.reasserted[ip]) >= reassertInterval {
				a.reasserted[ip] = now
				if err := ifc.gratuitous(ip, a.metrics); err != nil {
					ifc.log.Warn("reasserting an IP in conflict", "ip", ip, "error", err)
				}
			}
		} else if !now.Before(a.holdoff) && (a.opts.MayYield == nil || a.opts.MayYield() || a.persists(ip, now)) {
			delete(a.contested, ip)
			a.yields[ip] = &yield{winner: slices.Clone(mac), iface: ifName, lastSeen: now}
			// Pending gratuitous sends for ip would fight the winner.
			a.epoch++
			a.owned[ip] = a.epoch
			a.pruneBursts()
			yielded = true
		}
	}
	a.mu.Unlock()
	if yielded {
		a.metrics.yielded(ip)
		a.log.Warn("another node announces an IP this node owns and wins the tie-break; not answering for it while that lasts",
			"ip", ip, "winnerMAC", mac.String(), "interface", ifName)
		if a.opts.OnYield != nil {
			a.opts.OnYield(ip, slices.Clone(mac), ifName)
		}
	}
	if !report {
		return
	}
	a.log.Warn("another MAC claims an IP this node owns (split brain?)", "ip", ip, "otherMAC", mac.String(), "interface", ifName,
		"resolve", a.opts.ResolveConflicts, "next_report_in", duplicateReportInterval.String())
	if a.opts.OnDuplicate != nil {
		a.opts.OnDuplicate(ip, slices.Clone(mac), ifName)
	}
}

// persists records a claim on ip that MayYield turned down and reports whether the claims
// have lasted persistentConflict. The caller holds a.mu. O(1).
func (a *Announcer) persists(ip netip.Addr, now time.Time) bool {
	c, ok := a.contested[ip]
	if !ok || now.Sub(c.last) > contestForget {
		c.since = now
	}
	c.last = now
	a.contested[ip] = c
	return now.Sub(c.since) >= persistentConflict
}

// ConflictWinner reports whether the announcer with MAC ours keeps ip
// against the one with MAC theirs. Both sides compute it from the same two
// MACs (each sees the other's in its packets), so exactly one of them wins,
// and among several claimants the one with the lowest SHA-256 of
// (ip, MAC) wins every pairing. Ties (equal MACs) keep the IP.
func ConflictWinner(ip netip.Addr, ours, theirs net.HardwareAddr) bool {
	a, b := conflictRank(ip, ours), conflictRank(ip, theirs)
	return bytes.Compare(a[:], b[:]) <= 0
}

func conflictRank(ip netip.Addr, mac net.HardwareAddr) [sha256.Size]byte {
	var buf [16 + 20]byte // IPv6-sized address, then the MAC (up to InfiniBand's 20 bytes)
	a := ip.As16()
	copy(buf[:], a[:])
	n := copy(buf[16:], mac)
	return sha256.Sum256(buf[:16+n])
}

// runYields probes the winners of yielded IPs and takes back those whose
// winner stopped answering.
func (a *Announcer) runYields(ctx context.Context) {
	t := time.NewTicker(yieldProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.checkYields(a.clock())
	}
}

// checkYields reclaims the yielded IPs whose winner has been silent for
// yieldTimeout and probes the others.
func (a *Announcer) checkYields(now time.Time) {
	a.mu.Lock()
	if a.stopped || len(a.yields) == 0 {
		a.mu.Unlock()
		return
	}
	var back []netip.Addr
	for ip, y := range a.yields {
		if now.Sub(y.lastSeen) >= yieldTimeout {
			back = append(back, ip)
			delete(a.yields, ip)
			continue
		}
		if ifc := a.ifaces[y.iface]; ifc != nil {
			if err := ifc.probe(ip); err != nil {
				ifc.log.Debug("probing the winner of a conflict", "ip", ip, "error", err)
			}
		}
	}
	a.takeOverLocked(back)
	a.mu.Unlock()
	a.reclaimed(back, "the other announcer stopped answering")
}

// takeOverLocked starts a gratuitous burst for ips, as a takeover does.
// Called with mu held.
func (a *Announcer) takeOverLocked(ips []netip.Addr) {
	if len(ips) == 0 || len(a.schedule) == 0 {
		return
	}
	a.epoch++
	b := &burst{epoch: a.epoch, ips: slices.Clone(ips)}
	if a.running {
		b.start = a.clock()
	}
	for _, ip := range ips {
		a.owned[ip] = a.epoch
	}
	a.bursts = append(a.bursts, b)
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// reclaimed logs and reports IPs taken back. Called without mu held.
func (a *Announcer) reclaimed(ips []netip.Addr, why string) {
	for _, ip := range ips {
		a.log.Info("taking back an IP yielded in a conflict", "ip", ip, "reason", why)
		if a.opts.OnReclaim != nil {
			a.opts.OnReclaim(ip)
		}
	}
}

func (a *Announcer) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

func normalize(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}
