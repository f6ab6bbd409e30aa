package netlab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// commandTimeout bounds every request/answer exchange with a helper.
const commandTimeout = 10 * time.Second

// Proc is a helper process running inside a namespace.
type Proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // answers and other non-event lines
	stderr *syncBuffer
	exited chan struct{}
	err    error // set before exited is closed

	handle func(line string) bool // consumes event lines; true = consumed
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 {
		return len(p), nil // enough to debug; do not grow without bound
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProc(ctx context.Context, ns, role string, args helperArgs, handle func(string) bool) (*Proc, error) {
	cmd, err := helperCmd(ctx, ns, role, args)
	if err != nil {
		return nil, err
	}
	p := &Proc{
		cmd:    cmd,
		lines:  make(chan string, 64),
		stderr: &syncBuffer{},
		exited: make(chan struct{}),
		handle: handle,
	}
	cmd.Stderr = p.stderr
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netlab: starting %s helper in %s: %w", role, ns, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if p.handle != nil && p.handle(line) {
				continue
			}
			p.lines <- line
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	line, err := p.next()
	if err != nil || !strings.HasPrefix(line, "ready") {
		p.Kill()
		return nil, fmt.Errorf("netlab: %s helper in %s did not start (got %q, %v); its log:\n%s", role, ns, line, err, p.Logs())
	}
	return p, nil
}

// next returns the next non-event line from the helper.
func (p *Proc) next() (string, error) {
	select {
	case l := <-p.lines:
		return l, nil
	case <-p.exited:
		select {
		case l := <-p.lines:
			return l, nil
		default:
		}
		return "", fmt.Errorf("netlab: helper exited: %v", p.err)
	case <-time.After(commandTimeout):
		return "", errors.New("netlab: helper did not answer within 10s")
	}
}

// command sends one line and returns the answer.
func (p *Proc) command(line string) (string, error) {
	if _, err := fmt.Fprintln(p.stdin, line); err != nil {
		return "", fmt.Errorf("netlab: writing %q to helper: %w", line, err)
	}
	ans, err := p.next()
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(ans, "err ") {
		return "", fmt.Errorf("netlab: helper refused %q: %s", line, ans[4:])
	}
	return ans, nil
}

// PID is the helper's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Logs returns what the helper wrote to stderr.
func (p *Proc) Logs() string { return p.stderr.String() }

// Kill ends the helper with SIGKILL (a crash, as far as the network can
// tell) and waits for it.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Close asks the helper to end (stdin closed, then SIGTERM) and waits; after
// 5 s it is killed.
func (p *Proc) Close() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
		return
	case <-time.After(time.Second):
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(4 * time.Second):
		p.Kill()
	}
}

// Duplicate is one OnDuplicate call seen in a helper.
type Duplicate struct {
	IP    netip.Addr
	MAC   net.HardwareAddr
	Iface string
}

// AnnouncerConfig configures an announce helper.
type AnnouncerConfig struct {
	Interfaces []string        // default: all (the Announcer's default)
	Schedule   []time.Duration // default: layer2.DefaultGratuitousSchedule
	Rescan     time.Duration   // default: 1s, so tests need not wait 10s
	Debug      bool            // debug logs
	// ResolveConflicts turns on the Announcer's split-brain resolution.
	ResolveConflicts bool
}

// AnnouncerProc is a layer2.Announcer running in a helper process.
type AnnouncerProc struct {
	*Proc
	dups chan Duplicate
}

// StartAnnouncer runs an Announcer inside h's namespace; it returns once the
// Announcer serves at least one interface.
func StartAnnouncer(ctx context.Context, h *Host, cfg AnnouncerConfig) (*AnnouncerProc, error) {
	if cfg.Rescan == 0 {
		cfg.Rescan = time.Second
	}
	a := &AnnouncerProc{dups: make(chan Duplicate, 1024)}
	handle := func(line string) bool {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "dup" {
			return false
		}
		ip, err1 := netip.ParseAddr(f[1])
		mac, err2 := net.ParseMAC(f[2])
		if err1 == nil && err2 == nil {
			select {
			case a.dups <- Duplicate{IP: ip, MAC: mac, Iface: f[3]}:
			default:
			}
		}
		return true
	}
	p, err := startProc(ctx, h.NS, "announce", helperArgs{
		Name: h.Name, Interfaces: cfg.Interfaces, Schedule: cfg.Schedule, Rescan: cfg.Rescan, Debug: cfg.Debug,
		Resolve: cfg.ResolveConflicts,
	}, handle)
	if err != nil {
		return nil, err
	}
	a.Proc = p
	return a, nil
}

// SetOwned calls SetOwned in the helper and returns once it returned there.
func (a *AnnouncerProc) SetOwned(ips ...netip.Addr) error {
	parts := []string{"own"}
	for _, ip := range ips {
		parts = append(parts, ip.String())
	}
	_, err := a.command(strings.Join(parts, " "))
	return err
}

// Stop calls Stop in the helper and returns once it returned there.
func (a *AnnouncerProc) Stop() error {
	_, err := a.command("stop")
	return err
}

// Metric returns the helper's counter name{ip=ip} (0 if never incremented).
func (a *AnnouncerProc) Metric(name string, ip netip.Addr) (float64, error) {
	ans, err := a.command("metric " + name + " " + ip.String())
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(strings.TrimPrefix(ans, "metric "), 64)
	if err != nil {
		return 0, fmt.Errorf("netlab: parsing metric answer %q: %w", ans, err)
	}
	return v, nil
}

// Duplicates delivers the helper's OnDuplicate calls.
func (a *AnnouncerProc) Duplicates() <-chan Duplicate { return a.dups }

// StartEcho runs a UDP echo server on addr (host:port) inside h's namespace;
// it answers "<h.Name> <payload>".
func StartEcho(ctx context.Context, h *Host, addr string) (*Proc, error) {
	return startProc(ctx, h.NS, "echo", helperArgs{Name: h.Name, Addr: addr}, nil)
}

// Reply is one answer seen by a prober.
type Reply struct {
	At   time.Time
	From string // the responder's Host.Name
	Seq  int
}

// Prober sends a UDP datagram to a target at a fixed interval from inside a
// namespace and reports who answers.
type Prober struct {
	*Proc
	replies chan Reply
}

// StartProbe starts a prober in h's namespace sending to addr every
// interval.
func StartProbe(ctx context.Context, h *Host, addr string, interval time.Duration) (*Prober, error) {
	pr := &Prober{replies: make(chan Reply, 1<<16)}
	handle := func(line string) bool {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "r" {
			return false
		}
		ns, err1 := strconv.ParseInt(f[1], 10, 64)
		seq, err2 := strconv.Atoi(f[3])
		if err1 == nil && err2 == nil {
			select {
			case pr.replies <- Reply{At: time.Unix(0, ns), From: f[2], Seq: seq}:
			default:
			}
		}
		return true
	}
	p, err := startProc(ctx, h.NS, "probe", helperArgs{Name: h.Name, Addr: addr, Interval: interval}, handle)
	if err != nil {
		return nil, err
	}
	pr.Proc = p
	return pr, nil
}

// Replies delivers the answers in arrival order.
func (pr *Prober) Replies() <-chan Reply { return pr.replies }

// LeakResult is what a leak check measured inside the namespace.
type LeakResult struct {
	GoroutinesBefore, GoroutinesAfter int
	FDsBefore, FDsAfter               int
}

// RunLeakCheck starts and ends several Announcers owning ips inside h's
// namespace and reports goroutines and open file descriptors before and
// after.
func RunLeakCheck(ctx context.Context, h *Host, ips []netip.Addr) (LeakResult, string, error) {
	cmd, err := helperCmd(ctx, h.NS, "leakcheck", helperArgs{Name: h.Name, Interfaces: []string{h.If}, IPs: ips})
	if err != nil {
		return LeakResult{}, "", err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return LeakResult{}, stderr.String(), fmt.Errorf("netlab: leak check: %w", err)
	}
	var r LeakResult
	if _, err := fmt.Sscanf(string(out), "leak %d %d %d %d", &r.GoroutinesBefore, &r.GoroutinesAfter, &r.FDsBefore, &r.FDsAfter); err != nil {
		return LeakResult{}, stderr.String(), fmt.Errorf("netlab: parsing leak check output %q: %w", out, err)
	}
	return r, stderr.String(), nil
}

// JunkReply is the fate of one ARP request sent among malformed frames.
type JunkReply struct {
	Answered bool
	After    time.Duration    // request to reply
	MAC      net.HardwareAddr // who replied
}

// ARPAmidJunk sends junk malformed ARP frames from h, then keeps sending
// about one a millisecond while it sends ten ARP requests for ip, 200ms
// apart, and returns what became of each (unanswered after 1s: not
// Answered).
func ARPAmidJunk(ctx context.Context, h *Host, ip netip.Addr, junk int) ([]JunkReply, error) {
	cmd, err := helperCmd(ctx, h.NS, "junkarp", helperArgs{Name: h.Name, Interfaces: []string{h.If}, IPs: []netip.Addr{ip}, Count: junk})
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("netlab: junk ARP: %w\n%s", err, stderr.String())
	}
	var rs []JunkReply
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "noreply" {
			rs = append(rs, JunkReply{})
			continue
		}
		var ns int64
		var macText string
		if _, err := fmt.Sscanf(line, "reply %d %s", &ns, &macText); err != nil {
			return nil, fmt.Errorf("netlab: parsing junk ARP output %q: %w", line, err)
		}
		mac, err := net.ParseMAC(macText)
		if err != nil {
			return nil, err
		}
		rs = append(rs, JunkReply{Answered: true, After: time.Duration(ns), MAC: mac})
	}
	return rs, nil
}
