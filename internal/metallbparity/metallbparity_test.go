package metallbparity

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ironlb/ironlb/internal/apitest"
	"github.com/ironlb/ironlb/internal/metricstest"
	"github.com/ironlb/ironlb/internal/parityrows"
)

const (
	namespace     = "metallb-system"
	configMap     = "config"
	verdictWithin = time.Minute
	// The speaker starts on a configuration it must accept, so that every row is a change from
	// a loaded configuration, as in a running cluster.
	baseline = "address-pools:\n- {name: baseline, protocol: layer2, addresses: [172.18.255.200-172.18.255.250]}\n"
)

// nativeModeRefusals are the rows the speaker refuses only because its native BGP mode lacks the
// feature (DiscardFRROnly): the controller, which validates nothing beyond parsing, accepts them.
var nativeModeRefusals = map[string]bool{
	"keepalive-time (native speaker refuses it; GoBGP honours it)":              true,
	"bfd-profile on a peer (no BFD in the native speaker nor in GoBGP)":         true,
	"bfd-profiles section alone (native speaker refuses it; ironlb ignores it)": true,
	"ipv6 bgp pool (native speaker refuses it; ironlb announces it)":            true,
}

// TestRealMetalLB applies every row of internal/parityrows as MetalLB's ConfigMap, one after
// another, to one running MetalLB v0.12.1 speaker and controller, and checks that the speaker
// accepts exactly the rows whose MetalLB column says it does, and the controller the same rows
// plus nativeModeRefusals.
func TestRealMetalLB(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root for a network namespace: run the tests as root (CI does)")
	}
	bin := metallbBinaries(t)
	srv := apitest.Start(t)
	cs := srv.Client(t, "ironlb-parity")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(namespace).Create(ctx, configMapFor(-1, baseline), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	rows := parityrows.Rows()
	seen := map[string]string{baseline: "baseline"}
	rules := map[string]bool{}
	for _, row := range rows {
		// An unchanged config key is still an update (the row annotation changes), which
		// MetalLB parses again; distinct rows only make a mixed-up verdict visible.
		if prev, dup := seen[row.In]; dup {
			t.Fatalf("rows %q and %q have the same configuration", prev, row.Rule)
		}
		seen[row.In] = row.Rule
		rules[row.Rule] = true
	}
	for rule := range nativeModeRefusals {
		if !rules[rule] {
			t.Fatalf("nativeModeRefusals names %q, which is not a row of internal/parityrows", rule)
		}
	}

	ns := newNetns(t)
	apiAddr := proxyInto(t, ns, strings.TrimPrefix(srv.Config.Host, "https://"))
	kubeconfig := writeKubeconfig(t, "https://"+apiAddr, srv.Config.BearerToken)
	common := []string{"--kubeconfig", kubeconfig, "--namespace", namespace, "--config", configMap}
	// No memberlist: no --ml-bindaddr, --ml-labels (speaker) nor --ml-secret-name (controller).
	sp := startMetalLB(t, ns, "speaker", 7472, filepath.Join(bin, "speaker"), slices.Concat(common,
		[]string{"--node-name", "parity-node", "--host", "127.0.0.1", "--port", "7472"})...)
	ctl := startMetalLB(t, ns, "controller", 7473, filepath.Join(bin, "controller"), slices.Concat(common,
		[]string{"--port", "7473"})...)
	for _, m := range []*metallb{sp, ctl} {
		if v := m.verdict(t, 0); !v.accepted {
			t.Fatalf("the %s refuses the baseline configuration: %s", m.name, v.err)
		}
		m.checkStaleMetric(t, false)
	}

	for i, row := range rows {
		t.Run(row.Rule, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			nsp, nctl := sp.verdicts(), ctl.verdicts()
			cm, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, configMap, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := configMapFor(i, row.In)
			cm.Data, cm.Annotations = want.Data, want.Annotations
			if _, err := cs.CoreV1().ConfigMaps(namespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				m    *metallb
				n    int
				want bool
			}{
				{sp, nsp, row.MetalLB},
				{ctl, nctl, row.MetalLB || nativeModeRefusals[row.Rule]},
			} {
				v := c.m.verdict(t, c.n)
				t.Logf("MetalLB v0.12.1's %s accepts: %v%s", c.m.name, v.accepted, v.reason())
				if v.accepted != c.want {
					t.Errorf("MetalLB v0.12.1's %s accepts: %v%s; want %v (table: %v)\nconfig:\n%s",
						c.m.name, v.accepted, v.reason(), c.want, row.MetalLB, row.In)
				}
				c.m.checkStaleMetric(t, !v.accepted)
			}
		})
	}
}

// configMapFor is MetalLB's ConfigMap for row (or -1 for the baseline); the annotation makes
// every row a new version of the object, so MetalLB reparses even an unchanged config key.
func configMapFor(row int, config string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:        configMap,
			Namespace:   namespace,
			Annotations: map[string]string{"ironlb.test/parity-row": fmt.Sprint(row)},
		},
		Data: map[string]string{"config": config},
	}
}

// metallbBinaries returns the directory of MetalLB's speaker and controller, which
// hack/build-metallb.sh builds once per version and caches (cold: a few minutes); the last line
// of its output is the directory.
func metallbBinaries(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "hack", "build-metallb.sh"), "--no-images")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/build-metallb.sh --no-images: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	for _, c := range []string{"speaker", "controller"} {
		if _, err := os.Stat(filepath.Join(dir, c)); err != nil {
			t.Fatalf("hack/build-metallb.sh --no-images printed %q: %v", out, err)
		}
	}
	return dir
}

// newNetns creates a network namespace with only its loopback interface up.
func newNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("ilbpar-%d", os.Getpid())
	for _, args := range [][]string{
		{"netns", "add", name},
		{"-n", name, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s (is iproute2 installed? hack/install-deps.sh)", strings.Join(args, " "), err, out)
		}
		if args[0] == "netns" {
			t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
		}
	}
	return name
}

// inNetns runs fn on an OS thread that has entered the namespace ns; sockets fn opens stay in ns
// whichever thread uses them later. The thread goes back to the host's namespace before it is
// released: a thread that ended instead would deliver the parent-death signal to the processes
// it happened to start (apitest's etcd and kube-apiserver, the speaker).
func inNetns(ns string, fn func() error) error {
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		host, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer host.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); err != nil {
			// Still in ns: the goroutine ends locked, so the runtime discards the thread.
			errc <- fmt.Errorf("setns back to the host namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// proxyInto listens on loopback inside ns and forwards every connection to target on the host's
// loopback, so a process in ns reaches the test's API server and nothing else. It returns the
// address inside ns.
func proxyInto(t *testing.T, ns, target string) string {
	t.Helper()
	var l net.Listener
	if err := inNetns(ns, func() (err error) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer in.Close()
				out, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer out.Close()
				// Either side ending ends both: HTTP needs no half-closed connection, and the
				// cleanup's Wait then cannot outlast the processes.
				done := make(chan struct{})
				go func() { _, _ = io.Copy(out, in); in.Close(); out.Close(); close(done) }()
				_, _ = io.Copy(in, out)
				in.Close()
				out.Close()
				<-done
			})
		}
	})
	return l.Addr().String()
}

// writeKubeconfig writes the file MetalLB's --kubeconfig reads.
func writeKubeconfig(t *testing.T, server, token string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["parity"] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: true}
	cfg.AuthInfos["parity"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["parity"] = &clientcmdapi.Context{Cluster: "parity", AuthInfo: "parity"}
	cfg.CurrentContext = "parity"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// metallb is a running MetalLB process (speaker or controller) and the verdicts it has logged
// on its ConfigMap.
type metallb struct {
	name   string
	ns     string
	port   int // of /metrics, inside ns
	mu     sync.Mutex
	cond   *sync.Cond
	log    []string
	events []verdict
	exited error // set once the process has ended
	done   bool
}

type verdict struct {
	accepted bool
	err      string // MetalLB's reason for refusing
}

func (v verdict) reason() string {
	if v.accepted {
		return ""
	}
	return " (" + v.err + ")"
}

// startMetalLB runs MetalLB's component bin in the namespace ns until the test ends.
func startMetalLB(t *testing.T, ns, name string, port int, bin string, args ...string) *metallb {
	t.Helper()
	// ip netns exec replaces itself with bin, which keeps the parent-death signal.
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	// No METALLB_* variables: the speaker's native BGP mode (METALLB_BGP_TYPE unset, as in
	// MetalLB's manifests) and no memberlist.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	m := &metallb{name: name, ns: ns, port: port}
	m.cond = sync.NewCond(&m.mu)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go m.read(pr)
	go func() {
		err := cmd.Wait()
		pw.Close()
		m.mu.Lock()
		m.exited, m.done = err, true
		m.cond.Broadcast()
		m.mu.Unlock()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		m.mu.Lock()
		defer m.mu.Unlock()
		timer := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
		defer timer.Stop()
		for !m.done {
			m.cond.Wait()
		}
		if t.Failed() {
			t.Logf("--- MetalLB %s log (tail) ---\n%s", name, strings.Join(tail(m.log, 40), "\n"))
		}
	})
	return m
}

// read keeps the process's log and the verdicts in it: MetalLB's k8s client logs event
// configLoaded when it has parsed and applied the ConfigMap, configStale when it refused it.
func (m *metallb) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		var entry struct {
			ConfigMap string `json:"configmap"`
			Event     string `json:"event"`
			Error     any    `json:"error"`
		}
		_ = json.Unmarshal([]byte(line), &entry)
		m.mu.Lock()
		m.log = append(m.log, line)
		if entry.ConfigMap == namespace+"/"+configMap {
			switch entry.Event {
			case "configLoaded":
				m.events = append(m.events, verdict{accepted: true})
			case "configStale":
				m.events = append(m.events, verdict{err: fmt.Sprint(entry.Error)})
			}
		}
		m.cond.Broadcast()
		m.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// verdicts is how many verdicts the process has logged so far.
func (m *metallb) verdicts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events)
}

// verdict waits for the verdict after the first n and returns it. MetalLB handles one
// ConfigMap event at a time, and the test changes the ConfigMap only once it has the previous
// verdict, so verdict n is on the nth version the test wrote.
func (m *metallb) verdict(t *testing.T, n int) verdict {
	t.Helper()
	timeout := false
	timer := time.AfterFunc(verdictWithin, func() {
		m.mu.Lock()
		timeout = true
		m.cond.Broadcast()
		m.mu.Unlock()
	})
	defer timer.Stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.events) <= n && !m.done && !timeout {
		m.cond.Wait()
	}
	switch {
	case len(m.events) > n:
		return m.events[n]
	case m.done:
		t.Fatalf("the MetalLB %s exited (%v) before its verdict", m.name, m.exited)
	default:
		t.Fatalf("no verdict from the MetalLB %s within %v", m.name, verdictWithin)
	}
	return verdict{}
}

// checkStaleMetric checks metallb_k8s_client_config_stale_bool, MetalLB's own record of its
// last verdict, on the process's /metrics inside its namespace. MetalLB logs a refusal before it
// sets the gauge, so the scrape is repeated for a while.
func (m *metallb) checkStaleMetric(t *testing.T, stale bool) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			if err := inNetns(m.ns, func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			}); err != nil {
				return nil, err
			}
			return c, nil
		},
	}}
	want := 0.0
	if stale {
		want = 1
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(m.port)), Path: "/metrics"}
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get(u.String())
		if err != nil {
			last = err.Error()
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			last = fmt.Sprintf("status %d, %v", resp.StatusCode, err)
			continue
		}
		got, ok := metricstest.Parse(t, string(body)).Value("metallb_k8s_client_config_stale_bool", nil)
		if ok && got == want {
			return
		}
		last = fmt.Sprintf("metallb_k8s_client_config_stale_bool = %v (exported: %v)", got, ok)
	}
	t.Errorf("after its logged verdict, the MetalLB %s's /metrics never had metallb_k8s_client_config_stale_bool %v: %s", m.name, want, last)
}

func tail(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}
