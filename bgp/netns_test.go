package bgp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func nsRun(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

func uniqueSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d%s", os.Getpid()%100000, hex.EncodeToString(b))
}

// addNetns creates a network namespace with lo up, deleted in t.Cleanup.
func addNetns(t testing.TB, name string) string {
	t.Helper()
	run(t, "ip", "netns", "add", name)
	// Registered first, so it runs after the cleanups that stop the
	// processes started in the namespace.
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	nsRun(t, name, "ip", "link", "set", "lo", "up")
	nsRun(t, name, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return name
}

// veth creates a veth pair between two namespaces.
func veth(t testing.TB, nsA, ifA, nsB, ifB string) {
	t.Helper()
	tmp := "v" + uniqueSuffix(t)
	if len(tmp) > 15 {
		tmp = tmp[:15]
	}
	run(t, "ip", "link", "add", tmp+"a", "netns", nsA, "type", "veth", "peer", "name", tmp+"b", "netns", nsB)
	nsRun(t, nsA, "ip", "link", "set", tmp+"a", "name", ifA)
	nsRun(t, nsB, "ip", "link", "set", tmp+"b", "name", ifB)
	nsRun(t, nsA, "ip", "link", "set", ifA, "up")
	nsRun(t, nsB, "ip", "link", "set", ifB, "up")
}

// frr is one FRR instance (zebra + bgpd) in a namespace.
type frr struct {
	ns, dir string
}

// startFRR runs zebra and bgpd in ns with conf as frr.conf. FRR checks that
// its run-as user belongs to the vty group (frrvty), which root is not on
// Debian, so the daemons run as the frr user (as the packaged service does)
// in a directory it owns. Each instance has its own pid files, zserv socket
// and vty socket directory, so several can run side by side; vtysh finds
// them with --vty_socket.
func startFRR(t testing.TB, ns, conf string) *frr {
	t.Helper()
	if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
		run(t, "apt-get", "install", "-y", "frr")
	}
	dir := t.TempDir()
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is 0700 root; FRR must reach its own directory.
	run(t, "chmod", "755", filepath.Dir(dir), dir)
	run(t, "chown", u.Uid+":"+u.Gid, dir)
	cfg := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &frr{ns: ns, dir: dir}
	for _, d := range []string{"zebra", "bgpd"} {
		logf, err := os.Create(filepath.Join(dir, d+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", "netns", "exec", ns, "/usr/lib/frr/"+d,
			"-u", "frr", "-g", "frr",
			"-f", cfg,
			"-i", filepath.Join(dir, d+".pid"),
			"-z", filepath.Join(dir, "zserv.api"),
			"--vty_socket", dir,
			"-P", "0", // no TCP vty
			"--log", "file:"+filepath.Join(dir, d+".frrlog"),
		)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", d, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(dir, d+".frrlog"))
				t.Logf("%s log (tail):\n%s", d, tail(string(b), 40))
			}
		})
		sock := filepath.Join(dir, d+".vty")
		waitFor(t, 20*time.Second, d+" vty socket", func() error {
			_, err := os.Stat(sock)
			return err
		})
	}
	return f
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (f *frr) vtysh(t testing.TB, cmd string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "vtysh", "--vty_socket", f.dir, "-c", cmd).Output()
	if err != nil {
		t.Fatalf("vtysh -c %q: %v\n%s", cmd, err, out)
	}
	return out
}

func (f *frr) vtyshJSON(t testing.TB, cmd string, v any) {
	t.Helper()
	out := f.vtysh(t, cmd)
	if err := json.Unmarshal(bytes.TrimSpace(out), v); err != nil {
		t.Fatalf("vtysh -c %q: decoding %q: %v", cmd, out, err)
	}
}

// frrNeighbor is part of 'show bgp neighbors json'.
type frrNeighbor struct {
	State                  string `json:"bgpState"`
	ConnectionsEstablished int    `json:"connectionsEstablished"`
	ConnectionsDropped     int    `json:"connectionsDropped"`
	UptimeEstablishedEpoch int64  `json:"bgpTimerUpEstablishedEpoch"`
	LastResetDueTo         string `json:"lastResetDueTo"`
}

func (f *frr) neighbors(t testing.TB) map[string]frrNeighbor {
	t.Helper()
	var m map[string]frrNeighbor
	f.vtyshJSON(t, "show bgp neighbors json", &m)
	return m
}

// frrPath is one path of 'show bgp <afi> unicast <prefix> json'.
type frrPath struct {
	Valid    bool `json:"valid"`
	Bestpath struct {
		Overall bool `json:"overall"`
	} `json:"bestpath"`
	Multipath bool   `json:"multipath"`
	LocalPref uint32 `json:"locPrf"`
	Community struct {
		String string `json:"string"`
	} `json:"community"`
	Nexthops []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
	Peer struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
}

type frrRoute struct {
	Prefix string    `json:"prefix"`
	Paths  []frrPath `json:"paths"`
}

func afi(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// route returns FRR's paths for p (none when FRR does not have it).
func (f *frr) route(t testing.TB, p netip.Prefix) []frrPath {
	t.Helper()
	var r frrRoute
	f.vtyshJSON(t, fmt.Sprintf("show bgp %s unicast %s json", afi(p), p), &r)
	if r.Prefix != p.String() {
		return nil // FRR answers {} or a covering prefix when it has no exact match
	}
	return r.Paths
}

// nextHops returns the sorted next hops of FRR's valid paths for p.
func (f *frr) nextHops(t testing.TB, p netip.Prefix) []string {
	t.Helper()
	var nh []string
	for _, path := range f.route(t, p) {
		if path.Valid && len(path.Nexthops) > 0 {
			nh = append(nh, path.Nexthops[0].IP)
		}
	}
	slices.Sort(nh)
	return nh
}

// waitFor polls cond until it returns nil or the timeout passes. Timeouts
// are generous: they only decide when to give up on a broken setup.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
