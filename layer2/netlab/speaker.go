package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/election"
	"github.com/ironlb/ironlb/layer2"
	"github.com/ironlb/ironlb/membership"
)

// Mini speaker defaults, the values the real speaker uses.
const (
	// DefaultRestartGrace is the speaker's default restart grace.
	DefaultRestartGrace = 3 * time.Second
	// hostProbeTimeout is how long the speaker waits for a failed member's
	// host to refuse a TCP connection.
	hostProbeTimeout = 100 * time.Millisecond
	// speakerLeaveTimeout is the speaker's Leave budget on SIGTERM.
	speakerLeaveTimeout = 2 * time.Second
)

// NodeAddr names a speaker and the node IP its membership binds to.
type NodeAddr struct {
	Name string     `json:"name"`
	IP   netip.Addr `json:"ip"`
}

// SpeakerConfig configures a mini speaker helper.
type SpeakerConfig struct {
	// Nodes lists every speaker of the cluster, this one included; the
	// others are the membership seeds and the hosts probed during a restart
	// grace.
	Nodes []NodeAddr
	// IPs are the LoadBalancer IPs elected over the alive speakers.
	IPs []netip.Addr
	// Secret is the shared memberlist secret (required: the lab runs
	// encrypted, like a real cluster).
	Secret string
	// Grace is the restart grace; 0 means DefaultRestartGrace, negative
	// means none.
	Grace time.Duration
	// Rejoin is membership's re-join interval; 0 means its default.
	Rejoin time.Duration
	// Interfaces served by the announcer; default: all.
	Interfaces []string
	Debug      bool
	// Standby starts the speaker as the real one starts without a valid
	// configuration: alive, not a candidate, announcing nothing, until
	// Configure.
	Standby bool
}

// SpeakerState is one decision of a mini speaker: the alive set the election
// used and the IPs this node announces.
type SpeakerState struct {
	At    time.Time
	Alive []string
	Owned []netip.Addr
}

// SpeakerProc is a mini speaker running in a helper process: membership
// (memberlist on the node IP, port 7946, encrypted), the restart-grace
// liveness tracker, the owner election and a layer2 Announcer, combined as
// the speaker package combines them. SIGTERM is the planned handover:
// withdraw, then leave.
type SpeakerProc struct {
	*Proc
	mu     sync.Mutex
	latest SpeakerState
	states chan SpeakerState
}

// StartSpeaker runs a mini speaker inside h's namespace; it returns once the
// speaker has made its first decision.
func StartSpeaker(ctx context.Context, h *Host, cfg SpeakerConfig) (*SpeakerProc, error) {
	if cfg.Secret == "" {
		return nil, errors.New("netlab: StartSpeaker: Secret is empty (the lab runs encrypted)")
	}
	s := &SpeakerProc{states: make(chan SpeakerState, 1024)}
	handle := func(line string) bool {
		st, ok := parseSpeakerState(line)
		if !ok {
			return false
		}
		s.mu.Lock()
		s.latest = st
		s.mu.Unlock()
		select {
		case s.states <- st:
		default:
		}
		return true
	}
	p, err := startProc(ctx, h.NS, "speaker", helperArgs{
		Name: h.Name, Interfaces: cfg.Interfaces, Debug: cfg.Debug,
		Nodes: cfg.Nodes, IPs: cfg.IPs, Secret: cfg.Secret, Grace: cfg.Grace, Rejoin: cfg.Rejoin,
		Standby: cfg.Standby,
	}, handle)
	if err != nil {
		return nil, err
	}
	s.Proc = p
	return s, nil
}

// Configure gives a speaker started on standby its configuration: it
// becomes a candidate. It returns once the others have been told.
func (s *SpeakerProc) Configure() error {
	_, err := s.command("configure")
	return err
}

// Latest returns the speaker's latest decision.
func (s *SpeakerProc) Latest() SpeakerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}

// States delivers every decision (dropped when nobody reads).
func (s *SpeakerProc) States() <-chan SpeakerState { return s.states }

// Terminate sends SIGTERM (the planned handover) and returns once the
// helper has exited; after timeout it is killed and an error returned.
func (s *SpeakerProc) Terminate(timeout time.Duration) error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("netlab: SIGTERM to speaker %d: %w", s.PID(), err)
	}
	select {
	case <-s.exited:
		return nil
	case <-time.After(timeout):
		s.Kill()
		return fmt.Errorf("netlab: speaker %d still running %v after SIGTERM; killed", s.PID(), timeout)
	}
}

// Exited is closed when the helper has ended.
func (s *SpeakerProc) Exited() <-chan struct{} { return s.exited }

// "state <unix-nanos> <alive,...|-> <owned,...|->"
func formatSpeakerState(st SpeakerState) string {
	list := func(v []string) string {
		if len(v) == 0 {
			return "-"
		}
		return strings.Join(v, ",")
	}
	owned := make([]string, len(st.Owned))
	for i, ip := range st.Owned {
		owned[i] = ip.String()
	}
	return fmt.Sprintf("state %d %s %s", st.At.UnixNano(), list(st.Alive), list(owned))
}

func parseSpeakerState(line string) (SpeakerState, bool) {
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "state" {
		return SpeakerState{}, false
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return SpeakerState{}, false
	}
	st := SpeakerState{At: time.Unix(0, ns)}
	if f[2] != "-" {
		st.Alive = strings.Split(f[2], ",")
	}
	if f[3] != "-" {
		for _, s := range strings.Split(f[3], ",") {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return SpeakerState{}, false
			}
			st.Owned = append(st.Owned, ip)
		}
	}
	return st, true
}

// runSpeaker is the mini speaker: on every membership change (or grace
// expiry) alive := liveness.Update(now, members.Candidates()), then the IPs
// whose election.Owner over alive is this node are announced (none while on
// standby, as the speaker without a configuration). Its announcer resolves
// split brains, as the speaker's does. It prints "ready", then one "state"
// line per decision; the command "configure" on in ends the standby and
// answers "ok". SIGTERM (ctx) or the end of in is the planned handover: stop
// announcing, leave, exit.
func runSpeaker(ctx context.Context, args helperArgs, in io.Reader, out io.Writer) error {
	log := helperLogger(args)
	var say sync.Mutex
	printf := func(format string, a ...any) {
		say.Lock()
		defer say.Unlock()
		fmt.Fprintf(out, format+"\n", a...)
	}
	var self netip.Addr
	hosts := map[string]netip.Addr{}
	for _, n := range args.Nodes {
		hosts[n.Name] = n.IP
		if n.Name == args.Name {
			self = n.IP
		}
	}
	if !self.IsValid() {
		return fmt.Errorf("speaker %q: not in Nodes %v", args.Name, args.Nodes)
	}
	grace := args.Grace
	switch {
	case grace == 0:
		grace = DefaultRestartGrace
	case grace < 0:
		grace = 0
	}

	members, err := membership.New(membership.Options{
		NodeName:  args.Name,
		BindAddr:  self,
		SecretKey: []byte(args.Secret),
		Seeds: func() []netip.AddrPort {
			var seeds []netip.AddrPort
			for _, n := range args.Nodes {
				if n.Name != args.Name {
					seeds = append(seeds, netip.AddrPortFrom(n.IP, membership.DefaultPort))
				}
			}
			return seeds
		},
		RejoinInterval: args.Rejoin,
		Logger:         log,
		Standby:        args.Standby,
	})
	if err != nil {
		return fmt.Errorf("speaker %s: membership: %w", args.Name, err)
	}
	// As the speaker does: yield in a conflict only while some speaker is missing from the
	// membership (a split brain is possible only then).
	ann, err := layer2.NewAnnouncer(layer2.Options{
		Interfaces: args.Interfaces, Logger: log, RescanInterval: time.Second, ResolveConflicts: true,
		MayYield: func() bool { return len(members.Alive()) < len(args.Nodes) },
	})
	if err != nil {
		return fmt.Errorf("speaker %s: announcer: %w", args.Name, err)
	}

	poke := make(chan struct{}, 1)
	hostUp := func(name string) bool {
		ip, ok := hosts[name]
		return ok && membership.HostAnswers(netip.AddrPortFrom(ip, membership.DefaultPort), hostProbeTimeout)
	}
	live := membership.NewLiveness(args.Name, grace, hostUp, members.Withdrawn, func() {
		select {
		case poke <- struct{}{}:
		default:
		}
	}, log)

	mctx, mcancel := context.WithCancel(context.Background())
	defer mcancel()
	mdone := make(chan error, 1)
	go func() { mdone <- members.Run(mctx) }()
	actx, acancel := context.WithCancel(context.Background())
	defer acancel()
	adone := make(chan error, 1)
	go func() { adone <- ann.Run(actx) }()

	deadline := time.Now().Add(10 * time.Second)
	for len(ann.Interfaces()) == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("speaker %s: no interface served after 10s", args.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}

	var prevAlive map[string]bool
	standby := args.Standby
	partitioned := false
	decide := func() {
		now := time.Now()
		alive := live.Update(now, members.Candidates())
		// As the speaker does: a member that is back (a healed partition) makes every owner
		// announce again, so clients return to it at once.
		rejoined := false
		for n := range alive {
			rejoined = rejoined || (prevAlive != nil && !prevAlive[n])
		}
		prevAlive = alive
		names := make([]string, 0, len(alive))
		for n := range alive {
			names = append(names, n)
		}
		slices.Sort(names)
		var owned []netip.Addr
		for _, ip := range args.IPs {
			if !standby && election.Owner(ip, names) == args.Name {
				owned = append(owned, ip)
			}
		}
		ann.SetOwned(owned)
		if rejoined {
			ann.Reannounce()
		}
		// As the speaker does: starting to miss a member, announce once what this node owns,
		// so that a node on the other side of a split finds the conflict.
		missing := len(members.Alive()) < len(args.Nodes)
		if missing && !partitioned {
			ann.Assert()
		}
		partitioned = missing
		printf("%s", formatSpeakerState(SpeakerState{At: now, Alive: names, Owned: owned}))
	}
	decide()
	printf("ready")

	eof := make(chan struct{})
	configure := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "configure" {
				configure <- struct{}{}
			} else {
				printf("err unknown command %q", sc.Text())
			}
		}
	}()
	for {
		select {
		case <-configure:
			standby = false
			if err := members.SetStandby(false, 2*time.Second); err != nil {
				printf("err %v", err)
				continue
			}
			printf("ok")
		case <-members.Changes():
		case <-poke:
		case <-ctx.Done():
			return speakerShutdown(log.With("phase", "shutdown"), ann, members, mcancel, mdone, acancel, adone)
		case <-eof:
			return speakerShutdown(log.With("phase", "shutdown"), ann, members, mcancel, mdone, acancel, adone)
		}
		decide()
	}
}

// speakerShutdown is the planned handover, in the speaker's order: withdraw
// every announcement, then leave, then release the sockets.
func speakerShutdown(log *slog.Logger, ann *layer2.Announcer, members *membership.Members,
	mcancel context.CancelFunc, mdone <-chan error, acancel context.CancelFunc, adone <-chan error) error {
	log.Info("withdrawing all announcements before leaving")
	ann.Stop()
	lerr := members.Leave(speakerLeaveTimeout)
	mcancel()
	acancel()
	return errors.Join(lerr, <-mdone, <-adone)
}
