package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/election"
	"github.com/ironlb/ironlb/layer2/netlab"
	"github.com/ironlb/ironlb/membership"
)

// labSecret is the memberlist secret shared by the lab's mini speakers.
const labSecret = "ironlb-bench-l2-lab-secret"

// realSample is one round of a real-membership scenario.
type realSample struct {
	Mode string `json:"mode"`
	From string `json:"from"` // owner before the event
	To   string `json:"to"`   // first other node the client heard (empty: none)
	// SinceEvent: event to the first answer from another node (cut, term).
	SinceEvent time.Duration `json:"sinceEventNs"`
	// Gap: the longest time without an answer from the last answer before
	// the event to the end of the measured window.
	Gap time.Duration `json:"gapNs"`
	// Moves: times the answering node changed within the window.
	Moves int `json:"moves"`
	// NeighMoves: times the client's neighbour entry for the IP changed MAC
	// within the window.
	NeighMoves int `json:"neighMoves"`
	// Lost: probes never answered between the first and the last answer of
	// the window; a gap without losses is delay (e.g. a starved process),
	// not an outage.
	Lost int `json:"lost"`
	// Survivors took the IP during the window (kill: should be false).
	SurvivorOwned bool `json:"survivorOwned"`

	// cut only: link up to every speaker seeing every node again.
	Heal time.Duration `json:"healNs,omitempty"`
	// cut only: link up to the client being answered by the old owner
	// again (the second move), if it happened within -moveback.
	MoveBack  time.Duration `json:"moveBackNs,omitempty"`
	MovedBack bool          `json:"movedBack"`
	// cut only: changes of the answering node from link up to the end of
	// the heal window, and their sequence.
	MovesAfterUp int           `json:"movesAfterUp"`
	AfterUp      []string      `json:"afterUp,omitempty"`
	Failed       string        `json:"failed,omitempty"`
	Window       time.Duration `json:"windowNs"`
	SinceOwned   time.Duration `json:"sinceOwnerTookOverNs,omitempty"`
}

type realSummary struct {
	Mode                         string        `json:"mode"`
	N                            int           `json:"n"`
	Failures                     int           `json:"failures"`
	EventP50, EventP99, EventMax time.Duration `json:"-"`
	GapP50, GapP99, GapMax       time.Duration `json:"-"`
	Moves                        []int         `json:"moves"`
	NeighMoves                   []int         `json:"neighMoves"`
	HealP50, HealP99, HealMax    time.Duration `json:"-"`
	MovedBack                    int           `json:"movedBack"`
	BackP50, BackP99, BackMax    time.Duration `json:"-"`
	Samples                      []realSample  `json:"samples"`
	Percentiles                  map[string][3]time.Duration
}

type realBench struct {
	cfg      config
	lab      *netlab.Lab
	echos    []*netlab.Proc
	speakers []*netlab.SpeakerProc
	spcfg    netlab.SpeakerConfig
	names    []string
	probe    *netlab.Prober
	neigh    *neighWatch
	last     time.Time // client's latest answer
	flushes  int       // client neighbour entries deleted to settle
	log      io.Writer
}

func (b *realBench) logf(format string, a ...any) {
	if b.cfg.verbose {
		fmt.Fprintf(b.log, format+"\n", a...)
	}
}

func runReal(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	b := &realBench{cfg: cfg, log: stderr}
	defer b.close()
	if err := b.setup(ctx); err != nil {
		return err
	}
	var sums []realSummary
	for _, mode := range cfg.modes {
		s, err := b.measure(ctx, mode)
		if err != nil {
			return err
		}
		sums = append(sums, s)
	}
	return reportReal(stdout, cfg, b.flushes, sums)
}

func (b *realBench) setup(ctx context.Context) error {
	lab, err := netlab.New(ctx, b.cfg.nodes)
	if err != nil {
		return err
	}
	b.lab = lab
	for _, h := range lab.Nodes {
		b.spcfg.Nodes = append(b.spcfg.Nodes, netlab.NodeAddr{Name: h.Name, IP: h.IPv4})
		b.names = append(b.names, h.Name)
	}
	b.spcfg.IPs = []netip.Addr{vip}
	b.spcfg.Secret = labSecret
	b.spcfg.Grace = b.cfg.grace
	b.spcfg.Interfaces = []string{"eth0"}
	b.spcfg.Debug = b.cfg.debug
	for _, h := range lab.Nodes {
		if err := prepareNode(ctx, h); err != nil {
			return err
		}
		e, err := netlab.StartEcho(ctx, h, vip.String()+":"+echoPort)
		if err != nil {
			return err
		}
		b.echos = append(b.echos, e)
	}
	for _, h := range lab.Nodes {
		s, err := netlab.StartSpeaker(ctx, h, b.spcfg)
		if err != nil {
			return err
		}
		b.speakers = append(b.speakers, s)
	}
	if b.neigh, err = watchNeighbours(lab.Client, vip); err != nil {
		return err
	}
	b.probe, err = netlab.StartProbe(ctx, lab.Client, vip.String()+":"+echoPort, b.cfg.interval)
	return err
}

// prepareNode puts the IP on lo so the echo server answers on it, while only
// the announcer answers ARP for it: arp_ignore=1 makes the kernel answer only
// for addresses of the asking interface, arp_announce=2 keeps the IP out of
// the node's own ARP requests.
func prepareNode(ctx context.Context, h *netlab.Host) error {
	if _, err := netlab.IP(ctx, h.NS, "addr", "add", vip.String()+"/32", "dev", "lo"); err != nil {
		return err
	}
	_, err := netlab.Exec(ctx, h.NS, "sysctl", "-qw",
		"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
	return err
}

func (b *realBench) close() {
	if b.probe != nil {
		b.probe.Close()
	}
	if b.neigh != nil {
		b.neigh.close()
	}
	var wg sync.WaitGroup
	for _, s := range b.speakers {
		if s != nil {
			wg.Go(s.Close)
		}
	}
	wg.Wait()
	for _, e := range b.echos {
		e.Close()
	}
	if b.lab != nil {
		// A cut link must not outlive the lab's namespaces, but they are
		// deleted anyway: nothing to restore.
		if err := b.lab.Close(); err != nil {
			fmt.Fprintln(b.log, "cleanup:", err)
		}
	}
}

// collect gathers the client's answers until done returns true (checked after
// every answer and every 10 ms) or d has passed; timedOut reports the latter.
// answeredByOtherThan is a collect condition: the latest answer came, after since, from a node
// other than old.
func answeredByOtherThan(old string, since time.Time) func(rs []netlab.Reply) bool {
	return func(rs []netlab.Reply) bool {
		return len(rs) > 0 && rs[len(rs)-1].From != old && rs[len(rs)-1].At.After(since)
	}
}

func (b *realBench) collect(ctx context.Context, d time.Duration, done func(rs []netlab.Reply) bool) (rs []netlab.Reply, timedOut bool, err error) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if done != nil && done(rs) {
			return rs, false, nil
		}
		select {
		case r := <-b.probe.Replies():
			b.last = r.At
			rs = append(rs, r)
		case <-tick.C:
		case <-deadline.C:
			return rs, true, nil
		case <-ctx.Done():
			return rs, false, ctx.Err()
		}
	}
}

// drain takes the answers that arrived meanwhile: a gap starts at the last one.
func (b *realBench) drain() {
	for {
		select {
		case r := <-b.probe.Replies():
			b.last = r.At
		default:
			return
		}
	}
}

// healed reports whether every running speaker sees every node and exactly
// one of them, the elected one, owns the IP.
func (b *realBench) healed(want string) bool {
	owners := 0
	for i, s := range b.speakers {
		st := s.Latest()
		if !slices.Equal(st.Alive, b.names) {
			return false
		}
		if slices.Contains(st.Owned, vip) {
			if b.names[i] != want {
				return false
			}
			owners++
		}
	}
	return owners == 1
}

// settle waits until membership is whole and the client gets a steady stream
// of answers from the elected owner. The client keeps the MAC of whichever
// node last announced until its neighbour entry expires (tens of seconds), so
// after waiting a little it deletes that entry to start the next round clean;
// such deletions are counted and reported.
func (b *realBench) settle(ctx context.Context) (owner int, err error) {
	want := election.Owner(vip, b.names)
	owner = slices.Index(b.names, want)
	if _, timedOut, err := b.collect(ctx, b.cfg.timeout, func([]netlab.Reply) bool { return b.healed(want) }); err != nil {
		return owner, err
	} else if timedOut {
		return owner, fmt.Errorf("membership did not heal within %v: %s", b.cfg.timeout, b.describe())
	}
	const steady = 20
	steadyFrom := func(rs []netlab.Reply) bool {
		if len(rs) < steady {
			return false
		}
		for _, r := range rs[len(rs)-steady:] {
			if r.From != want {
				return false
			}
		}
		return true
	}
	_, timedOut, err := b.collect(ctx, 2*time.Second, steadyFrom)
	if err != nil || !timedOut {
		return owner, err
	}
	b.flushes++
	b.logf("settle: client not on %s after 2s; deleting its neighbour entry", want)
	if _, err := netlab.IP(ctx, b.lab.Client.NS, "neigh", "del", vip.String(), "dev", b.lab.Client.If); err != nil {
		return owner, err
	}
	if _, timedOut, err = b.collect(ctx, b.cfg.timeout, steadyFrom); err != nil {
		return owner, err
	} else if timedOut {
		return owner, fmt.Errorf("client not answered steadily by %s within %v", want, b.cfg.timeout)
	}
	return owner, nil
}

func (b *realBench) describe() string {
	var parts []string
	for i, s := range b.speakers {
		st := s.Latest()
		parts = append(parts, fmt.Sprintf("%s sees %v owns %v", b.names[i], st.Alive, st.Owned))
	}
	return strings.Join(parts, "; ")
}

func (b *realBench) measure(ctx context.Context, mode string) (realSummary, error) {
	s := realSummary{Mode: mode}
	for it := range b.cfg.iterations {
		from, err := b.settle(ctx)
		if err != nil {
			return s, fmt.Errorf("%s round %d: %w", mode, it, err)
		}
		var smp realSample
		switch mode {
		case "cut":
			smp, err = b.cut(ctx, from)
		case "kill":
			smp, err = b.kill(ctx, mode, from, from)
		case "killother":
			smp, err = b.kill(ctx, mode, from, (from+1)%len(b.names))
		case "term":
			smp, err = b.term(ctx, from)
		}
		if err != nil {
			return s, fmt.Errorf("%s round %d: %w", mode, it, err)
		}
		b.logf("%s %s->%s: since event %v, gap %v (%d probes lost), moves %d, neighbour moves %d, heal %v, moved back %v after %v %s",
			mode, smp.From, smp.To, ms(smp.SinceEvent), ms(smp.Gap), smp.Lost, smp.Moves, smp.NeighMoves,
			ms(smp.Heal), smp.MovedBack, ms(smp.MoveBack), smp.Failed)
		if mode == "cut" {
			b.logf("  after link up: %v", smp.AfterUp)
		}
		s.Samples = append(s.Samples, smp)
	}
	var ev, gaps, heal, back []time.Duration
	for _, smp := range s.Samples {
		if smp.Failed != "" {
			s.Failures++
		}
		s.Moves = append(s.Moves, smp.Moves)
		s.NeighMoves = append(s.NeighMoves, smp.NeighMoves)
		if smp.Failed == "" && mode != "kill" && mode != "killother" {
			ev = append(ev, smp.SinceEvent)
		}
		gaps = append(gaps, smp.Gap)
		if mode == "cut" {
			heal = append(heal, smp.Heal)
			if smp.MovedBack {
				s.MovedBack++
				back = append(back, smp.MoveBack)
			}
		}
	}
	s.N = len(s.Samples)
	s.EventP50, s.EventP99, s.EventMax = percentiles(ev)
	s.GapP50, s.GapP99, s.GapMax = percentiles(gaps)
	s.HealP50, s.HealP99, s.HealMax = percentiles(heal)
	s.BackP50, s.BackP99, s.BackMax = percentiles(back)
	s.Percentiles = map[string][3]time.Duration{
		"sinceEvent": {s.EventP50, s.EventP99, s.EventMax},
		"gap":        {s.GapP50, s.GapP99, s.GapMax},
	}
	if mode == "cut" {
		s.Percentiles["heal"] = [3]time.Duration{s.HealP50, s.HealP99, s.HealMax}
		s.Percentiles["moveBack"] = [3]time.Duration{s.BackP50, s.BackP99, s.BackMax}
	}
	return s, nil
}

// window is what the client saw from just before an event to the end of a
// measured window.
type window struct {
	owner    string
	start    time.Time // the event
	before   time.Time // last answer before the event
	replies  []netlab.Reply
	firstNew int // index of the first answer from another node, -1 if none
}

func (w *window) add(rs []netlab.Reply) {
	for _, r := range rs {
		w.replies = append(w.replies, r)
		if w.firstNew < 0 && r.From != w.owner && r.At.After(w.start) {
			w.firstNew = len(w.replies) - 1
		}
	}
}

// gap is the longest silence from the last answer before the event to the
// reply at index end (inclusive), or to until when there is none after it.
func (w *window) gap(end int, until time.Time) time.Duration {
	prev := w.before
	g := time.Duration(0)
	for i, r := range w.replies {
		if i > end {
			break
		}
		g = max(g, r.At.Sub(prev))
		prev = r.At
	}
	if end >= len(w.replies)-1 {
		g = max(g, until.Sub(prev))
	}
	return g
}

// lost counts the probes missing between the window's first and last answer.
func (w *window) lost() int {
	if len(w.replies) == 0 {
		return 0
	}
	seen := map[int]bool{}
	lo, hi := w.replies[0].Seq, w.replies[0].Seq
	for _, r := range w.replies {
		seen[r.Seq] = true
		lo, hi = min(lo, r.Seq), max(hi, r.Seq)
	}
	return hi - lo + 1 - len(seen)
}

// moves counts changes of the answering node, starting from the owner.
func (w *window) moves() int {
	n, cur := 0, w.owner
	for _, r := range w.replies {
		if r.From != cur {
			n++
			cur = r.From
		}
	}
	return n
}

func (b *realBench) begin(ctx context.Context, owner int) (*window, net.HardwareAddr, error) {
	b.drain()
	mac, _, err := b.lab.Client.Neighbor(ctx, vip)
	if err != nil {
		return nil, nil, err
	}
	return &window{owner: b.names[owner], before: b.last, firstNew: -1}, mac, nil
}

// drainStates empties the speakers' decision streams and reports whether a
// speaker other than except announced the IP in one of them.
func (b *realBench) drainStates(except int) (owned bool) {
	for i, s := range b.speakers {
		for done := false; !done; {
			select {
			case st := <-s.States():
				if i != except && slices.Contains(st.Owned, vip) {
					owned = true
				}
			default:
				done = true
			}
		}
	}
	return owned
}

func (b *realBench) cut(ctx context.Context, from int) (realSample, error) {
	src := b.lab.Nodes[from]
	smp := realSample{Mode: "cut", From: src.Name}
	w, mac0, err := b.begin(ctx, from)
	if err != nil {
		return smp, err
	}
	w.start = time.Now()
	if _, err := netlab.IP(ctx, src.NS, "link", "set", src.If, "down"); err != nil {
		return smp, err
	}
	rs, timedOut, err := b.collect(ctx, b.cfg.timeout, answeredByOtherThan(src.Name, w.start))
	if err != nil {
		return smp, err
	}
	w.add(rs)
	if timedOut {
		smp.Failed = fmt.Sprintf("no answer from another node within %v", b.cfg.timeout)
		smp.Gap = w.gap(len(w.replies)-1, time.Now())
	} else {
		r := w.replies[w.firstNew]
		smp.To, smp.SinceEvent, smp.Gap = r.From, r.At.Sub(w.start), w.gap(w.firstNew, r.At)
	}
	// Keep the link down a little: a flip-flop among the survivors would
	// show up.
	if rs, _, err = b.collect(ctx, b.cfg.hold, nil); err != nil {
		return smp, err
	}
	w.add(rs)
	// Moves of the takeover itself: until the link comes back.
	smp.Moves = w.moves()
	smp.Lost = w.lost()
	smp.Window = time.Since(w.start)

	up := time.Now()
	if _, err := netlab.IP(ctx, src.NS, "link", "set", src.If, "up"); err != nil {
		return smp, err
	}
	want := src.Name
	healedAt, backAt := time.Time{}, time.Time{}
	rs, _, err = b.collect(ctx, b.cfg.moveBack+b.cfg.timeout, func(rs []netlab.Reply) bool {
		if healedAt.IsZero() && b.healed(want) {
			healedAt = time.Now()
		}
		if backAt.IsZero() && len(rs) > 0 && rs[len(rs)-1].From == want {
			backAt = rs[len(rs)-1].At
		}
		return !healedAt.IsZero() && (!backAt.IsZero() || time.Since(healedAt) > b.cfg.moveBack)
	})
	if err != nil {
		return smp, err
	}
	cur := smp.To
	for _, r := range rs {
		if r.From != cur {
			smp.MovesAfterUp++
			smp.AfterUp = append(smp.AfterUp, fmt.Sprintf("%s@%s", r.From, ms(r.At.Sub(up))))
			cur = r.From
		}
	}
	// Counted only now: the monitor's lines and the prober's answers come
	// through different pipes, so an entry change may be read after the
	// answer it caused.
	smp.NeighMoves = b.neigh.changes(w.start, up, mac0)
	if healedAt.IsZero() {
		smp.Failed = strings.TrimSpace(smp.Failed + " membership did not heal after link up")
		return smp, nil
	}
	smp.Heal = healedAt.Sub(up)
	if !backAt.IsZero() {
		smp.MovedBack, smp.MoveBack = true, backAt.Sub(up)
	}
	return smp, nil
}

// kill SIGKILLs the speaker of node victim and restarts it after
// -restart; from is the owner. victim == from is the "kill" scenario;
// "killother" kills a node that does not own the IP, which must not move
// either.
func (b *realBench) kill(ctx context.Context, mode string, from, victim int) (realSample, error) {
	src := b.lab.Nodes[victim]
	smp := realSample{Mode: mode, From: b.names[from]}
	w, mac0, err := b.begin(ctx, from)
	if err != nil {
		return smp, err
	}
	b.drainStates(from)
	w.start = time.Now()
	b.speakers[victim].Kill()
	rs, _, err := b.collect(ctx, b.cfg.restart, nil)
	if err != nil {
		return smp, err
	}
	w.add(rs)
	s, err := netlab.StartSpeaker(ctx, src, b.spcfg)
	if err != nil {
		return smp, fmt.Errorf("restarting the speaker on %s: %w", src.Name, err)
	}
	b.speakers[victim] = s
	// Watch past the end of the grace: a move caused by it expiring would
	// show up.
	end := w.start.Add(b.cfg.restart + b.graceOrDefault() + time.Second)
	rs, _, err = b.collect(ctx, time.Until(end), nil)
	if err != nil {
		return smp, err
	}
	w.add(rs)
	now := time.Now()
	smp.Gap = w.gap(len(w.replies)-1, now)
	smp.Moves = w.moves()
	smp.Lost = w.lost()
	smp.NeighMoves = b.neigh.changes(w.start, now, mac0)
	smp.SurvivorOwned = b.drainStates(from)
	smp.Window = now.Sub(w.start)
	if w.firstNew >= 0 {
		smp.To = w.replies[w.firstNew].From
		smp.SinceEvent = w.replies[w.firstNew].At.Sub(w.start)
	}
	return smp, nil
}

func (b *realBench) graceOrDefault() time.Duration {
	switch {
	case b.cfg.grace == 0:
		return netlab.DefaultRestartGrace
	case b.cfg.grace < 0:
		return 0
	}
	return b.cfg.grace
}

func (b *realBench) term(ctx context.Context, from int) (realSample, error) {
	src := b.lab.Nodes[from]
	smp := realSample{Mode: "term", From: src.Name}
	w, mac0, err := b.begin(ctx, from)
	if err != nil {
		return smp, err
	}
	if st := b.speakers[from].Latest(); slices.Contains(st.Owned, vip) {
		smp.SinceOwned = time.Since(st.At)
	}
	w.start = time.Now()
	termErr := make(chan error, 1)
	go func() { termErr <- b.speakers[from].Terminate(5 * time.Second) }()
	rs, timedOut, err := b.collect(ctx, b.cfg.timeout, answeredByOtherThan(src.Name, w.start))
	if err != nil {
		return smp, err
	}
	w.add(rs)
	if timedOut {
		smp.Failed = fmt.Sprintf("no answer from another node within %v", b.cfg.timeout)
	} else {
		r := w.replies[w.firstNew]
		smp.To, smp.SinceEvent = r.From, r.At.Sub(w.start)
	}
	// Keep watching while the old speaker stays down: no flip-flop back.
	rs, _, err = b.collect(ctx, b.cfg.observe, nil)
	if err != nil {
		return smp, err
	}
	w.add(rs)
	now := time.Now()
	smp.Gap = w.gap(len(w.replies)-1, now)
	smp.Moves = w.moves()
	smp.Lost = w.lost()
	smp.NeighMoves = b.neigh.changes(w.start, now, mac0)
	smp.Window = now.Sub(w.start)
	if err := <-termErr; err != nil {
		return smp, err
	}
	s, err := netlab.StartSpeaker(ctx, src, b.spcfg)
	if err != nil {
		return smp, fmt.Errorf("restarting the speaker on %s: %w", src.Name, err)
	}
	b.speakers[from] = s
	return smp, nil
}

// neighWatch follows the client's neighbour table with `ip monitor neigh`.
type neighWatch struct {
	cmd  *exec.Cmd
	ip   netip.Addr
	mu   sync.Mutex
	seen []neighEvent
	done chan struct{}
}

type neighEvent struct {
	at  time.Time
	mac string
}

func watchNeighbours(h *netlab.Host, ip netip.Addr) (*neighWatch, error) {
	cmd := exec.Command("ip", "-n", h.NS, "monitor", "neigh", "dev", h.If)
	// Its own process group, so closing it never reaches anything else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ip monitor neigh in %s: %w", h.NS, err)
	}
	nw := &neighWatch{cmd: cmd, ip: ip, done: make(chan struct{})}
	go func() {
		defer close(nw.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 4 || f[0] != ip.String() {
				continue // other addresses, "Deleted ..." lines
			}
			if i := slices.Index(f, "lladdr"); i >= 0 && i+1 < len(f) {
				nw.mu.Lock()
				nw.seen = append(nw.seen, neighEvent{at: time.Now(), mac: f[i+1]})
				nw.mu.Unlock()
			}
		}
		_ = cmd.Wait()
	}()
	return nw, nil
}

// changes counts the MAC changes of the entry between from and to, starting
// from mac0 (nil: the first MAC seen counts as a change).
func (nw *neighWatch) changes(from, to time.Time, mac0 net.HardwareAddr) int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	cur := ""
	if mac0 != nil {
		cur = mac0.String()
	}
	n := 0
	for _, e := range nw.seen {
		if e.at.Before(from) || e.at.After(to) {
			continue
		}
		if e.mac != cur {
			n++
			cur = e.mac
		}
	}
	return n
}

func (nw *neighWatch) close() {
	_ = syscall.Kill(-nw.cmd.Process.Pid, syscall.SIGKILL)
	<-nw.done
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func reportReal(w io.Writer, cfg config, flushes int, sums []realSummary) error {
	if cfg.output == "json" {
		return writeJSON(w, sums)
	}
	t := membership.DefaultTimings()
	fmt.Fprintf(w, "layer-2 takeover with real membership: %d nodes, client probe every %v, restart grace %v, kill restarts after %v, cut held %v after the takeover, term watched %v\n",
		cfg.nodes, cfg.interval, graceText(cfg.grace), cfg.restart, cfg.hold, cfg.observe)
	fmt.Fprintf(w, "membership timings: probe %v/%v, indirect %d, suspicion mult %d, gossip %v x%d, retransmit %d, push/pull %v, tcp %v, rejoin %v\n",
		t.ProbeInterval, t.ProbeTimeout, t.IndirectChecks, t.SuspicionMult, t.GossipInterval, t.GossipNodes,
		t.RetransmitMult, t.PushPullInterval, t.TCPTimeout, membership.DefaultRejoinInterval)
	fmt.Fprintf(w, "%-5s %4s %5s  %-28s %-28s %-12s %-12s\n", "mode", "n", "fails", "event->other node p50/p99/max", "client gap p50/p99/max", "moves/round", "neigh moves")
	p := func(a, b, c time.Duration) string { return ms(a) + "/" + ms(b) + "/" + ms(c) }
	for _, s := range sums {
		ev := p(s.EventP50, s.EventP99, s.EventMax)
		if s.Mode == "kill" || s.Mode == "killother" {
			ev = "-"
		}
		fmt.Fprintf(w, "%-5s %4d %5d  %-28s %-28s %-12s %-12s\n", s.Mode, s.N, s.Failures, ev,
			p(s.GapP50, s.GapP99, s.GapMax), spread(s.Moves), spread(s.NeighMoves))
	}
	for _, s := range sums {
		if s.Mode != "cut" {
			continue
		}
		fmt.Fprintf(w, "cut, after link up: membership healed p50/p99/max %s; client moved back to the old owner (second move) in %d/%d rounds within %v of healing",
			p(s.HealP50, s.HealP99, s.HealMax), s.MovedBack, s.N, cfg.moveBack)
		if s.MovedBack > 0 {
			fmt.Fprintf(w, ", link up -> old owner p50/p99/max %s", p(s.BackP50, s.BackP99, s.BackMax))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "client neighbour entries deleted to settle a round: %d\n", flushes)
	return nil
}

// spread prints min-max and the total of per-round counts.
func spread(v []int) string {
	if len(v) == 0 {
		return "-"
	}
	total := 0
	for _, x := range v {
		total += x
	}
	return fmt.Sprintf("%d-%d (Σ%d)", slices.Min(v), slices.Max(v), total)
}

func graceText(g time.Duration) string {
	switch {
	case g == 0:
		return netlab.DefaultRestartGrace.String()
	case g < 0:
		return "none"
	}
	return g.String()
}
