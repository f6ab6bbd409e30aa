// Command ironlb-bench-l2 measures how a layer-2 takeover reaches a client, in
// throw-away network namespaces (a bridge, N nodes, a client sending a UDP
// probe to a LoadBalancer IP every few milliseconds). Needs root.
//
// By default every node runs a mini speaker (netlab.StartSpeaker: memberlist on
// the node IP with a shared secret, the restart-grace liveness tracker, the
// owner election and the layer2 Announcer, combined as the speaker does), and
// three scenarios are repeated:
//
//   - cut: the owner's link goes down; membership detects it, another node
//     takes over. Then the link comes back, membership heals and the old
//     owner wins the IP back (the second move, reported separately).
//   - kill: the owner's speaker is SIGKILLed and restarted after -restart
//     while its node keeps serving; within the restart grace the client's
//     answering node must not change.
//   - term: the owner's speaker gets SIGTERM (planned handover: withdraw,
//     leave); another node takes over; exactly one move.
//   - killother (not in the default set): like kill, but for a speaker that
//     does not own the IP; nothing should move either.
//
// It prints p50/p99/max of the time to the first answer from another node and
// of the longest silence seen by the client, and how often the answering node
// and the client's neighbour entry changed.
//
// With -sim, the membership decision is simulated instead: plain announcers,
// and the bench itself hands the IP to the next node after -delay (modes cut
// and kill).
//
//	go run ./cmd/ironlb-bench-l2 -n 20 -mode cut,kill,term
//	go run ./cmd/ironlb-bench-l2 -sim -n 20 -mode cut,kill
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/layer2/netlab"
)

type config struct {
	iterations int
	nodes      int
	interval   time.Duration
	delay      time.Duration
	modes      []string
	timeout    time.Duration
	output     string
	verbose    bool
	sim        bool
	grace      time.Duration
	restart    time.Duration
	observe    time.Duration
	moveBack   time.Duration
	hold       time.Duration
	debug      bool
}

func main() {
	netlab.MaybeRunHelper() // this binary re-executes itself as helper

	var cfg config
	var modes string
	flag.IntVar(&cfg.iterations, "n", 20, "takeovers measured per mode")
	flag.IntVar(&cfg.nodes, "nodes", 3, "node namespaces (at least 2)")
	flag.DurationVar(&cfg.interval, "interval", 10*time.Millisecond, "interval between the client's probes")
	flag.DurationVar(&cfg.delay, "delay", 0, "time between losing the owner and the new owner's takeover (stands in for failure detection)")
	flag.StringVar(&modes, "mode", "", "comma-separated: cut (owner's link set down), kill (owner's speaker SIGKILLed, restarted after -restart), term (owner's speaker SIGTERMed), killother (a non-owner's speaker SIGKILLed and restarted); term and killother not with -sim; default cut,kill,term (-sim: cut,kill)")
	flag.BoolVar(&cfg.sim, "sim", false, "simulate the membership decision: plain announcers, the next node takes over after -delay")
	flag.DurationVar(&cfg.grace, "grace", 0, "mini speakers' restart grace (0: the speaker default, 3s; negative: none)")
	flag.DurationVar(&cfg.restart, "restart", time.Second, "kill: restart the killed speaker after this long")
	flag.DurationVar(&cfg.observe, "observe", 3*time.Second, "term: keep watching this long after the takeover for moves back")
	flag.DurationVar(&cfg.moveBack, "moveback", 3*time.Second, "cut: after membership healed, wait this long for the client to return to the old owner")
	flag.DurationVar(&cfg.hold, "hold", time.Second, "cut: keep the link down this long after the client reached another node")
	flag.BoolVar(&cfg.debug, "debug", false, "debug logs from the helpers")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "give up on one takeover after this long")
	flag.StringVar(&cfg.output, "o", "text", "output format: text or json")
	flag.BoolVar(&cfg.verbose, "v", false, "print every takeover")
	flag.Parse()
	switch {
	case modes != "":
		cfg.modes = strings.Split(modes, ",")
	case cfg.sim:
		cfg.modes = []string{"cut", "kill"}
	default:
		cfg.modes = []string{"cut", "kill", "term"}
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ironlb-bench-l2:", err)
		os.Exit(1)
	}
}

var (
	vip      = netip.MustParseAddr("192.168.77.100")
	echoPort = "7777"
)

// sample is one measured takeover.
type sample struct {
	Mode string `json:"mode"`
	From string `json:"from"`
	To   string `json:"to"`
	// SinceEvent: from the owner's loss (link down / process reaped) to the
	// first answer from the new owner, as seen by the client.
	SinceEvent time.Duration `json:"sinceEventNs"`
	// Gap: the longest time without any answer, between the last answer
	// before the event and the first answer from the new owner; the
	// probe interval is its floor.
	Gap    time.Duration `json:"gapNs"`
	Failed string        `json:"failed,omitempty"`
}

// summary holds percentiles of one mode.
type summary struct {
	Mode       string        `json:"mode"`
	N          int           `json:"n"`
	Failures   int           `json:"failures"`
	EventP50   time.Duration `json:"sinceEventP50Ns"`
	EventP99   time.Duration `json:"sinceEventP99Ns"`
	EventMax   time.Duration `json:"sinceEventMaxNs"`
	GapP50     time.Duration `json:"gapP50Ns"`
	GapP99     time.Duration `json:"gapP99Ns"`
	GapMax     time.Duration `json:"gapMaxNs"`
	Samples    []sample      `json:"samples"`
	Delay      time.Duration `json:"delayNs"`
	ProbeEvery time.Duration `json:"probeIntervalNs"`
}

type bench struct {
	cfg   config
	lab   *netlab.Lab
	anns  []*netlab.AnnouncerProc
	echos []*netlab.Proc
	probe *netlab.Prober
	last  time.Time // when the client got its latest answer
	log   io.Writer
}

// next waits for the client's next answer.
func (b *bench) next(ctx context.Context, timeout <-chan time.Time) (netlab.Reply, error) {
	select {
	case r := <-b.probe.Replies():
		b.last = r.At
		return r, nil
	case <-timeout:
		return netlab.Reply{}, errTimeout
	case <-ctx.Done():
		return netlab.Reply{}, ctx.Err()
	}
}

var errTimeout = errors.New("timed out")

func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (it builds network namespaces)")
	}
	if cfg.nodes < 2 || cfg.iterations < 1 || cfg.interval <= 0 {
		return fmt.Errorf("need -nodes >= 2, -n >= 1, -interval > 0 (got %d, %d, %v)", cfg.nodes, cfg.iterations, cfg.interval)
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if !cfg.sim {
		return runReal(ctx, cfg, stdout, stderr)
	}

	b := &bench{cfg: cfg, log: stderr}
	defer b.close()
	if err := b.setup(ctx); err != nil {
		return err
	}
	var sums []summary
	for _, mode := range cfg.modes {
		s, err := b.measure(ctx, mode)
		if err != nil {
			return err
		}
		sums = append(sums, s)
	}
	return report(stdout, cfg, sums)
}

func (cfg config) validate() error {
	valid := []string{"cut", "kill", "term", "killother"}
	if cfg.sim {
		valid = valid[:2]
	}
	for _, m := range cfg.modes {
		if !slices.Contains(valid, m) {
			return fmt.Errorf("-mode %q: want one of %s (with -sim=%v)", m, strings.Join(valid, ", "), cfg.sim)
		}
	}
	if cfg.output != "text" && cfg.output != "json" {
		return fmt.Errorf("-o %q: want text or json", cfg.output)
	}
	if cfg.timeout <= 0 || cfg.restart < 0 || cfg.observe < 0 || cfg.moveBack < 0 || cfg.hold < 0 {
		return fmt.Errorf("-timeout must be > 0 and -restart, -observe, -moveback, -hold >= 0 (got %v, %v, %v, %v, %v)",
			cfg.timeout, cfg.restart, cfg.observe, cfg.moveBack, cfg.hold)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (b *bench) setup(ctx context.Context) error {
	lab, err := netlab.New(ctx, b.cfg.nodes)
	if err != nil {
		return err
	}
	b.lab = lab
	for _, h := range lab.Nodes {
		// The service answers on the IP (on lo), but only the announcer
		// answers ARP for it: arp_ignore=1 makes the kernel answer only
		// for addresses of the asking interface, arp_announce=2 keeps
		// the IP out of the node's own ARP requests.
		if _, err := netlab.IP(ctx, h.NS, "addr", "add", vip.String()+"/32", "dev", "lo"); err != nil {
			return err
		}
		if _, err := netlab.Exec(ctx, h.NS, "sysctl", "-qw",
			"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"); err != nil {
			return err
		}
		e, err := netlab.StartEcho(ctx, h, vip.String()+":"+echoPort)
		if err != nil {
			return err
		}
		b.echos = append(b.echos, e)
		a, err := b.startAnnouncer(ctx, h)
		if err != nil {
			return err
		}
		b.anns = append(b.anns, a)
	}
	b.probe, err = netlab.StartProbe(ctx, lab.Client, vip.String()+":"+echoPort, b.cfg.interval)
	return err
}

func (b *bench) startAnnouncer(ctx context.Context, h *netlab.Host) (*netlab.AnnouncerProc, error) {
	return netlab.StartAnnouncer(ctx, h, netlab.AnnouncerConfig{Interfaces: []string{h.If}})
}

func (b *bench) close() {
	if b.probe != nil {
		b.probe.Close()
	}
	for _, a := range b.anns {
		if a != nil {
			a.Close()
		}
	}
	for _, e := range b.echos {
		e.Close()
	}
	if b.lab != nil {
		if err := b.lab.Close(); err != nil {
			fmt.Fprintln(b.log, "cleanup:", err)
		}
	}
}

// settle makes node i the only owner with every link up, and waits until the
// client gets a steady stream of answers from it.
func (b *bench) settle(ctx context.Context, owner int) error {
	for i, a := range b.anns {
		if i != owner {
			if err := a.SetOwned(); err != nil {
				return err
			}
		}
	}
	for _, h := range b.lab.Nodes {
		if _, err := netlab.IP(ctx, h.NS, "link", "set", h.If, "up"); err != nil {
			return err
		}
	}
	if err := b.anns[owner].SetOwned(vip); err != nil {
		return err
	}
	want := b.lab.Nodes[owner].Name
	const steady = 20
	run := 0
	deadline := time.After(b.cfg.timeout)
	for run < steady {
		r, err := b.next(ctx, deadline)
		if errors.Is(err, errTimeout) {
			return fmt.Errorf("client did not settle on %s within %v", want, b.cfg.timeout)
		}
		if err != nil {
			return err
		}
		if r.From == want {
			run++
		} else {
			run = 0
		}
	}
	return nil
}

func (b *bench) measure(ctx context.Context, mode string) (summary, error) {
	s := summary{Mode: mode, Delay: b.cfg.delay, ProbeEvery: b.cfg.interval}
	n := len(b.lab.Nodes)
	for it := range b.cfg.iterations {
		from, to := it%n, (it+1)%n
		if err := b.settle(ctx, from); err != nil {
			return s, err
		}
		smp, err := b.takeover(ctx, mode, from, to)
		if err != nil {
			return s, err
		}
		if b.cfg.verbose {
			fmt.Fprintf(b.log, "%s %s->%s: since event %v, gap %v %s\n", mode, smp.From, smp.To,
				smp.SinceEvent.Round(100*time.Microsecond), smp.Gap.Round(100*time.Microsecond), smp.Failed)
		}
		s.Samples = append(s.Samples, smp)
	}
	var ev, gaps []time.Duration
	for _, smp := range s.Samples {
		if smp.Failed != "" {
			s.Failures++
			continue
		}
		ev = append(ev, smp.SinceEvent)
		gaps = append(gaps, smp.Gap)
	}
	s.N = len(ev)
	s.EventP50, s.EventP99, s.EventMax = percentiles(ev)
	s.GapP50, s.GapP99, s.GapMax = percentiles(gaps)
	return s, nil
}

// takeover loses node from (per mode), lets node to take over after the
// configured delay, and times the client's view.
func (b *bench) takeover(ctx context.Context, mode string, from, to int) (sample, error) {
	src, dst := b.lab.Nodes[from], b.lab.Nodes[to]
	smp := sample{Mode: mode, From: src.Name, To: dst.Name}

	// Take what arrived while settling: the gap starts at the last answer.
	for drained := false; !drained; {
		select {
		case r := <-b.probe.Replies():
			b.last = r.At
		default:
			drained = true
		}
	}

	switch mode {
	case "cut":
		if _, err := netlab.IP(ctx, src.NS, "link", "set", src.If, "down"); err != nil {
			return smp, err
		}
	case "kill":
		b.anns[from].Kill()
	}
	event := time.Now()
	if b.cfg.delay > 0 {
		time.Sleep(b.cfg.delay)
	}
	if err := b.anns[to].SetOwned(vip); err != nil {
		return smp, err
	}

	deadline := time.After(b.cfg.timeout)
	gap := time.Duration(0)
	for {
		prev := b.last
		r, err := b.next(ctx, deadline)
		if errors.Is(err, errTimeout) {
			smp.Failed = fmt.Sprintf("no answer from %s within %v", dst.Name, b.cfg.timeout)
			break
		}
		if err != nil {
			return smp, err
		}
		gap = max(gap, r.At.Sub(prev))
		if r.From == dst.Name && r.At.After(event) {
			smp.SinceEvent = r.At.Sub(event)
			smp.Gap = gap
			break
		}
	}

	if mode == "kill" {
		a, err := b.startAnnouncer(ctx, src)
		if err != nil {
			return smp, fmt.Errorf("restarting announcer on %s: %w", src.Name, err)
		}
		b.anns[from] = a
	}
	return smp, nil
}

// percentiles returns p50, p99 and max (nearest rank).
func percentiles(d []time.Duration) (p50, p99, mx time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return rank(0.50), rank(0.99), s[len(s)-1]
}

func report(w io.Writer, cfg config, sums []summary) error {
	if cfg.output == "json" {
		return writeJSON(w, sums)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(w, "layer-2 takeover, %d nodes, client probe every %v, takeover delay %v\n", cfg.nodes, cfg.interval, cfg.delay)
	fmt.Fprintf(w, "%-5s %4s %8s  %-28s %-28s\n", "mode", "n", "failures", "event->new owner p50/p99/max", "client gap p50/p99/max")
	for _, s := range sums {
		fmt.Fprintf(w, "%-5s %4d %8d  %-28s %-28s\n", s.Mode, s.N, s.Failures,
			ms(s.EventP50)+"/"+ms(s.EventP99)+"/"+ms(s.EventMax),
			ms(s.GapP50)+"/"+ms(s.GapP99)+"/"+ms(s.GapMax))
	}
	return nil
}
