package membership

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// waitViews waits until every member of ms reports want as its candidates.
func waitCandidates(t *testing.T, timeout time.Duration, ms []*member, want []string) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("candidates %v everywhere", want), func() bool {
		for _, m := range ms {
			if !slices.Equal(m.m.Candidates(), want) {
				return false
			}
		}
		return true
	})
}

func TestStandbyIsAliveButNotCandidate(t *testing.T) {
	c := newCluster(t, "s3cret-of-the-tests")
	ms := c.startN(2)
	idle := c.startWith("node-2", 2, -1, func(o *Options) { o.Standby = true })
	all := append(slices.Clone(ms), idle)
	waitConverged(t, 20*time.Second, all)
	waitCandidates(t, 10*time.Second, all, []string{"node-0", "node-1"})
	for _, m := range ms {
		if !m.m.Withdrawn("node-2") {
			t.Errorf("%s: Withdrawn(node-2) = false for a member on standby", m.name)
		}
		if m.m.Withdrawn("node-1") {
			t.Errorf("%s: Withdrawn(node-1) = true for a candidate", m.name)
		}
	}

	// The configuration arrives: it becomes a candidate everywhere.
	if err := idle.m.SetStandby(false, 5*time.Second); err != nil {
		t.Fatalf("SetStandby(false): %v", err)
	}
	waitCandidates(t, 10*time.Second, all, []string{"node-0", "node-1", "node-2"})
	if err := idle.m.SetStandby(false, time.Second); err != nil {
		t.Fatalf("SetStandby(false) again: %v", err)
	}
}

// A speaker restarted at once, before anyone noticed (so with the same
// incarnation), but now without a configuration: the others must learn
// its new standby metadata all the same.
func TestRestartedOnStandbyIsNotCandidate(t *testing.T) {
	c := newCluster(t, "s3cret-of-the-tests")
	ms := c.startN(3)
	waitConverged(t, 20*time.Second, ms)
	victim, others := ms[2], ms[:2]
	addr := victim.addr()
	victim.crash(t)
	back := c.startWith(victim.name, 2, int(addr.Port()), func(o *Options) { o.Standby = true })
	all := append(slices.Clone(others), back)
	waitConverged(t, 20*time.Second, all)
	waitCandidates(t, 10*time.Second, all, []string{"node-0", "node-1"})
}

func TestKeyRotationWithoutSplit(t *testing.T) {
	oldKey, newKey := []byte("the old secret value"), []byte("the new secret value")
	type keys struct{ primary, extra []byte }
	phase := map[int]keys{
		0: {oldKey, nil},    // before
		1: {oldKey, newKey}, // Secret gains the new key as extra
		2: {newKey, oldKey}, // new key primary, old one still accepted
		3: {newKey, nil},    // old key removed
	}
	tests := []struct {
		name     string
		phases   []int
		converge bool
	}{
		{"phase 0 and 1 mixed", []int{0, 1, 1}, true},
		{"phase 1 and 2 mixed", []int{1, 2, 2}, true},
		{"phase 2 and 3 mixed", []int{2, 3, 3}, true},
		{"skipping phase 1 splits", []int{0, 2}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, "unused-cluster-secret")
			var ms []*member
			for i, p := range tc.phases {
				k := phase[p]
				ms = append(ms, c.startWith(fmt.Sprintf("node-%d", i), i, -1, func(o *Options) {
					o.SecretKey = k.primary
					if k.extra != nil {
						o.ExtraSecretKeys = [][]byte{k.extra}
					}
				}))
			}
			if tc.converge {
				waitConverged(t, 20*time.Second, ms)
				return
			}
			time.Sleep(5 * c.rejoin)
			for _, m := range ms {
				if got := m.m.Alive(); len(got) != 1 {
					t.Fatalf("%s sees %v: members with no key in common must not join", m.name, got)
				}
			}
		})
	}
}

// A memberlist without ironlb's label (MetalLB's speaker, say) on the same
// key is refused.
func TestUnlabelledPeerNotAdmitted(t *testing.T) {
	c := newCluster(t, "s3cret-of-the-tests")
	ms := c.startN(1)
	conf := memberlist.DefaultLANConfig()
	conf.Name = "unlabelled"
	conf.BindAddr = loopback(c.ipBase, 5).String()
	conf.BindPort = 0
	conf.SecretKey = KeyFromSecret(c.secret)
	conf.LogOutput = &testLog{t}
	ml, err := memberlist.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	if n, err := ml.Join([]string{ms[0].addr().String()}); err == nil {
		t.Fatalf("unlabelled memberlist joined %d members", n)
	}
	time.Sleep(3 * c.rejoin)
	if got := ms[0].m.Alive(); !slices.Equal(got, []string{"node-0"}) {
		t.Fatalf("member sees %v, want only itself", got)
	}
}

type testLog struct{ t *testing.T }

func (l *testLog) Write(p []byte) (int, error) { l.t.Logf("unlabelled: %s", p); return len(p), nil }
