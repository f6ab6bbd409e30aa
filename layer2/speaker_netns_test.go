package layer2_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ironlb/ironlb/election"
	"github.com/ironlb/ironlb/layer2"
	"github.com/ironlb/ironlb/layer2/netlab"
)

// These tests run mini speakers (membership, liveness, election and an
// Announcer, combined as the speaker combines them) with real memberlist
// in the lab's namespaces.

const speakerSecret = "layer2-netns-test-secret"

func speakerNodes(lab *netlab.Lab) []netlab.NodeAddr {
	var out []netlab.NodeAddr
	for _, h := range lab.Nodes {
		out = append(out, netlab.NodeAddr{Name: h.Name, IP: h.IPv4})
	}
	return out
}

func startSpeaker(t *testing.T, h *netlab.Host, cfg netlab.SpeakerConfig) *netlab.SpeakerProc {
	t.Helper()
	cfg.Interfaces = []string{h.If}
	if cfg.Secret == "" {
		cfg.Secret = speakerSecret
	}
	p, err := netlab.StartSpeaker(context.Background(), h, cfg)
	if err != nil {
		t.Fatalf("starting speaker on %s: %v", h.Name, err)
	}
	t.Cleanup(func() {
		_ = p.Terminate(5 * time.Second)
		if t.Failed() {
			t.Logf("log of speaker on %s:\n%s", h.Name, p.Logs())
		}
	})
	return p
}

// answeredOnlyBy reports whether arping for ip gets answers, all from mac.
func answeredOnlyBy(t *testing.T, lab *netlab.Lab, ip netip.Addr, mac string) bool {
	t.Helper()
	got := arping(t, lab, ip, 2)
	if len(got) == 0 {
		return false
	}
	for _, m := range got {
		if m != mac {
			return false
		}
	}
	return true
}

// pickIPs returns n addresses from 192.168.77.100 on, at least min of which
// the election gives to node among all.
func pickIPs(t *testing.T, n, min int, node string, all []string) []netip.Addr {
	t.Helper()
	var ips []netip.Addr
	won := 0
	for last := 100; last < 250 && len(ips) < n; last++ {
		ip := netlab.Addr4(last)
		mine := election.Owner(ip, all) == node
		if !mine && len(ips)-won >= n-min {
			continue
		}
		if mine {
			won++
		}
		ips = append(ips, ip)
	}
	if won < min || len(ips) != n {
		t.Fatalf("could not pick %d IPs with %d owned by %s", n, min, node)
	}
	return ips
}

func waitState(t *testing.T, p *netlab.SpeakerProc, budget time.Duration, what string, ok func(netlab.SpeakerState) bool) {
	t.Helper()
	deadline := time.Now().Add(budget)
	for !ok(p.Latest()) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s (latest state %+v)", budget, what, p.Latest())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A speaker without a valid configuration is alive but on standby: the IPs
// it would win stay with the others and keep answering; once configured it
// takes its share.
func TestSpeakerWithoutConfigIsSkipped(t *testing.T) {
	lab := newLab(t, 3)
	names := []string{lab.Nodes[0].Name, lab.Nodes[1].Name, lab.Nodes[2].Name}
	ips := pickIPs(t, 6, 2, names[2], names)
	nodes := speakerNodes(lab)
	sp := []*netlab.SpeakerProc{
		startSpeaker(t, lab.Nodes[0], netlab.SpeakerConfig{Nodes: nodes, IPs: ips}),
		startSpeaker(t, lab.Nodes[1], netlab.SpeakerConfig{Nodes: nodes, IPs: ips}),
	}
	idle := startSpeaker(t, lab.Nodes[2], netlab.SpeakerConfig{Nodes: nodes, IPs: ips, Standby: true})
	// The idle speaker sees the two others as candidates: it has joined.
	waitState(t, idle, 20*time.Second, "the idle speaker joins", func(st netlab.SpeakerState) bool {
		return slices.Contains(st.Alive, names[0]) && slices.Contains(st.Alive, names[1])
	})
	for _, p := range sp {
		waitState(t, p, 20*time.Second, "two candidates", func(st netlab.SpeakerState) bool {
			return slices.Equal(st.Alive, names[:2])
		})
	}
	// Let any late decision happen, then every IP must answer, never from the idle node.
	time.Sleep(time.Second)
	if owned := idle.Latest().Owned; len(owned) != 0 {
		t.Fatalf("the speaker on standby owns %v", owned)
	}
	for _, ip := range ips {
		want := lab.Nodes[slices.Index(names, election.Owner(ip, names[:2]))].MAC.String()
		if !answeredOnlyBy(t, lab, ip, want) {
			t.Errorf("%s: not answered by %s alone while node2 is on standby", ip, want)
		}
	}

	if err := idle.Configure(); err != nil {
		t.Fatal(err)
	}
	for _, p := range append(slices.Clone(sp), idle) {
		waitState(t, p, 20*time.Second, "three candidates", func(st netlab.SpeakerState) bool {
			return slices.Equal(st.Alive, names)
		})
	}
	time.Sleep(time.Second)
	var idleShare []netip.Addr
	for _, ip := range ips {
		owner := election.Owner(ip, names)
		if owner == names[2] {
			idleShare = append(idleShare, ip)
		}
		want := lab.Nodes[slices.Index(names, owner)].MAC.String()
		if !answeredOnlyBy(t, lab, ip, want) {
			t.Errorf("%s: not answered by %s (%s) alone once node2 is configured", ip, owner, want)
		}
	}
	if got := idle.Latest().Owned; !slices.Equal(got, idleShare) {
		t.Errorf("configured speaker owns %v, want %v", got, idleShare)
	}
}

// iptables runs iptables in ns.
func iptables(t *testing.T, ns string, args ...string) {
	t.Helper()
	requireTool(t, "iptables", "iptables")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := netlab.Exec(ctx, ns, "iptables", args...); err != nil {
		t.Fatalf("iptables %v in %s: %v\n%s", args, ns, err, out)
	}
}

// blockMemberlist drops memberlist traffic (UDP and TCP 7946) between the
// host of ns and peer, both ways; the data path stays open.
func blockMemberlist(t *testing.T, ns string, peer netip.Addr, add bool) {
	t.Helper()
	op := "-A"
	if !add {
		op = "-D"
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, rule := range [][]string{
			{"INPUT", "-s", peer.String(), "-p", proto, "--dport", "7946"},
			{"INPUT", "-s", peer.String(), "-p", proto, "--sport", "7946"},
			{"OUTPUT", "-d", peer.String(), "-p", proto, "--dport", "7946"},
			{"OUTPUT", "-d", peer.String(), "-p", proto, "--sport", "7946"},
		} {
			iptables(t, ns, append(append([]string{op}, rule...), "-j", "DROP")...)
		}
	}
}

// Memberlist blocked between two speakers (the data path fine): both take
// every IP, see each other's announcements, and within 3s exactly one MAC
// answers for each; when the block ends the election owner answers.
func TestSplitBrainEndsByItself(t *testing.T) {
	lab := newLab(t, 2)
	names := []string{lab.Nodes[0].Name, lab.Nodes[1].Name}
	ips := []netip.Addr{netlab.Addr4(100), netlab.Addr4(101), netlab.Addr4(102), netlab.Addr4(103)}
	nodes := speakerNodes(lab)
	sp := []*netlab.SpeakerProc{
		startSpeaker(t, lab.Nodes[0], netlab.SpeakerConfig{Nodes: nodes, IPs: ips, Rejoin: time.Second}),
		startSpeaker(t, lab.Nodes[1], netlab.SpeakerConfig{Nodes: nodes, IPs: ips, Rejoin: time.Second}),
	}
	for _, p := range sp {
		waitState(t, p, 20*time.Second, "both candidates", func(st netlab.SpeakerState) bool { return slices.Equal(st.Alive, names) })
	}
	macOf := func(i int) string { return lab.Nodes[i].MAC.String() }

	t0 := time.Now()
	blockMemberlist(t, lab.Nodes[0].NS, lab.Nodes[1].IPv4, true)
	unblocked := false
	t.Cleanup(func() {
		if !unblocked {
			blockMemberlist(t, lab.Nodes[0].NS, lab.Nodes[1].IPv4, false)
		}
	})
	// Split: each alone, each owns every IP.
	for _, p := range sp {
		waitState(t, p, 10*time.Second, "the split (owning every IP)", func(st netlab.SpeakerState) bool { return len(st.Owned) == len(ips) })
	}
	tSplit := time.Since(t0)
	time.Sleep(time.Until(t0.Add(3 * time.Second)))
	for _, ip := range ips {
		got := arping(t, lab, ip, 3)
		if len(got) == 0 {
			t.Errorf("%s: no answer during the split", ip)
			continue
		}
		for _, m := range got[1:] {
			if m != got[0] {
				t.Errorf("%s: answers from %v 3s after memberlist was blocked (split seen after %s): want one MAC", ip, got, tSplit)
				break
			}
		}
	}
	for i, p := range sp {
		if st := p.Latest(); len(st.Owned) != len(ips) {
			t.Fatalf("%s no longer owns every IP (%v): the split ended by itself, the test shows nothing", names[i], st.Owned)
		}
	}
	t.Logf("split seen after %s; one MAC per IP by %s", tSplit, 3*time.Second)

	// The block ends: one election again, its owner answers.
	blockMemberlist(t, lab.Nodes[0].NS, lab.Nodes[1].IPv4, false)
	unblocked = true
	for _, p := range sp {
		waitState(t, p, 20*time.Second, "both candidates again", func(st netlab.SpeakerState) bool { return slices.Equal(st.Alive, names) })
	}
	time.Sleep(time.Second)
	for _, ip := range ips {
		owner := slices.Index(names, election.Owner(ip, names))
		if !answeredOnlyBy(t, lab, ip, macOf(owner)) {
			t.Errorf("%s: not answered by the election's owner %s alone after the block ended", ip, names[owner])
		}
	}
}

// The Secret rotated on half the nodes: the two halves never join, both
// announce everything, and the announcers settle on one MAC per IP.
func TestSplitBrainFromMismatchedSecrets(t *testing.T) {
	lab := newLab(t, 2)
	ips := []netip.Addr{netlab.Addr4(100), netlab.Addr4(101), netlab.Addr4(102), netlab.Addr4(103)}
	nodes := speakerNodes(lab)
	sp := []*netlab.SpeakerProc{
		startSpeaker(t, lab.Nodes[0], netlab.SpeakerConfig{Nodes: nodes, IPs: ips, Secret: "the old secret of the lab"}),
		startSpeaker(t, lab.Nodes[1], netlab.SpeakerConfig{Nodes: nodes, IPs: ips, Secret: "the new secret of the lab"}),
	}
	for _, p := range sp {
		waitState(t, p, 20*time.Second, "owning every IP, alone", func(st netlab.SpeakerState) bool { return len(st.Owned) == len(ips) })
	}
	time.Sleep(3 * time.Second)
	for _, ip := range ips {
		got := arping(t, lab, ip, 3)
		if len(got) == 0 {
			t.Errorf("%s: no answer", ip)
			continue
		}
		want := lab.Nodes[1].MAC.String()
		if layer2.ConflictWinner(ip, lab.Nodes[0].MAC, lab.Nodes[1].MAC) {
			want = lab.Nodes[0].MAC.String()
		}
		for _, m := range got {
			if m != want {
				t.Errorf("%s: answers %v, want only the tie-break winner %s", ip, got, want)
				break
			}
		}
	}
	for i, p := range sp {
		if st := p.Latest(); len(st.Alive) != 1 || len(st.Owned) != len(ips) {
			t.Fatalf("node%d: alive %v owned %v: want alone and owning every IP (the halves must not have joined)", i, st.Alive, st.Owned)
		}
	}
}
