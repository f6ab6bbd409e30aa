package bgp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The FRR tests run each Speaker in a child process inside a node's network
// namespace, because GoBGP dials from goroutines that could run on any OS
// thread. The child is this test binary re-executed with helperEnv set; it
// reads JSON commands on stdin, answers on stdout and logs on stderr.
const helperEnv = "IRONLB_BGP_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		if err := runHelper(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type helperCmd struct {
	Op    string          `json:"op"`
	Peers []Peer          `json:"peers,omitempty"`
	Ads   []Advertisement `json:"ads,omitempty"`
	Addr  string          `json:"addr,omitempty"` // http: listen address; get: URL
	Body  string          `json:"body,omitempty"`
}

type helperResp struct {
	Err      string         `json:"err,omitempty"`
	Sessions []SessionState `json:"sessions,omitempty"`
	Body     string         `json:"body,omitempty"`
	Took     time.Duration  `json:"took,omitempty"`
}

func runHelper(in io.Reader, out io.Writer) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	routerID := netip.MustParseAddr(os.Getenv("IRONLB_BGP_ROUTER_ID"))
	reg := prometheus.NewRegistry()
	sp, err := New(Options{
		RouterID: routerID, ListenPort: -1, ConnectRetry: time.Second, Logger: log,
		Metrics: NewMetrics(reg),
		OnSessionChange: func(peer netip.Addr, up bool, reason string) {
			log.Info("session change callback", "peer", peer, "up", up, "reason", reason)
		},
	})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var c helperCmd
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return err
		}
		var r helperResp
		start := time.Now()
		switch c.Op {
		case "peers":
			err = sp.SetPeers(c.Peers)
		case "ads":
			err = sp.SetAdvertisements(c.Ads)
		case "sessions":
			r.Sessions = sp.Sessions()
		case "metrics":
			var mfs []*dto.MetricFamily
			mfs, err = reg.Gather()
			var sb strings.Builder
			for _, mf := range mfs {
				if _, e := expfmt.MetricFamilyToText(&sb, mf); e != nil {
					err = e
				}
			}
			r.Body = sb.String()
		case "shutdown":
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = sp.Shutdown(ctx)
			cancel()
		case "http":
			var l net.Listener
			l, err = net.Listen("tcp", c.Addr)
			if err == nil {
				body := c.Body
				go func() {
					_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }))
				}()
			}
		case "get":
			client := http.Client{Timeout: 3 * time.Second}
			var resp *http.Response
			resp, err = client.Get(c.Addr)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r.Body = string(b)
			}
		default:
			err = fmt.Errorf("unknown op %q", c.Op)
		}
		r.Took = time.Since(start)
		if err != nil {
			r.Err = err.Error()
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return sc.Err()
}

// syncBuffer collects a child's stderr for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// helper is the test side of a helper process.
type helper struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	dec    *json.Decoder
	stderr *syncBuffer
	mu     sync.Mutex
}

func startHelper(t testing.TB, netns, name string, routerID netip.Addr) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", netns, exe)
	cmd.Env = append(os.Environ(), helperEnv+"=1", "IRONLB_BGP_ROUTER_ID="+routerID.String())
	h := &helper{name: name, cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = h.stderr
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.dec = json.NewDecoder(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting helper %s: %v", name, err)
	}
	t.Cleanup(func() {
		h.stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("helper %s log:\n%s", name, h.stderr.String())
		}
	})
	return h
}

func (h *helper) call(t testing.TB, c helperCmd) helperResp {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	b, _ := json.Marshal(c)
	if _, err := h.stdin.Write(append(b, '\n')); err != nil {
		t.Fatalf("helper %s: %s: %v\n%s", h.name, c.Op, err, h.stderr.String())
	}
	var r helperResp
	if err := h.dec.Decode(&r); err != nil {
		t.Fatalf("helper %s: %s: reading answer: %v\n%s", h.name, c.Op, err, h.stderr.String())
	}
	return r
}

func (h *helper) must(t testing.TB, c helperCmd) helperResp {
	t.Helper()
	r := h.call(t, c)
	if r.Err != "" {
		t.Fatalf("helper %s: %s: %s", h.name, c.Op, r.Err)
	}
	return r
}

func (h *helper) setPeers(t testing.TB, peers ...Peer) {
	t.Helper()
	h.must(t, helperCmd{Op: "peers", Peers: peers})
}
func (h *helper) setAds(t testing.TB, ads ...Advertisement) {
	t.Helper()
	h.must(t, helperCmd{Op: "ads", Ads: ads})
}
