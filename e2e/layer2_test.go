//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var arpingReply = regexp.MustCompile(`from ([0-9a-f]{2}(?::[0-9a-f]{2}){5})`)

// arpingMACs sends count ARP requests for ip from the client, waiting at most deadline
// seconds, and returns the distinct MACs that answered.
func arpingMACs(ctx context.Context, cl *Client, ip netip.Addr, count int, deadline string) ([]string, string, error) {
	out, err := cl.Exec(ctx, "arping", "-c", fmt.Sprint(count), "-w", deadline, "-i", "eth0", ip.String())
	seen := map[string]bool{}
	for _, m := range arpingReply.FindAllStringSubmatch(out, -1) {
		seen[m[1]] = true
	}
	macs := make([]string, 0, len(seen))
	for m := range seen {
		macs = append(macs, m)
	}
	sort.Strings(macs)
	if len(macs) == 0 && err != nil {
		return nil, out, err
	}
	return macs, out, nil
}

// nodeMACs maps the MAC address of every kind node on the kind network to the node's name.
func nodeMACs(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "--filter", "label=io.x-k8s.kind.cluster=kind", "--format", "{{.Names}}").Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	macs := map[string]string{}
	for _, name := range strings.Fields(string(out)) {
		mac, err := exec.Command("docker", "inspect", "-f", `{{(index .NetworkSettings.Networks "kind").MacAddress}}`, name).Output()
		if err != nil {
			t.Fatalf("docker inspect %s: %v", name, err)
		}
		macs[strings.ToLower(strings.TrimSpace(string(mac)))] = name
	}
	return macs
}

// deployWalkthroughApp installs ironlb with the walkthrough's pool, deploys the app and its
// LoadBalancer Service in a fresh namespace and returns the namespace and the Service IP once
// it answers from the client.
func deployWalkthroughApp(t *testing.T, c *Cluster, client *Client) (string, netip.Addr) {
	t.Helper()
	installIronlb(t, c)
	ensurePool(t, c)
	return deployApp(t, c, client, "e2e-app")
}

// deployApp deploys the walkthrough's app and Service in a fresh namespace named after prefix,
// on whatever load balancer runs, and returns the namespace and the Service IP once it answers.
func deployApp(t *testing.T, c *Cluster, client *Client, prefix string) (string, netip.Addr) {
	t.Helper()
	ns := c.CreateNamespace(t, prefix)
	app, err := os.ReadFile(filepath.Join(c.RepoRoot, "e2e/kind/manifests/app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, strings.ReplaceAll(string(app), "namespace: default", "namespace: "+ns), false)
	c.WaitRollout(t, ns, "deployment/app", 3*time.Minute)
	ip := c.ServiceIP(t, ns, "loadbalancer-service", 90*time.Second)
	Eventually(t, 60*time.Second, time.Second, func(ctx context.Context) error {
		_, err := client.Get(ctx, "http://"+ip.String()+"/host")
		return err
	})
	return ns, ip
}

// soleARPOwner waits until exactly one MAC answers ARP for ip from the client and returns it.
func soleARPOwner(t *testing.T, client *Client, ip netip.Addr) string {
	t.Helper()
	var mac string
	Eventually(t, 30*time.Second, time.Second, func(ctx context.Context) error {
		got, out, err := arpingMACs(ctx, client, ip, 3, "5")
		if err != nil {
			return err
		}
		if len(got) != 1 {
			return fmt.Errorf("want exactly one MAC answering ARP for %s, got %v:\n%s", ip, got, out)
		}
		mac = got[0]
		return nil
	})
	return mac
}

// TestLayer2OneOwnerAndLinkCutFailover checks that exactly one node answers ARP for the
// Service IP, that it is the node the speakers report as announcing, and that cutting that
// node's link moves the IP to another node whose answers the client then gets.
func TestLayer2OneOwnerAndLinkCutFailover(t *testing.T) {
	c := Setup(t)
	client := c.StartClient(t)
	ns, ip := deployWalkthroughApp(t, c, client)
	macs := nodeMACs(t)

	ownerMAC := soleARPOwner(t, client, ip)
	owner := macs[ownerMAC]
	if owner == "" {
		t.Fatalf("MAC %s is no kind node's (%v)", ownerMAC, macs)
	}
	t.Logf("%s is announced by %s", ip, owner)
	if owner == "kind-control-plane" {
		t.Fatalf("the control plane carries node.kubernetes.io/exclude-from-external-load-balancers and must not announce")
	}
	// `ironlb status` computes the same owner from the API objects.
	status := ironlbStatus(t, c)
	for _, row := range status {
		if row.Service == ns+"/loadbalancer-service" && (len(row.Nodes) != 1 || row.Nodes[0] != owner) {
			t.Errorf("ironlb status says %v announce %s, ARP says %s (%s)", row.Nodes, ip, owner, row.Why)
		}
	}
	events := c.Kubectl(t, "-n", ns, "get", "events", "--field-selector", "involvedObject.name=loadbalancer-service,reason=nodeAssigned", "-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}")
	if !strings.Contains(events, owner) {
		t.Errorf("no nodeAssigned event naming %s: %q", owner, events)
	}

	// Cut the owner's link; the kubelet and the pods on it lose the network too, as in a real
	// failure. Restore it (and the default route, which goes with the link) when done.
	gw := dockerGateway(t)
	cut := func(up bool) error {
		state := "down"
		if up {
			state = "up"
		}
		if out, err := exec.Command("docker", "exec", owner, "ip", "link", "set", "eth0", state).CombinedOutput(); err != nil {
			return fmt.Errorf("ip link set eth0 %s on %s: %v: %s", state, owner, err, out)
		}
		if up {
			if out, err := exec.Command("docker", "exec", owner, "ip", "route", "replace", "default", "via", gw, "dev", "eth0").CombinedOutput(); err != nil {
				return fmt.Errorf("restoring the default route on %s: %v: %s", owner, err, out)
			}
		}
		return nil
	}
	restored := false
	t.Cleanup(func() {
		if !restored {
			if err := cut(true); err != nil {
				t.Log(err)
			}
		}
	})

	url := "http://" + ip.String() + "/host"
	start := time.Now()
	if err := cut(false); err != nil {
		t.Fatal(err)
	}
	var recovered time.Duration
	var answer string
	for time.Since(start) < 30*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		got, _, _ := arpingMACs(ctx, client, ip, 1, "0.3")
		cancel()
		if len(got) == 1 && macs[got[0]] != owner && macs[got[0]] != "" {
			recovered = time.Since(start)
			break
		}
	}
	if recovered == 0 {
		t.Fatalf("no other node took over %s within 30 s of cutting %s's link", ip, owner)
	}
	t.Logf("link cut on %s: another node answers ARP for %s after %v", owner, ip, recovered.Round(time.Millisecond))
	Eventually(t, 30*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
		body, err := client.Get(ctx, url)
		answer = body
		return err
	})
	t.Logf("answer through %s after the cut: %s", ip, strings.TrimSpace(answer))

	if err := cut(true); err != nil {
		t.Fatal(err)
	}
	restored = true
	// Once the node is back, still exactly one node answers (no split brain after healing).
	Eventually(t, 60*time.Second, 2*time.Second, func(ctx context.Context) error {
		got, out, err := arpingMACs(ctx, client, ip, 3, "5")
		if err != nil {
			return err
		}
		if len(got) != 1 {
			return fmt.Errorf("after healing, %d MACs answer for %s: %v\n%s", len(got), ip, got, out)
		}
		return nil
	})
}

func dockerGateway(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("docker", "network", "inspect", KindNetwork, "-f", "{{range .IPAM.Config}}{{.Gateway}} {{end}}").Output()
	if err != nil {
		t.Fatalf("docker network inspect: %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
			return a.String()
		}
	}
	t.Fatalf("no IPv4 gateway on the kind network: %q", out)
	return ""
}

// TestSpeakerRollingRestartLosesNothing restarts every speaker, one node at a time, while a
// client keeps requesting the Service: a planned handover withdraws first and the old node
// forwards until the new owner has announced, so no request may fail.
func TestSpeakerRollingRestartLosesNothing(t *testing.T) {
	c := Setup(t)
	client := c.StartClient(t)
	_, ip := deployWalkthroughApp(t, c, client)

	// The client requests every 100 ms in the background and writes one line per request.
	const log = "/tmp/requests.log"
	loop := fmt.Sprintf(`rm -f %[1]s; while [ ! -f /tmp/stop ]; do
  if curl -s -o /dev/null --max-time 1 http://%[2]s/healthz; then echo ok >> %[1]s; else echo FAIL $(date +%%s.%%N) >> %[1]s; fi
  sleep 0.1
done`, log, ip)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := client.Exec(ctx, "bash", "-c", loop)
		done <- err
	}()
	time.Sleep(2 * time.Second)

	c.Kubectl(t, "-n", Namespace, "rollout", "restart", "daemonset/speaker")
	c.WaitRollout(t, Namespace, "daemonset/speaker", 3*time.Minute)
	time.Sleep(5 * time.Second) // the last restarted speaker rejoins and may take its IPs back

	stopCtx, stopCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer stopCancel()
	if _, err := client.Exec(stopCtx, "touch", "/tmp/stop"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("request loop: %v", err)
	}
	out, err := client.Exec(stopCtx, "cat", log)
	if err != nil {
		t.Fatal(err)
	}
	total, failed := 0, []string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		total++
		if strings.HasPrefix(line, "FAIL") {
			failed = append(failed, line)
		}
	}
	t.Logf("%d requests to %s during the rolling restart, %d failed", total, ip, len(failed))
	if total < 50 {
		t.Fatalf("only %d requests were made; the loop did not run", total)
	}
	if len(failed) > 0 {
		t.Errorf("%d requests failed during the rolling restart: %v", len(failed), failed)
	}
}

// TestSpeakerCrashOnOwnerMovesNothing kills the owner's speaker container (SIGKILL: no planned
// handover) and lets the kubelet restart it. The host keeps forwarding, so within the restart
// grace the IP must not move: every ARP answer comes from the owner, before, during and after.
func TestSpeakerCrashOnOwnerMovesNothing(t *testing.T) {
	c := Setup(t)
	client := c.StartClient(t)
	_, ip := deployWalkthroughApp(t, c, client)
	macs := nodeMACs(t)

	owner := macs[soleARPOwner(t, client, ip)]
	pod := strings.TrimSpace(c.Kubectl(t, "-n", Namespace, "get", "pods", "-l", "component=speaker",
		"--field-selector", "spec.nodeName="+owner, "-o", "jsonpath={.items[0].metadata.name}"))
	restarts := func() string {
		return strings.TrimSpace(c.Kubectl(t, "-n", Namespace, "get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].restartCount}"))
	}
	before := restarts()
	id := strings.TrimPrefix(strings.TrimSpace(c.Kubectl(t, "-n", Namespace, "get", "pod", pod,
		"-o", "jsonpath={.status.containerStatuses[0].containerID}")), "containerd://")
	if id == "" {
		t.Fatalf("no container ID for %s", pod)
	}
	t.Logf("%s is announced by %s; killing its speaker container %s", ip, owner, id[:12])
	if out, err := exec.Command("docker", "exec", owner, "ctr", "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id).CombinedOutput(); err != nil {
		t.Fatalf("ctr tasks kill: %v: %s", err, out)
	}

	// Watch ARP answers until the kubelet has restarted the container and a little longer.
	deadline := time.Now().Add(60 * time.Second)
	restarted := time.Time{}
	seen := map[string]int{}
	for time.Now().Before(deadline) && (restarted.IsZero() || time.Since(restarted) < 5*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, _, _ := arpingMACs(ctx, client, ip, 1, "0.3")
		cancel()
		for _, m := range got {
			seen[macs[m]]++
		}
		if restarted.IsZero() && restarts() != before {
			restarted = time.Now()
		}
	}
	if restarted.IsZero() {
		t.Fatalf("the kubelet did not restart %s within 60 s", pod)
	}
	t.Logf("ARP answers for %s across the crash: %v", ip, seen)
	for node := range seen {
		if node != owner {
			t.Errorf("%s answered for %s during %s's speaker restart: the IP moved", node, ip, owner)
		}
	}
	if seen[owner] == 0 {
		t.Errorf("the owner %s never answered after its restart", owner)
	}
}

// statusRow is one row of `ironlb status -o json`.
type statusRow struct {
	Service string   `json:"service"`
	IP      string   `json:"ip"`
	Nodes   []string `json:"nodes"`
	Why     string   `json:"why"`
	Pending bool     `json:"pending"`
}

// ironlbStatus runs `ironlb status -o json` from the tree against the cluster.
func ironlbStatus(t *testing.T, c *Cluster) []statusRow {
	t.Helper()
	cmd := exec.Command("go", "run", "./cmd/ironlb", "status", "-o", "json", "--kubeconfig", c.Kubeconfig)
	cmd.Dir = c.RepoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ironlb status: %v", err)
	}
	var rows []statusRow
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("ironlb status -o json: %v: %s", err, out)
	}
	return rows
}
