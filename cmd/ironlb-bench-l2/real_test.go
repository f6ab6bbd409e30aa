package main

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/layer2/netlab"
)

func TestMain(m *testing.M) {
	netlab.MaybeRunHelper() // the lab's helpers re-execute this test binary
	os.Exit(m.Run())
}

// testConfig is a small real-membership run; timings are the defaults, only
// the waits that do not change what is checked are shortened.
func testConfig() config {
	return config{
		iterations: 2,
		nodes:      3,
		interval:   10 * time.Millisecond,
		timeout:    15 * time.Second,
		output:     "text",
		restart:    time.Second,
		observe:    2 * time.Second,
		moveBack:   500 * time.Millisecond,
		hold:       500 * time.Millisecond,
	}
}

// newTestBench builds the lab with three mini speakers; everything it starts
// is stopped and every namespace deleted when the test ends, pass or fail.
func newTestBench(t *testing.T) *realBench {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: it builds network namespaces (run the tests as root)")
	}
	b := &realBench{cfg: testConfig(), log: io.Discard}
	if testing.Verbose() {
		b.cfg.verbose, b.log = true, os.Stderr
	}
	t.Cleanup(func() {
		id := ""
		if b.lab != nil {
			id = b.lab.ID
		}
		b.close()
		if id == "" {
			return
		}
		out, err := exec.Command("ip", "netns", "list").CombinedOutput()
		if err != nil {
			t.Errorf("ip netns list: %v: %s", err, out)
		} else if strings.Contains(string(out), id) {
			t.Errorf("namespaces of lab %s left behind:\n%s", id, out)
		}
	})
	// Not a shorter-lived context: the helpers are killed when the context
	// they were started with ends.
	if err := b.setup(t.Context()); err != nil {
		t.Fatalf("setting up the lab: %v", err)
	}
	return b
}

// TestRealMembership checks what the scenarios must get right, not how fast:
// after a cut another node answers; a speaker killed and restarted within the
// restart grace never moves the client; a planned handover moves it exactly
// once.
func TestRealMembership(t *testing.T) {
	b := newTestBench(t)
	tests := []struct {
		mode  string
		check func(t *testing.T, s realSample)
	}{
		{"cut", func(t *testing.T, s realSample) {
			if s.Failed != "" || s.To == "" || s.To == s.From {
				t.Errorf("after cutting %s's link the client was answered by %q (failed: %q), want another node", s.From, s.To, s.Failed)
			}
			if s.Heal == 0 {
				t.Errorf("membership did not heal after %s's link came back", s.From)
			}
		}},
		{"kill", func(t *testing.T, s realSample) {
			if s.Moves != 0 || s.NeighMoves != 0 || s.SurvivorOwned {
				t.Errorf("killing and restarting %s's speaker within the grace: %d answer moves (first to %q), %d neighbour MAC changes, survivor announced: %v; want none",
					s.From, s.Moves, s.To, s.NeighMoves, s.SurvivorOwned)
			}
		}},
		{"term", func(t *testing.T, s realSample) {
			if s.Failed != "" || s.Moves != 1 || s.NeighMoves != 1 {
				t.Errorf("SIGTERM to %s's speaker: %d answer moves, %d neighbour MAC changes (failed: %q); want exactly one of each",
					s.From, s.Moves, s.NeighMoves, s.Failed)
			}
		}},
	}
	// Speakers restarted during a round must outlive the subtest: they run
	// under the parent test's context.
	ctx := t.Context()
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			sum, err := b.measure(ctx, tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			if len(sum.Samples) != b.cfg.iterations {
				t.Fatalf("%d rounds measured, want %d", len(sum.Samples), b.cfg.iterations)
			}
			for i, s := range sum.Samples {
				t.Logf("round %d: %+v", i, s)
				tc.check(t, s)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := testConfig()
	ok.modes = []string{"cut", "kill", "term"}
	tests := []struct {
		name    string
		edit    func(c *config)
		wantErr string
	}{
		{"real, all modes", func(*config) {}, ""},
		{"sim has no term", func(c *config) { c.sim = true }, `-mode "term"`},
		{"sim cut and kill", func(c *config) { c.sim, c.modes = true, []string{"cut", "kill"} }, ""},
		{"unknown mode", func(c *config) { c.modes = []string{"cut", "reboot"} }, `-mode "reboot"`},
		{"bad output", func(c *config) { c.output = "yaml" }, `-o "yaml"`},
		{"negative hold", func(c *config) { c.hold = -time.Second }, "-hold"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
