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
	metricsPort   = 7472 // the speaker's default; the namespace is the test's own
	verdictWithin = time.Minute
	// The speaker starts on a configuration it must accept, so that every row is a change from
	// a loaded configuration, as in a running cluster.
	baseline = "address-pools:\n- {name: baseline, protocol: layer2, addresses: [172.18.255.200-172.18.255.250]}\n"
)

// TestRealMetalLB applies every row of internal/parityrows as MetalLB's ConfigMap, one after
// another, to one running MetalLB v0.12.1 speaker, and checks that the speaker accepts exactly the
// rows whose MetalLB column says it does.
func TestRealMetalLB(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root for a network namespace: run the tests as root (CI does)")
	}
	speakerBin := metallbBinary(t, "speaker")
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

	ns := newNetns(t)
	apiAddr := proxyInto(t, ns, strings.TrimPrefix(srv.Config.Host, "https://"))
	kubeconfig := writeKubeconfig(t, "https://"+apiAddr, srv.Config.BearerToken)
	sp := startSpeaker(t, ns, speakerBin, kubeconfig)

	if v := sp.verdict(t, 0); !v.accepted {
		t.Fatalf("the speaker refuses the baseline configuration: %s", v.err)
	}
	sp.checkStaleMetric(t, false)

	rows := parityrows.Rows()
	seen := map[string]string{baseline: "baseline"}
	for _, row := range rows {
		// An unchanged config key is still an update (the row annotation changes), which the
		// speaker parses again; distinct rows only make a mixed-up verdict visible.
		if prev, dup := seen[row.In]; dup {
			t.Fatalf("rows %q and %q have the same configuration", prev, row.Rule)
		}
		seen[row.In] = row.Rule
	}
	for i, row := range rows {
		t.Run(row.Rule, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			n := sp.verdicts()
			cm, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, configMap, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := configMapFor(i, row.In)
			cm.Data, cm.Annotations = want.Data, want.Annotations
			if _, err := cs.CoreV1().ConfigMaps(namespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			v := sp.verdict(t, n)
			t.Logf("MetalLB v0.12.1's speaker accepts: %v %s", v.accepted, v.err)
			if v.accepted != row.MetalLB {
				t.Errorf("MetalLB v0.12.1's speaker accepts: %v (%s), the table says %v\nconfig:\n%s", v.accepted, v.err, row.MetalLB, row.In)
			}
			sp.checkStaleMetric(t, !v.accepted)
		})
	}
}

// configMapFor is MetalLB's ConfigMap for row (or -1 for the baseline); the annotation makes
// every row a new version of the object, so the speaker reparses even an unchanged config key.
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

// metallbBinary returns the path of MetalLB's component, which hack/build-metallb.sh builds
// once per version and caches (cold: a few minutes); its last line of output is the directory.
func metallbBinary(t *testing.T, component string) string {
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
	bin := filepath.Join(lines[len(lines)-1], component)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("hack/build-metallb.sh --no-images printed %q: %v", out, err)
	}
	return bin
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
				done := make(chan struct{})
				go func() { _, _ = io.Copy(out, in); out.(*net.TCPConn).CloseWrite(); close(done) }()
				_, _ = io.Copy(in, out)
				in.(*net.TCPConn).CloseWrite()
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

// speaker is a running MetalLB speaker and the verdicts it has logged on its ConfigMap.
type speaker struct {
	ns     string
	mu     sync.Mutex
	cond   *sync.Cond
	log    []string
	events []verdict
	exited error // set once the process has ended
	done   bool
}

type verdict struct {
	accepted bool
	err      string // the speaker's reason for refusing
}

func startSpeaker(t *testing.T, ns, bin, kubeconfig string) *speaker {
	t.Helper()
	// ip netns exec replaces itself with the speaker, which keeps the parent-death signal.
	cmd := exec.Command("ip", "netns", "exec", ns, bin,
		"--kubeconfig", kubeconfig,
		"--namespace", namespace,
		"--config", configMap,
		"--node-name", "parity-node",
		"--host", "127.0.0.1",
		"--port", fmt.Sprint(metricsPort),
	)
	// No METALLB_* variables: the native BGP mode (METALLB_BGP_TYPE unset, as in MetalLB's
	// manifests) and no memberlist (no ml-bindaddr, no ml-labels).
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	sp := &speaker{ns: ns}
	sp.cond = sync.NewCond(&sp.mu)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go sp.read(pr)
	go func() {
		err := cmd.Wait()
		pw.Close()
		sp.mu.Lock()
		sp.exited, sp.done = err, true
		sp.cond.Broadcast()
		sp.mu.Unlock()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		sp.mu.Lock()
		defer sp.mu.Unlock()
		timer := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
		defer timer.Stop()
		for !sp.done {
			sp.cond.Wait()
		}
		if t.Failed() {
			t.Logf("--- MetalLB speaker log (tail) ---\n%s", strings.Join(tail(sp.log, 40), "\n"))
		}
	})
	return sp
}

// read keeps the speaker's log and the verdicts in it: MetalLB's k8s client logs event
// configLoaded when it has parsed and applied the ConfigMap, configStale when it refused it.
func (sp *speaker) read(r io.Reader) {
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
		sp.mu.Lock()
		sp.log = append(sp.log, line)
		if entry.ConfigMap == namespace+"/"+configMap {
			switch entry.Event {
			case "configLoaded":
				sp.events = append(sp.events, verdict{accepted: true})
			case "configStale":
				sp.events = append(sp.events, verdict{err: fmt.Sprint(entry.Error)})
			}
		}
		sp.cond.Broadcast()
		sp.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// verdicts is how many verdicts the speaker has logged so far.
func (sp *speaker) verdicts() int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return len(sp.events)
}

// verdict waits for the verdict after the first n and returns it. The speaker handles one
// ConfigMap event at a time, and the test changes the ConfigMap only once it has the previous
// verdict, so verdict n is on the nth version the test wrote.
func (sp *speaker) verdict(t *testing.T, n int) verdict {
	t.Helper()
	timeout := false
	timer := time.AfterFunc(verdictWithin, func() {
		sp.mu.Lock()
		timeout = true
		sp.cond.Broadcast()
		sp.mu.Unlock()
	})
	defer timer.Stop()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for len(sp.events) <= n && !sp.done && !timeout {
		sp.cond.Wait()
	}
	switch {
	case len(sp.events) > n:
		return sp.events[n]
	case sp.done:
		t.Fatalf("the MetalLB speaker exited (%v) before its verdict", sp.exited)
	default:
		t.Fatalf("no verdict from the MetalLB speaker within %v", verdictWithin)
	}
	return verdict{}
}

// checkStaleMetric checks metallb_k8s_client_config_stale_bool, MetalLB's own record of its
// last verdict, on the speaker's /metrics inside its namespace. MetalLB logs a refusal before it
// sets the gauge, so the scrape is repeated for a while.
func (sp *speaker) checkStaleMetric(t *testing.T, stale bool) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			if err := inNetns(sp.ns, func() (err error) {
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
	u := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(metricsPort)), Path: "/metrics"}
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
	t.Errorf("after its logged verdict, the MetalLB speaker's /metrics never had metallb_k8s_client_config_stale_bool %v: %s", want, last)
}

func tail(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}
