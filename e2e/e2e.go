package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Names fixed by the walkthrough (DESIGN §1) and by e2e/kind/lib.sh.
const (
	Namespace      = "metallb-system"
	KindNetwork    = "kind"
	IronlbImage    = "ironlb/ironlb:dev"
	AppImage       = "ironlb/e2e-app:dev"
	LocalClient    = "ironlb/netshoot:dev"
	FRRImage       = "ironlb/frr:dev"
	containerLabel = "ironlb.e2e=true" // cluster-down.sh removes what carries it
)

// ErrNoCluster means the kind cluster is not there or does not answer.
var ErrNoCluster = errors.New("no kind cluster (run e2e/kind/cluster-up.sh)")

// Cluster is the kind cluster under test and the tools to reach it.
type Cluster struct {
	RepoRoot    string // the ironlb checkout
	Kubeconfig  string // from `kind get kubeconfig`
	KubectlPath string
	ClientImage string // image of client containers on the kind network
}

// Setup finds the running kind cluster (KUBECONFIG, default $IRONLB_CACHE/kubeconfig-kind as
// written by cluster-up.sh) and fails the test if it does not answer.
func Setup(t *testing.T) *Cluster {
	t.Helper()
	c, err := Discover()
	if err != nil {
		t.Fatalf("e2e setup: %v", err)
	}
	return c
}

// Discover is Setup without a testing.T, for TestMain or tools.
func Discover() (*Cluster, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	cache := os.Getenv("IRONLB_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("cache dir: %w", err)
		}
		cache = filepath.Join(home, ".cache", "ironlb")
	}
	c := &Cluster{RepoRoot: root, Kubeconfig: os.Getenv("KUBECONFIG"), KubectlPath: os.Getenv("KUBECTL")}
	if c.Kubeconfig == "" {
		c.Kubeconfig = filepath.Join(cache, "kubeconfig-kind")
	}
	if c.KubectlPath == "" {
		version, err := k8sVersion(root)
		if err != nil {
			return nil, err
		}
		c.KubectlPath = filepath.Join(cache, "k8s", version, "bin", "kubectl")
	}
	c.ClientImage = os.Getenv("CLIENT_IMAGE")
	if c.ClientImage == "" || exec.Command("docker", "image", "inspect", c.ClientImage).Run() != nil {
		c.ClientImage = LocalClient
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if out, err := c.KubectlCtx(ctx, "get", "--raw", "/readyz"); err != nil {
		return nil, fmt.Errorf("%w: kubeconfig %s: %v: %s", ErrNoCluster, c.Kubeconfig, err, out)
	}
	return c, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working dir: %w", err)
	}
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "hack", "tools", "kubernetes", "go.mod")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("repo root: no hack/tools/kubernetes/go.mod above %s", dir)
}

func k8sVersion(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "hack", "tools", "kubernetes", "go.mod"))
	if err != nil {
		return "", fmt.Errorf("kubernetes version: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "require" && f[1] == "k8s.io/kubernetes" {
			return f[2], nil
		}
	}
	return "", fmt.Errorf("kubernetes version: no `require k8s.io/kubernetes` in hack/tools/kubernetes/go.mod")
}

// KubectlCtx runs kubectl against the cluster and returns its stdout; on failure the error
// carries stderr.
func (c *Cluster) KubectlCtx(ctx context.Context, args ...string) (string, error) {
	return c.kubectlIn(ctx, nil, args...)
}

func (c *Cluster) kubectlIn(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.KubectlPath, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Kubectl runs kubectl (at most two minutes) and fails the test if it fails.
func (c *Cluster) Kubectl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := c.KubectlCtx(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Apply applies YAML (`kubectl apply -f -`). With cleanup set, the objects are deleted when
// the test ends.
func (c *Cluster) Apply(t *testing.T, yaml string, cleanup bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := c.kubectlIn(ctx, []byte(yaml), "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if cleanup {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if out, err := c.kubectlIn(ctx, []byte(yaml), "delete", "--ignore-not-found", "--wait=false", "-f", "-"); err != nil {
				t.Logf("cleanup: %v\n%s", err, out)
			}
		})
	}
}

// ApplyFile applies a file given relative to the repo root; the objects stay.
func (c *Cluster) ApplyFile(t *testing.T, rel string) {
	t.Helper()
	c.Kubectl(t, "apply", "-f", filepath.Join(c.RepoRoot, rel))
}

// CanI answers `kubectl auth can-i VERB RESOURCE` for a ServiceAccount of metallb-system.
// RESOURCE is a type such as "services" or "leases.coordination.k8s.io", optionally with a
// subresource ("services/status"); namespace "" asks cluster-wide (--all-namespaces).
func (c *Cluster) CanI(t *testing.T, sa, verb, resource, namespace string) bool {
	t.Helper()
	args := []string{"auth", "can-i", verb}
	if typ, sub, ok := strings.Cut(resource, "/"); ok {
		// kubectl reads TYPE/NAME, so a subresource has to go through its own flag.
		args = append(args, typ, "--subresource="+sub)
	} else {
		args = append(args, resource)
	}
	args = append(args, "--as=system:serviceaccount:"+Namespace+":"+sa)
	if namespace == "" {
		args = append(args, "--all-namespaces")
	} else {
		args = append(args, "-n", namespace)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.KubectlCtx(ctx, args...)
	answer := strings.TrimSpace(out)
	switch {
	case answer == "yes" && err == nil:
		return true
	case answer == "no": // can-i exits 1 on "no"
		return false
	default:
		t.Fatalf("kubectl %s: %q, %v", strings.Join(args, " "), answer, err)
		return false
	}
}

// CreateNamespace creates a namespace with a unique name starting with prefix, deleted when
// the test ends.
func (c *Cluster) CreateNamespace(t *testing.T, prefix string) string {
	t.Helper()
	name := prefix + "-" + RandomSuffix()
	c.Kubectl(t, "create", "namespace", name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.KubectlCtx(ctx, "delete", "namespace", name, "--wait=false"); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return name
}

// WaitRollout waits for `kubectl rollout status` of OBJECT (e.g. daemonset/speaker).
func (c *Cluster) WaitRollout(t *testing.T, namespace, object string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	if out, err := c.KubectlCtx(ctx, "-n", namespace, "rollout", "status", object, "--timeout="+timeout.String()); err != nil {
		pods, _ := c.KubectlCtx(ctx, "-n", namespace, "get", "pods", "-o", "wide")
		t.Fatalf("%s not rolled out: %v\n%s\n%s", object, err, out, pods)
	}
}

// ServiceIP waits until the Service has a LoadBalancer ingress IP and returns it.
func (c *Cluster) ServiceIP(t *testing.T, namespace, name string, timeout time.Duration) netip.Addr {
	t.Helper()
	var ip netip.Addr
	Eventually(t, timeout, time.Second, func(ctx context.Context) error {
		out, err := c.KubectlCtx(ctx, "-n", namespace, "get", "service", name, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if err != nil {
			return err
		}
		if ip, err = netip.ParseAddr(strings.TrimSpace(out)); err != nil {
			return fmt.Errorf("service %s/%s has no ingress IP yet (%q)", namespace, name, out)
		}
		return nil
	})
	return ip
}

// KindSubnetV4 returns the IPv4 subnet of the Docker network "kind".
func KindSubnetV4(t *testing.T) netip.Prefix {
	t.Helper()
	out, err := exec.Command("docker", "network", "inspect", KindNetwork, "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}").CombinedOutput()
	if err != nil {
		t.Fatalf("docker network inspect %s: %v: %s", KindNetwork, err, out)
	}
	for _, f := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr().Is4() {
			return p
		}
	}
	t.Fatalf("docker network %s has no IPv4 subnet: %q", KindNetwork, out)
	return netip.Prefix{}
}

// WalkthroughPool returns the walkthrough's pool range for an IPv4 subnet: x.y.255.200-x.y.255.250.
func WalkthroughPool(subnet netip.Prefix) string {
	b := subnet.Addr().As4()
	return fmt.Sprintf("%d.%d.255.200-%d.%d.255.250", b[0], b[1], b[0], b[1])
}

// Client is a long-running container on the kind network, standing where the walkthrough's
// `docker run --network kind -it nicolaka/netshoot` stands.
type Client struct {
	Name string
}

// StartClient starts a client container (image: the cluster's ClientImage) on the kind
// network, removed when the test ends.
func (c *Cluster) StartClient(t *testing.T) *Client {
	t.Helper()
	name := "ironlb-e2e-client-" + RandomSuffix()
	out, err := exec.Command("docker", "run", "-d", "--rm", "--name", name, "--label", containerLabel,
		"--network", KindNetwork, "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
		"--entrypoint", "sleep", c.ClientImage, "infinity").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s: %v: %s", c.ClientImage, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "rm", "-f", name).CombinedOutput(); err != nil {
			t.Logf("cleanup: docker rm -f %s: %v: %s", name, err, out)
		}
	})
	return &Client{Name: name}
}

// Exec runs a command in the client container and returns its combined output.
func (cl *Client) Exec(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", append([]string{"exec", cl.Name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker exec %s %s: %w: %s", cl.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Get fetches url with curl from the client (2 s timeout) and returns the body.
func (cl *Client) Get(ctx context.Context, url string) (string, error) {
	return cl.Exec(ctx, "curl", "-sS", "--fail", "--max-time", "2", url)
}

// Eventually calls f (each call bounded by interval or 10 s, whichever is longer) until it
// returns nil, and fails the test with f's last error when timeout passes.
func Eventually(t *testing.T, timeout, interval time.Duration, f func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	per := max(interval, 10*time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), per)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// RandomSuffix returns 6 hex characters for unique object and container names.
func RandomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
