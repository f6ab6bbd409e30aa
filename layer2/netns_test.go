package layer2_test

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironlb/ironlb/layer2/netlab"
)

// These tests send real ARP and NDP packets between network namespaces: a
// bridge in a "switch" namespace, node namespaces each running an Announcer
// (in a helper process: this test binary re-executed inside the namespace),
// and a client namespace running arping, ndisc6, tcpdump and ip.

func TestMain(m *testing.M) {
	netlab.MaybeRunHelper() // exits when this process is a helper
	os.Exit(m.Run())
}

var (
	vip4      = netlab.Addr4(100)
	vip6      = netip.MustParseAddr("fd00:77::100")
	other4    = netlab.Addr4(101)
	unowned4  = netlab.Addr4(102)
	marker4   = netlab.Addr4(250)
	macRegexp = regexp.MustCompile(`(?i)\b([0-9a-f]{2}(?::[0-9a-f]{2}){5})\b`)
)

var (
	other6   = netip.MustParseAddr("fd00:77::101")
	unowned6 = netip.MustParseAddr("fd00:77::102")
)

// requireRoot fails the test when it cannot build namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test builds network namespaces and must run as root")
	}
}

// requireTool makes sure a command exists, installing its Debian package if
// needed.
func requireTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	t.Logf("%s missing: apt-get install -y %s", name, pkg)
	out, err := exec.Command("apt-get", "install", "-y", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("installing %s: %v\n%s", pkg, err, out)
	}
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s still missing after installing %s", name, pkg)
	}
}

func newLab(t *testing.T, nodes int) *netlab.Lab {
	t.Helper()
	requireRoot(t)
	requireTool(t, "ip", "iproute2")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lab, err := netlab.New(ctx, nodes)
	if err != nil {
		t.Fatalf("building lab: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("removing lab: %v", err)
		}
	})
	return lab
}

// startAnnouncers runs one announce helper per node. Cleanups run in
// reverse order, so the helpers end before the lab is removed.
func startAnnouncers(t *testing.T, lab *netlab.Lab) []*netlab.AnnouncerProc {
	t.Helper()
	procs := make([]*netlab.AnnouncerProc, len(lab.Nodes))
	for i, h := range lab.Nodes {
		p, err := netlab.StartAnnouncer(context.Background(), h, netlab.AnnouncerConfig{
			Interfaces: []string{h.If},
			Debug:      true,
		})
		if err != nil {
			t.Fatalf("starting announcer on %s: %v", h.Name, err)
		}
		procs[i] = p
		t.Cleanup(func() {
			p.Close()
			if t.Failed() {
				t.Logf("log of announcer on %s:\n%s", h.Name, p.Logs())
			}
		})
	}
	return procs
}

func setOwned(t *testing.T, p *netlab.AnnouncerProc, ips ...netip.Addr) {
	t.Helper()
	if err := p.SetOwned(ips...); err != nil {
		t.Fatalf("SetOwned(%v): %v", ips, err)
	}
}

// arping returns the MACs of every ARP reply the client got for ip.
func arping(t *testing.T, lab *netlab.Lab, ip netip.Addr, count int) []string {
	t.Helper()
	requireTool(t, "arping", "arping")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// arping exits non-zero without replies; the parsed output decides.
	out, _ := netlab.Exec(ctx, lab.Client.NS, "arping", "-c", itoa(count), "-W", "0.3", "-i", lab.Client.If, ip.String())
	var macs []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "bytes from") {
			continue
		}
		if m := macRegexp.FindString(line); m != "" {
			macs = append(macs, strings.ToLower(m))
		}
	}
	t.Logf("arping %s: %d replies %v", ip, len(macs), macs)
	return macs
}

// ndisc returns the target link-layer addresses of every NA the client got
// for ip.
func ndisc(t *testing.T, lab *netlab.Lab, ip netip.Addr) []string {
	t.Helper()
	requireTool(t, "ndisc6", "ndisc6")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := netlab.Exec(ctx, lab.Client.NS, "ndisc6", "-m", "-n", "-r", "3", "-w", "500", ip.String(), lab.Client.If)
	var macs []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "Target link-layer address") {
			continue
		}
		if m := macRegexp.FindString(line); m != "" {
			macs = append(macs, strings.ToLower(m))
		}
	}
	t.Logf("ndisc6 %s: %d answers %v", ip, len(macs), macs)
	return macs
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestOnlyOwnerAnswers(t *testing.T) {
	lab := newLab(t, 3)
	procs := startAnnouncers(t, lab)
	setOwned(t, procs[0], vip4, vip6)
	setOwned(t, procs[1], other4, other6)
	setOwned(t, procs[2])

	mac := func(i int) string { return lab.Nodes[i].MAC.String() }
	tests := []struct {
		name  string
		query func() []string
		want  string // "" = no answer at all
	}{
		{"ARP for node0's IP", func() []string { return arping(t, lab, vip4, 3) }, mac(0)},
		{"ARP for node1's IP", func() []string { return arping(t, lab, other4, 3) }, mac(1)},
		{"ARP for unowned IP", func() []string { return arping(t, lab, unowned4, 2) }, ""},
		{"NDP for node0's IP", func() []string { return ndisc(t, lab, vip6) }, mac(0)},
		{"NDP for node1's IP", func() []string { return ndisc(t, lab, other6) }, mac(1)},
		{"NDP for unowned IP", func() []string { return ndisc(t, lab, unowned6) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.query()
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("got answers %v for an IP nobody owns", got)
				}
				return
			}
			if len(got) == 0 {
				t.Fatalf("no answer, want one from %s", tc.want)
			}
			for _, m := range got {
				if m != tc.want {
					t.Errorf("answer from %s, want only %s", m, tc.want)
				}
			}
		})
	}

	t.Run("metrics count requests and responses", func(t *testing.T) {
		for _, name := range []string{"metallb_layer2_requests_received", "metallb_layer2_responses_sent"} {
			v, err := procs[0].Metric(name, vip4)
			if err != nil {
				t.Fatal(err)
			}
			if v < 1 {
				t.Errorf("%s{ip=%s} = %v on node0, want >= 1", name, vip4, v)
			}
		}
		v, err := procs[2].Metric("metallb_layer2_responses_sent", vip4)
		if err != nil {
			t.Fatal(err)
		}
		if v != 0 {
			t.Errorf("node2 sent %v responses for %s, which it does not own", v, vip4)
		}
	})
}

func TestTakeoverUpdatesClientNeighbor(t *testing.T) {
	lab := newLab(t, 3)
	procs := startAnnouncers(t, lab)
	ctx := context.Background()

	for _, ip := range []netip.Addr{vip4, vip6} {
		t.Run(ip.String(), func(t *testing.T) {
			setOwned(t, procs[0], ip)
			// The client knows node0 as the owner (as after a normal
			// resolution); nobody asks again during the move.
			if _, err := netlab.IP(ctx, lab.Client.NS, "neigh", "replace", ip.String(), "lladdr",
				lab.Nodes[0].MAC.String(), "dev", lab.Client.If, "nud", "stale"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_, _ = netlab.IP(ctx, lab.Client.NS, "neigh", "del", ip.String(), "dev", lab.Client.If)
				_ = procs[0].SetOwned()
				_ = procs[1].SetOwned()
			})

			setOwned(t, procs[0])
			start := time.Now()
			setOwned(t, procs[1], ip)
			want := lab.Nodes[1].MAC.String()
			deadline := start.Add(5 * time.Second)
			for {
				mac, state, err := lab.Client.Neighbor(ctx, ip)
				if err != nil {
					t.Fatal(err)
				}
				if mac.String() == want {
					t.Logf("client's entry for %s moved to node1 (%s, %s) %v after the takeover", ip, mac, state, time.Since(start))
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("client's entry for %s still %v (%s) 5s after node1 took over", ip, mac, state)
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
}

func TestStopSilencesOwner(t *testing.T) {
	requireTool(t, "tcpdump", "tcpdump")
	lab := newLab(t, 2)
	procs := startAnnouncers(t, lab)
	ctx := context.Background()

	// Capture everything ARP/ICMPv6 the client sees, in order.
	dump := exec.Command("ip", "netns", "exec", lab.Client.NS,
		"tcpdump", "-i", lab.Client.If, "-n", "-e", "-l", "-U", "arp or icmp6")
	stdout, err := dump.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := dump.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dump.Start(); err != nil {
		t.Fatalf("starting tcpdump: %v", err)
	}
	t.Cleanup(func() {
		_ = dump.Process.Kill()
		_ = dump.Wait()
	})
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(listening) })
			}
		}
	}()
	var (
		mu    sync.Mutex
		lines []string
	)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("tcpdump did not start listening within 10s")
	}

	// Take over (starts the 2 s gratuitous burst), then withdraw in the
	// middle of it.
	setOwned(t, procs[0], vip4, vip6)
	time.Sleep(150 * time.Millisecond)
	if err := procs[0].Stop(); err != nil {
		t.Fatal(err)
	}
	// The marker splits the capture into before and after Stop returned.
	_, _ = netlab.Exec(ctx, lab.Client.NS, "arping", "-c", "1", "-W", "0.1", "-i", lab.Client.If, marker4.String())
	time.Sleep(2500 * time.Millisecond)
	_ = dump.Process.Signal(os.Interrupt)
	select {
	case <-readDone:
	case <-time.After(5 * time.Second):
		t.Fatal("tcpdump did not stop")
	}

	mu.Lock()
	defer mu.Unlock()
	owner := lab.Nodes[0].MAC.String()
	isAnnouncement := func(l string) bool {
		return strings.HasPrefix(strings.ToLower(strings.Fields(l + " x x")[1]), owner) &&
			(strings.Contains(l, vip4.String()+" ") || strings.Contains(l, vip4.String()+",") || strings.Contains(l, vip6.String()))
	}
	marker := -1
	before := 0
	for i, l := range lines {
		if marker < 0 && strings.Contains(l, "who-has "+marker4.String()) {
			marker = i
			continue
		}
		if !isAnnouncement(l) {
			continue
		}
		if marker < 0 {
			before++
		} else {
			t.Errorf("announcement from the old owner after Stop returned: %s", l)
		}
	}
	if marker < 0 {
		t.Fatalf("marker ARP request not captured; capture:\n%s", strings.Join(lines, "\n"))
	}
	if before == 0 {
		t.Fatalf("no announcement from the owner before Stop either: the capture proves nothing:\n%s", strings.Join(lines, "\n"))
	}
	t.Logf("%d announcements from node0 before Stop, none in the 2.5 s after", before)

	// Node0 no longer answers either.
	if got := arping(t, lab, vip4, 2); len(got) != 0 {
		t.Errorf("ARP answers %v after Stop", got)
	}
	if got := ndisc(t, lab, vip6); len(got) != 0 {
		t.Errorf("NDP answers %v after Stop", got)
	}
	// Stop is final.
	setOwned(t, procs[0], vip4)
	if got := arping(t, lab, vip4, 2); len(got) != 0 {
		t.Errorf("ARP answers %v after SetOwned following Stop", got)
	}
}

func TestSplitBrainDetected(t *testing.T) {
	lab := newLab(t, 2)
	procs := startAnnouncers(t, lab)
	for _, ip := range []netip.Addr{vip4, vip6} {
		t.Run(ip.String(), func(t *testing.T) {
			setOwned(t, procs[0], ip)
			setOwned(t, procs[1], ip)
			t.Cleanup(func() {
				_ = procs[0].SetOwned()
				_ = procs[1].SetOwned()
			})
			for i, p := range procs {
				other := lab.Nodes[1-i].MAC
				deadline := time.After(5 * time.Second)
			wait:
				for {
					select {
					case d := <-p.Duplicates():
						if d.IP == ip && net.HardwareAddr.String(d.MAC) == other.String() {
							t.Logf("node%d: OnDuplicate(%s, %s, %s)", i, d.IP, d.MAC, d.Iface)
							break wait
						}
					case <-deadline:
						t.Fatalf("node%d: no OnDuplicate for %s from %s within 5s", i, ip, other)
					}
				}
				v, err := p.Metric("ironlb_layer2_duplicate_owner_total", ip)
				if err != nil {
					t.Fatal(err)
				}
				if v < 1 {
					t.Errorf("node%d: ironlb_layer2_duplicate_owner_total{ip=%s} = %v, want >= 1", i, ip, v)
				}
			}
		})
	}
}

func TestNoLeaks(t *testing.T) {
	lab := newLab(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, logs, err := netlab.RunLeakCheck(ctx, lab.Nodes[0], []netip.Addr{vip4, vip6, other4, other6})
	if err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	t.Logf("goroutines %d -> %d, open fds %d -> %d", r.GoroutinesBefore, r.GoroutinesAfter, r.FDsBefore, r.FDsAfter)
	if r.GoroutinesAfter > r.GoroutinesBefore {
		t.Errorf("goroutines grew from %d to %d after 4 Announcers ended", r.GoroutinesBefore, r.GoroutinesAfter)
	}
	if r.FDsAfter > r.FDsBefore {
		t.Errorf("open file descriptors grew from %d to %d after 4 Announcers ended", r.FDsBefore, r.FDsAfter)
	}
}

// A client whose entry is stale confirms it with unicast probes (ARP
// request to the owner's MAC, Neighbor Solicitation to the IP itself):
// these must be answered too, or the entry fails and traffic stalls until a
// new broadcast resolution.
func TestUnicastProbesAnswered(t *testing.T) {
	lab := newLab(t, 1)
	procs := startAnnouncers(t, lab)
	setOwned(t, procs[0], vip4, vip6)
	ctx := context.Background()
	for _, fam := range []string{"ipv4", "ipv6"} {
		if _, err := netlab.Exec(ctx, lab.Client.NS, "sysctl", "-qw",
			"net."+fam+".neigh."+lab.Client.If+".delay_first_probe_time=1"); err != nil {
			t.Fatal(err)
		}
	}
	for _, ip := range []netip.Addr{vip4, vip6} {
		t.Run(ip.String(), func(t *testing.T) {
			if _, err := netlab.IP(ctx, lab.Client.NS, "neigh", "replace", ip.String(), "lladdr",
				lab.Nodes[0].MAC.String(), "dev", lab.Client.If, "nud", "stale"); err != nil {
				t.Fatal(err)
			}
			// Traffic to the IP moves the entry to DELAY, then PROBE.
			pr, err := netlab.StartProbe(ctx, lab.Client, netip.AddrPortFrom(ip, 9).String(), 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pr.Close)
			start := time.Now()
			var states []string
			for time.Since(start) < 8*time.Second {
				_, state, err := lab.Client.Neighbor(ctx, ip)
				if err != nil {
					t.Fatal(err)
				}
				if len(states) == 0 || states[len(states)-1] != state {
					states = append(states, state)
				}
				if state == "FAILED" || state == "INCOMPLETE" {
					t.Fatalf("entry for %s went %s: the unicast probe was not answered (states %v)", ip, state, states)
				}
				if state == "REACHABLE" {
					t.Logf("entry confirmed by a unicast probe after %v (states %v)", time.Since(start).Round(time.Millisecond), states)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Fatalf("entry for %s never confirmed; states seen: %v", ip, states)
		})
	}
}

// With no interface list, interfaces that appear later are served after a
// rescan, and the owner answers on every interface it serves (as MetalLB
// does), so a client on a segment reached by two of them gets two answers.
func TestNewInterfaceServed(t *testing.T) {
	lab := newLab(t, 1)
	ctx := context.Background()
	node := lab.Nodes[0]
	p, err := netlab.StartAnnouncer(ctx, node, netlab.AnnouncerConfig{Rescan: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("announcer log:\n%s", p.Logs())
		}
	})
	setOwned(t, p, vip4)
	if got := arping(t, lab, vip4, 1); len(got) != 1 || got[0] != node.MAC.String() {
		t.Fatalf("before the new interface: answers %v, want one from %s", got, node.MAC)
	}

	mac2 := net.HardwareAddr{0x02, 0x77, 0, 0, 1, 11}
	for _, step := range []struct {
		ns   string
		args []string
	}{
		{lab.Switch, []string{"link", "add", "q0", "type", "veth", "peer", "name", "eth1", "netns", node.NS}},
		{lab.Switch, []string{"link", "set", "q0", "master", "br0", "up"}},
		{node.NS, []string{"link", "set", "eth1", "address", mac2.String()}},
		{node.NS, []string{"addr", "add", netlab.Addr4(111).String() + "/24", "dev", "eth1"}},
		{node.NS, []string{"link", "set", "eth1", "up"}},
	} {
		if _, err := netlab.IP(ctx, step.ns, step.args...); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := arping(t, lab, vip4, 1)
		if slices.Contains(got, mac2.String()) && slices.Contains(got, node.MAC.String()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("new interface eth1 (%s) not answering 10s after it appeared; last answers %v", mac2, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
