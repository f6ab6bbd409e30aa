// Package apitest runs a real kube-apiserver backed by a real etcd on loopback for tests.
//
// The API server binary is built from the k8s.io/kubernetes module pinned in
// hack/tools/kubernetes (once per version, cached outside the tree by hack/build-k8s.sh); etcd
// comes from Debian's etcd-server package, installed when missing. Every server gets free ports
// and temporary directories and is stopped in t.Cleanup, so tests can run several side by side.
package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Server is a running API server.
type Server struct {
	// Config reaches the server as a cluster administrator (system:masters).
	Config *rest.Config
}

// Client returns a clientset for the server whose requests carry userAgent, so a test can tell
// the writers of an object apart in its managedFields.
func (s *Server) Client(t testing.TB, userAgent string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(s.Config)
	cfg.UserAgent = userAgent
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	return cs
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// apiserverBinary returns the cached kube-apiserver, building it on first use.
func apiserverBinary() (string, error) {
	binOnce.Do(func() {
		if p := os.Getenv("KUBE_APISERVER"); p != "" {
			binPath = p
			return
		}
		root, err := moduleRoot()
		if err != nil {
			binErr = err
			return
		}
		cmd := exec.Command(filepath.Join(root, "hack", "build-k8s.sh"), "kube-apiserver")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			binErr = fmt.Errorf("building kube-apiserver: %v: %s", err, stderr.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		binPath = filepath.Join(lines[len(lines)-1], "kube-apiserver")
	})
	return binPath, binErr
}

// etcdBinary returns etcd from PATH, installing Debian's etcd-server when it is missing.
func etcdBinary() (string, error) {
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	install := exec.Command("apt-get", "install", "-y", "etcd-server")
	install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := install.CombinedOutput(); err != nil {
		return "", fmt.Errorf("installing etcd-server: %v: %s", err, out)
	}
	return exec.LookPath("etcd")
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(data), "module github.com/ironlb/ironlb\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("ironlb module root not found above the working directory")
		}
		dir = parent
	}
}

// Start runs etcd and kube-apiserver and returns once the API server is ready. Both are stopped
// when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	apiserver, err := apiserverBinary()
	if err != nil {
		t.Fatal(err)
	}
	etcd, err := etcdBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	etcdClient, etcdPeer := freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	startProcess(t, dir, "etcd", etcd,
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", etcdPeer),
		"--unsafe-no-fsync",
	)

	token := randomToken(t)
	tokens := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokens, fmt.Sprintf("%s,admin,admin,system:masters\n", token))
	saKey := filepath.Join(dir, "sa.key")
	writeRSAKey(t, saKey)

	port := freePort(t)
	startProcess(t, dir, "kube-apiserver", apiserver,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(port),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", tokens,
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saKey,
		"--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.96.0.0/16,fd00:10:96::/112",
		"--allow-privileged",
		"--enable-priority-and-fairness=false",
		"--disable-admission-plugins", "ServiceAccount",
	)

	cfg := &rest.Config{
		Host:            fmt.Sprintf("https://127.0.0.1:%d", port),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             1000,
		Burst:           1000,
	}
	waitReady(t, cfg)
	return &Server{Config: cfg}
}

func waitReady(t testing.TB, cfg *rest.Config) {
	t.Helper()
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, cfg.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+cfg.BearerToken)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// The default namespace appears shortly after readiness; tests create objects there.
				cs, err := kubernetes.NewForConfig(cfg)
				if err == nil {
					if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err == nil {
						return
					}
				}
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("kube-apiserver not ready after 2m: %s", last)
}

// startProcess runs a server process whose output goes to a log file that is printed when the
// test fails, and stops it (SIGTERM, then SIGKILL) in cleanup.
func startProcess(t testing.TB, dir, name, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			if data, err := os.ReadFile(logPath); err == nil {
				t.Logf("--- %s log (tail) ---\n%s", name, tail(string(data), 40))
			}
		}
	})
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeRSAKey(t testing.TB, path string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	block := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}
	writeFile(t, path, string(pem.EncodeToMemory(block)))
}
