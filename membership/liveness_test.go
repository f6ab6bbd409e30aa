package membership

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func aliveNames(set map[string]bool) []string {
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func TestLivenessRestartGrace(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name   string
		hostUp bool
		left   bool
		// withdrawnFrom: from this step on, left reports true (0: never, as left says)
		withdrawnFrom int
		// alive sets given to update, at t0, t0+1s, t0+2s, t0+4s
		steps [][]string
		want  [][]string
	}{
		{
			name:   "crashed speaker on a live host keeps its place during the grace",
			hostUp: true,
			steps:  [][]string{{"a", "b", "c"}, {"a", "c"}, {"a", "c"}, {"a", "c"}},
			want:   [][]string{{"a", "b", "c"}, {"a", "b", "c"}, {"a", "b", "c"}, {"a", "c"}},
		},
		{
			name:   "a speaker that comes back within the grace never left",
			hostUp: true,
			steps:  [][]string{{"a", "b", "c"}, {"a", "c"}, {"a", "b", "c"}, {"a", "b", "c"}},
			want:   [][]string{{"a", "b", "c"}, {"a", "b", "c"}, {"a", "b", "c"}, {"a", "b", "c"}},
		},
		{
			name:   "a host that does not answer (cut link) loses its place at once",
			hostUp: false,
			steps:  [][]string{{"a", "b", "c"}, {"a", "c"}, {"a", "c"}, {"a", "c"}},
			want:   [][]string{{"a", "b", "c"}, {"a", "c"}, {"a", "c"}, {"a", "c"}},
		},
		{
			name:   "a planned leave moves at once even though the host answers",
			hostUp: true,
			left:   true,
			steps:  [][]string{{"a", "b", "c"}, {"a", "c"}, {"a", "c"}, {"a", "c"}},
			want:   [][]string{{"a", "b", "c"}, {"a", "c"}, {"a", "c"}, {"a", "c"}},
		},
		{
			// It crashed, and its new process has no configuration: it is back, alive but on
			// standby, so the others must not keep its IPs dark for the rest of the grace.
			name:          "a crashed speaker back on standby loses its place when it is back",
			hostUp:        true,
			withdrawnFrom: 2,
			steps:         [][]string{{"a", "b", "c"}, {"a", "c"}, {"a", "c"}, {"a", "c"}},
			want:          [][]string{{"a", "b", "c"}, {"a", "b", "c"}, {"a", "c"}, {"a", "c"}},
		},
	}
	offsets := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			step := 0
			l := NewLiveness("a", 3*time.Second,
				func(string) bool { return tc.hostUp },
				func(string) bool { return tc.left || (tc.withdrawnFrom > 0 && step >= tc.withdrawnFrom) },
				func() {}, quiet)
			for i, alive := range tc.steps {
				step = i
				got := aliveNames(l.Update(t0.Add(offsets[i]), alive))
				if !reflect.DeepEqual(got, tc.want[i]) {
					t.Fatalf("step %d (t+%v, memberlist says %v): alive %v, want %v", i, offsets[i], alive, got, tc.want[i])
				}
			}
		})
	}
}

func TestHostAnswers(t *testing.T) {
	// A listening port: a new speaker is already there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listening := netip.MustParseAddrPort(l.Addr().String())
	if !HostAnswers(listening, time.Second) {
		t.Errorf("a listening port does not count as a host that answers")
	}
	// A closed port on a live host: the kernel refuses, the host is up.
	l.Close()
	if !HostAnswers(listening, time.Second) {
		t.Errorf("a refused connection does not count as a host that answers")
	}
	// A peer behind a link that carries nothing (a veth whose other end nobody answers on: the
	// ARP request is never answered) times out like a cut link and must not count as answering.
	inNetns(t, func() {
		if HostAnswers(netip.MustParseAddrPort("10.77.0.2:7946"), 300*time.Millisecond) {
			t.Errorf("a peer behind a dead link counts as a host that answers")
		}
	})
}

// inNetns runs fn on a thread inside a new network namespace holding a veth pair with
// 10.77.0.1/24 on one end and nothing on the other, and removes the namespace afterwards.
func inNetns(t *testing.T, fn func()) {
	t.Helper()
	name := fmt.Sprintf("ironlb-live-%d", os.Getpid())
	for _, args := range [][]string{
		{"netns", "add", name},
		{"-n", name, "link", "add", "dead0", "type", "veth", "peer", "name", "dead1"},
		{"-n", name, "addr", "add", "10.77.0.1/24", "dev", "dead0"},
		{"-n", name, "link", "set", "dead0", "up"},
		{"-n", name, "link", "set", "dead1", "up"},
		{"-n", name, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
		if args[0] == "netns" {
			t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
		}
	}
	target, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// This thread is left in the namespace and never reused: the goroutine ends locked.
		runtime.LockOSThread()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns: %v", err)
			return
		}
		fn()
	}()
	<-done
}

func TestLivenessProbesFailedHostsConcurrently(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Each probe waits until all three have started: probed one after another, the first
	// would wait forever (here: until the 5 s safety timeout, and the test fails).
	started := make(chan string, 3)
	all := make(chan struct{})
	go func() {
		for range 3 {
			<-started
		}
		close(all)
	}()
	hostUp := func(node string) bool {
		started <- node
		select {
		case <-all:
			return true
		case <-time.After(5 * time.Second):
			return false
		}
	}
	l := NewLiveness("a", 3*time.Second, hostUp, func(string) bool { return false }, func() {}, quiet)
	t0 := time.Unix(1000, 0)
	l.Update(t0, []string{"a", "b", "c", "d"})
	got := aliveNames(l.Update(t0.Add(time.Second), []string{"a"}))
	if want := []string{"a", "b", "c", "d"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("alive %v, want %v: the probes did not run concurrently", got, want)
	}
}
