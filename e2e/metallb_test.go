//go:build e2e

package e2e

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Images of ironlb for MetalLB's own manifest (Dockerfile targets, built by e2e/kind/images.sh).
const (
	CompatSpeakerImage    = "ironlb/speaker:dev"
	CompatControllerImage = "ironlb/controller:dev"
)

// removeLoadBalancer deletes the speaker DaemonSet and the controller Deployment of
// metallb-system, whoever installed them (ironlb or MetalLB), and waits until none of their
// pods is left, so that two implementations never run at once. The rest stays (Secret,
// ConfigMap, RBAC).
func removeLoadBalancer(t *testing.T, c *Cluster) {
	t.Helper()
	c.Kubectl(t, "-n", Namespace, "delete", "daemonset/speaker", "deployment/controller", "--ignore-not-found", "--wait=true")
	c.Kubectl(t, "-n", Namespace, "wait", "--for=delete", "pod", "-l", "app=metallb", "--timeout=120s")
}

// restoreIronlb puts ironlb back as the rest of the suite expects it, whatever a test left.
func restoreIronlb(t *testing.T, c *Cluster) {
	t.Helper()
	// A memberlist Secret created by a MetalLB-style controller is owned by its Deployment:
	// free it first, or deleting the Deployment has it garbage-collected under ironlb's feet.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.KubectlCtx(ctx, "-n", Namespace, "patch", "secret", "memberlist", "--type=merge", "-p", `{"metadata":{"ownerReferences":null}}`)
	removeLoadBalancer(t, c)
	installIronlb(t, c)
	// Speakers without a configuration stand by and are not Ready: the test's own pool may
	// just have been removed by its cleanup, so leave one in place, as the demo does.
	applyPoolIfMissing(t, c, false)
	c.WaitRollout(t, Namespace, "daemonset/speaker", 3*time.Minute)
	c.WaitRollout(t, Namespace, "deployment/controller", 3*time.Minute)
}

// script runs a helper script of the repository and returns its stdout.
func (c *Cluster) script(t *testing.T, timeout time.Duration, rel string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.RepoRoot, rel), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", rel, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// metallbManifest is MetalLB v0.12.1's manifests/metallb.yaml minus its PodSecurityPolicies,
// with the images replaced when speaker and controller are set.
func metallbManifest(t *testing.T, c *Cluster, speaker, controller string) string {
	t.Helper()
	var args []string
	if speaker != "" {
		args = append(args, "--speaker-image", speaker, "--controller-image", controller)
	}
	return c.script(t, 2*time.Minute, "hack/metallb-manifest.sh", args...)
}

// waitComponents waits for the speaker DaemonSet and the controller Deployment.
func waitComponents(t *testing.T, c *Cluster) {
	t.Helper()
	c.WaitRollout(t, Namespace, "deployment/controller", 3*time.Minute)
	c.WaitRollout(t, Namespace, "daemonset/speaker", 3*time.Minute)
}

// logsOf returns the logs of the pods of a component.
func logsOf(t *testing.T, c *Cluster, component string) string {
	t.Helper()
	return c.Kubectl(t, "-n", Namespace, "logs", "-l", "app=metallb,component="+component, "--tail=-1", "--prefix")
}

// TestMetalLBManifestRunsIronlb applies MetalLB v0.12.1's own manifest, changed in nothing but
// its two images (and without its PodSecurityPolicies), with ironlb's speaker and controller
// images: the walkthrough's Service gets its IP and answers through it, from one node.
func TestMetalLBManifestRunsIronlb(t *testing.T) {
	c := Setup(t)
	client := c.StartClient(t)
	removeLoadBalancer(t, c)
	t.Cleanup(func() { restoreIronlb(t, c) })
	c.ApplyFile(t, "manifests/namespace.yaml")
	ensurePool(t, c)
	// No memberlist Secret: as MetalLB's controller does, ironlb's creates it (owned by its
	// Deployment), and the speakers, which read it through their environment, then start.
	c.Kubectl(t, "-n", Namespace, "delete", "secret", "memberlist", "--ignore-not-found")
	c.Apply(t, metallbManifest(t, c, CompatSpeakerImage, CompatControllerImage), false)
	waitComponents(t, c)
	if owners := c.Kubectl(t, "-n", Namespace, "get", "secret", "memberlist", "-o", "jsonpath={.metadata.ownerReferences[*].kind}/{.metadata.ownerReferences[*].name}"); owners != "Deployment/controller" {
		t.Errorf("memberlist Secret owned by %q, want Deployment/controller", owners)
	}

	_, ip := deployApp(t, c, client, "e2e-mlbmanifest")
	Eventually(t, 60*time.Second, time.Second, func(ctx context.Context) error {
		body, err := client.Get(ctx, "http://"+ip.String()+"/host")
		if err == nil && !nodeAnswer.MatchString(strings.TrimSpace(body)) {
			return fmt.Errorf("unexpected answer %q", body)
		}
		return err
	})
	soleARPOwner(t, client, ip)

	// It is ironlb that runs, under MetalLB's narrower RBAC, which it noticed.
	speakerLogs, controllerLogs := logsOf(t, c, "speaker"), logsOf(t, c, "controller")
	for _, want := range []struct{ logs, text string }{
		{speakerLogs, "running as MetalLB's speaker"},
		{speakerLogs, "may list but not watch the speaker pods"},
		{controllerLogs, "running as MetalLB's controller"},
		{controllerLogs, "leader election off"},
		{controllerLogs, "created the memberlist Secret"},
		{controllerLogs, "annotation is not written"},
	} {
		if !strings.Contains(want.logs, want.text) {
			t.Errorf("no log line %q", want.text)
		}
	}
	for _, l := range strings.Split(speakerLogs+controllerLogs, "\n") {
		if strings.Contains(l, "forbidden") {
			t.Errorf("a request was forbidden by MetalLB's RBAC: %s", l)
		}
	}
	t.Logf("MetalLB's manifest with ironlb's images: %s answers, one MAC", ip)
}

// A docStep is one shell block of docs/migrating-from-metallb.md, marked
// `<!-- migrate: NAME -->` on the line before its ```bash fence.
type docStep struct{ name, script string }

var stepMarker = regexp.MustCompile(`^<!-- migrate: (\S+) -->$`)

// migrationSteps reads the marked shell blocks of the migration guide, in order.
func migrationSteps(t *testing.T, c *Cluster) []docStep {
	t.Helper()
	f, err := os.Open(filepath.Join(c.RepoRoot, "docs/migrating-from-metallb.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []docStep
	var cur *docStep
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case cur == nil && !inBlock:
			if m := stepMarker.FindStringSubmatch(line); m != nil {
				cur = &docStep{name: m[1]}
			}
		case !inBlock:
			if line != "```bash" {
				t.Fatalf("migration guide: step %q: want a ```bash block right after its marker, got %q", cur.name, line)
			}
			inBlock = true
		case line == "```":
			steps = append(steps, *cur)
			cur, inBlock = nil, false
		default:
			cur.script += sc.Text() + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(steps) < 5 {
		t.Fatalf("migration guide: %d marked steps, want the whole procedure", len(steps))
	}
	return steps
}

// runStep runs a guide's shell block with bash -e in dir, with kubectl and ironlb on PATH.
func runStep(t *testing.T, c *Cluster, dir, bin string, s docStep) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", s.script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig,
		"PATH="+bin+":"+filepath.Dir(c.KubectlPath)+":"+os.Getenv("PATH"))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("migration step %q failed after %v: %v\n%s\n--- script:\n%s", s.name, time.Since(start).Round(time.Millisecond), err, out, s.script)
	}
	t.Logf("step %q done in %v: %s", s.name, time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(out)))
}

// buildIronlbCLI builds the ironlb command into a temporary directory (the same flags as
// e2e/kind/images.sh, so the Go build cache answers) and returns the directory.
func buildIronlbCLI(t *testing.T, c *Cluster) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, "ironlb"), "./cmd/ironlb")
	cmd.Dir = c.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ironlb: %v\n%s", err, out)
	}
	return dir
}

// probeTarget is one Service URL the client requests during the migration.
type probeTarget struct{ name, url string }

// probes are the client's request and ARP loops, running in the client container until stop.
type probes struct {
	cl      *Client
	targets []probeTarget
	ips     []netip.Addr
	done    chan error
	cancel  context.CancelFunc
}

// startProbes requests every target every 20 ms (e2e/prober, a new connection each time, 0.5 s
// timeout) and, for every IP, sends one ARP request at a time and records every MAC that
// answers it within 0.3 s: two MACs in one sample are two nodes answering for the IP at the
// same moment.
func startProbes(t *testing.T, c *Cluster, cl *Client, targets []probeTarget, ips []netip.Addr) *probes {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "prober")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./e2e/prober")
	build.Dir = c.RepoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./e2e/prober: %v\n%s", err, out)
	}
	if out, err := exec.Command("docker", "cp", bin, cl.Name+":/usr/local/bin/prober").CombinedOutput(); err != nil {
		t.Fatalf("docker cp prober: %v: %s", err, out)
	}
	var b strings.Builder
	b.WriteString("rm -rf /tmp/probe; mkdir -p /tmp/probe\nprober -out /tmp/probe -interval 20ms -timeout 500ms")
	for _, tg := range targets {
		fmt.Fprintf(&b, " %q", tg.url)
	}
	b.WriteString(" &\n")
	for i, ip := range ips {
		fmt.Fprintf(&b, `( while [ ! -f /tmp/probe/stop ]; do
  m=$(arping -c 2 -w 0.3 -i eth0 %s 2>/dev/null | grep -o 'from [0-9a-f:]*' | cut -d' ' -f2 | sort -u | paste -sd, -)
  echo "$(date +%%s.%%N) ${m:--}"
done ) > /tmp/probe/arp-%d.log &
`, ip, i)
	}
	b.WriteString("wait\n")
	ctx, cancel := context.WithCancel(context.Background())
	p := &probes{cl: cl, targets: targets, ips: ips, done: make(chan error, 1), cancel: cancel}
	go func() {
		_, err := cl.Exec(ctx, "bash", "-c", b.String())
		p.done <- err
	}()
	t.Cleanup(cancel)
	return p
}

// sample is one line of a probe log.
type sample struct {
	at    time.Time
	value string
}

func (p *probes) read(t *testing.T, file string) []sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := p.cl.Exec(ctx, "cat", file)
	if err != nil {
		t.Fatal(err)
	}
	var s []sample
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		ts, v, ok := strings.Cut(l, " ")
		f, err := strconv.ParseFloat(ts, 64)
		if !ok || err != nil {
			continue
		}
		s = append(s, sample{time.Unix(0, int64(f*1e9)), v})
	}
	return s
}

// stop ends the loops and returns their samples: per target, per IP.
func (p *probes) stop(t *testing.T) (http, arp [][]sample) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.cl.Exec(ctx, "touch", "/tmp/probe/stop"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("probe loops: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("probe loops did not stop")
	}
	for i := range p.targets {
		http = append(http, p.read(t, fmt.Sprintf("/tmp/probe/http-%d.log", i)))
	}
	for i := range p.ips {
		arp = append(arp, p.read(t, fmt.Sprintf("/tmp/probe/arp-%d.log", i)))
	}
	return http, arp
}

// longestGap is the longest time between two successful requests (or from the first sample to
// the first success), and the number of failed requests.
func longestGap(s []sample) (gap time.Duration, failed int) {
	var last time.Time
	if len(s) > 0 {
		last = s[0].at
	}
	for _, x := range s {
		if x.value != "ok" {
			failed++
			continue
		}
		gap = max(gap, x.at.Sub(last))
		last = x.at
	}
	if len(s) > 0 {
		gap = max(gap, s[len(s)-1].at.Sub(last))
	}
	return gap, failed
}

// lbIPs maps namespace/name of every LoadBalancer Service to its ingress IPs.
func lbIPs(t *testing.T, c *Cluster) map[string]string {
	t.Helper()
	out := c.Kubectl(t, "get", "svc", "-A", "-o",
		`jsonpath={range .items[?(@.spec.type=="LoadBalancer")]}{.metadata.namespace}/{.metadata.name} {.status.loadBalancer.ingress[*].ip}{"\n"}{end}`)
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			m[k] = v
		}
	}
	return m
}

// freePoolIP returns an address of the walkthrough pool that no Service holds, from the top.
func freePoolIP(t *testing.T, c *Cluster) netip.Addr {
	t.Helper()
	used := map[string]bool{}
	for _, ips := range lbIPs(t, c) {
		for _, ip := range strings.Fields(ips) {
			used[ip] = true
		}
	}
	b := KindSubnetV4(t).Addr().As4()
	for last := 250; last >= 200; last-- {
		ip := netip.AddrFrom4([4]byte{b[0], b[1], 255, byte(last)})
		if !used[ip.String()] {
			return ip
		}
	}
	t.Fatal("the walkthrough pool is full")
	return netip.Addr{}
}

// TestMigrateFromMetalLB installs the real MetalLB v0.12.1 (built from its Go module, its own
// manifest), runs the walkthrough plus a Service with a requested IP and one sharing the
// walkthrough's IP, then migrates to ironlb by running the shell blocks of
// docs/migrating-from-metallb.md, in order, while a client requests every Service every 20 ms
// and samples who answers ARP for each IP. Every Service must keep its IP, no sample may see
// two MACs for one IP, and the longest gap per Service is reported. ironlb stays installed.
func TestMigrateFromMetalLB(t *testing.T) {
	c := Setup(t)
	client := c.StartClient(t)
	macs := nodeMACs(t)
	images := c.script(t, 20*time.Minute, "hack/build-metallb.sh")
	t.Logf("MetalLB images: %s", strings.Join(strings.Fields(images), ", "))
	steps := migrationSteps(t, c)
	bin := buildIronlbCLI(t, c)

	// MetalLB as a v0.12 user has it: its namespace and manifest; no Secret of ours, so its
	// controller creates the memberlist Secret owned by its Deployment (the case the guide's
	// first step is for).
	removeLoadBalancer(t, c)
	t.Cleanup(func() { restoreIronlb(t, c) })
	c.Kubectl(t, "-n", Namespace, "delete", "secret", "memberlist", "--ignore-not-found")
	c.Apply(t, c.script(t, time.Minute, "hack/metallb-manifest.sh", "--namespace"), false)
	ensurePool(t, c)
	c.Apply(t, metallbManifest(t, c, "", ""), false)
	waitComponents(t, c)
	owners := c.Kubectl(t, "-n", Namespace, "get", "secret", "memberlist", "-o", "jsonpath={.metadata.ownerReferences[*].kind}")
	if owners != "Deployment" {
		t.Fatalf("MetalLB's controller did not create the memberlist Secret owned by its Deployment (owners %q)", owners)
	}
	secretBefore := c.Kubectl(t, "-n", Namespace, "get", "secret", "memberlist", "-o", "jsonpath={.data.secretkey}")

	// The walkthrough, plus a requested IP and a shared one.
	ns := c.CreateNamespace(t, "e2e-migrate")
	app, err := os.ReadFile(filepath.Join(c.RepoRoot, "e2e/kind/manifests/app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(t, strings.ReplaceAll(string(app), "namespace: default", "namespace: "+ns), false)
	c.WaitRollout(t, ns, "deployment/app", 3*time.Minute)
	c.Kubectl(t, "-n", ns, "annotate", "service", "loadbalancer-service", "metallb.universe.tf/allow-shared-ip=web")
	walkIP := c.ServiceIP(t, ns, "loadbalancer-service", 90*time.Second)
	reqIP := freePoolIP(t, c)
	c.Apply(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: requested, namespace: %[1]s}
spec:
  type: LoadBalancer
  loadBalancerIP: %[2]s
  selector: {app: app}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: shared
  namespace: %[1]s
  annotations: {metallb.universe.tf/allow-shared-ip: web}
spec:
  type: LoadBalancer
  loadBalancerIP: %[3]s
  selector: {app: app}
  ports: [{name: http-alt, port: 8080, targetPort: 8080}]
`, ns, reqIP, walkIP), false)
	if got := c.ServiceIP(t, ns, "requested", 90*time.Second); got != reqIP {
		t.Fatalf("MetalLB gave the Service requesting %s the IP %s", reqIP, got)
	}
	if got := c.ServiceIP(t, ns, "shared", 90*time.Second); got != walkIP {
		t.Fatalf("MetalLB gave the sharing Service %s, want the shared %s", got, walkIP)
	}
	targets := []probeTarget{
		{ns + "/loadbalancer-service", "http://" + walkIP.String() + "/host"},
		{ns + "/requested", "http://" + reqIP.String() + "/host"},
		{ns + "/shared", "http://" + walkIP.String() + ":8080/host"},
	}
	for _, tg := range targets {
		Eventually(t, 60*time.Second, time.Second, func(ctx context.Context) error {
			_, err := client.Get(ctx, tg.url)
			return err
		})
	}
	// Namespaces of earlier tests still going away would take their Services with them in the
	// middle of the guide's before/after comparison.
	Eventually(t, 3*time.Minute, 2*time.Second, func(ctx context.Context) error {
		out, err := c.KubectlCtx(ctx, "get", "namespaces", "-o", `jsonpath={range .items[?(@.status.phase=="Terminating")]}{.metadata.name} {end}`)
		if err == nil && strings.TrimSpace(out) != "" {
			err = fmt.Errorf("namespaces still terminating: %s", out)
		}
		return err
	})
	before := lbIPs(t, c)
	t.Logf("under MetalLB v0.12.1: %s %s, %s %s, %s %s", targets[0].name, walkIP, targets[1].name, reqIP, targets[2].name, walkIP)

	// Migrate, exactly as the guide says, under observation.
	p := startProbes(t, c, client, targets, []netip.Addr{walkIP, reqIP})
	time.Sleep(3 * time.Second)
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(c.RepoRoot, "manifests"), filepath.Join(dir, "manifests")); err != nil {
		t.Fatal(err)
	}
	migrationStart := time.Now()
	for _, s := range steps {
		runStep(t, c, dir, bin, s)
	}
	t.Logf("migration steps took %v", time.Since(migrationStart).Round(time.Millisecond))
	// ironlb's speakers announce once they are ready; watch a while longer.
	time.Sleep(10 * time.Second)
	http, arp := p.stop(t)

	// Every Service kept its IP, and the Secret survived its owner's deletion.
	after := lbIPs(t, c)
	for svc, ips := range before {
		if after[svc] != ips {
			t.Errorf("%s had %q under MetalLB, has %q under ironlb", svc, ips, after[svc])
		}
	}
	if got := c.Kubectl(t, "-n", Namespace, "get", "secret", "memberlist", "-o", "jsonpath={.data.secretkey}"); got != secretBefore {
		t.Errorf("the memberlist Secret changed or is gone (%d bytes of data, had %d)", len(got), len(secretBefore))
	}
	if l := logsOf(t, c, "speaker"); !strings.Contains(l, "ironlb") && !strings.Contains(l, "memberlist") {
		t.Errorf("the speakers now running do not look like ironlb's:\n%s", l)
	}

	// At no sampled moment did two nodes answer for one IP.
	for i, ip := range []netip.Addr{walkIP, reqIP} {
		answered, dual := 0, 0
		perNode := map[string]int{}
		// The announcement gap: from the first unanswered sample to the next answered one.
		var silentSince time.Time
		var silence time.Duration
		for _, s := range arp[i] {
			if s.value == "-" {
				if silentSince.IsZero() {
					silentSince = s.at
				}
				continue
			}
			if !silentSince.IsZero() {
				silence = max(silence, s.at.Sub(silentSince))
				silentSince = time.Time{}
			}
			answered++
			ms := strings.Split(s.value, ",")
			for _, m := range ms {
				perNode[cmp.Or(macs[m], m)]++
			}
			if len(ms) > 1 {
				dual++
				if dual <= 5 {
					var names []string
					for _, m := range ms {
						names = append(names, cmp.Or(macs[m], m))
					}
					t.Errorf("%s: at %s, %d MACs answered ARP for %s: %v", ip, s.at.Format("15:04:05.000"), len(ms), ip, names)
				}
			}
		}
		t.Logf("ARP for %s: %d samples, %d answered, %d with two MACs, longest stretch unanswered %v; answers per node %v",
			ip, len(arp[i]), answered, dual, silence.Round(time.Millisecond), perNode)
		if len(arp[i]) < 20 {
			t.Errorf("only %d ARP samples for %s: the loop did not run", len(arp[i]), ip)
		}
	}
	// The longest gap per Service.
	for i, tg := range targets {
		gap, failed := longestGap(http[i])
		t.Logf("%s (%s): %d requests, %d failed, longest gap %v", tg.name, tg.url, len(http[i]), failed, gap.Round(time.Millisecond))
		if len(http[i]) < 100 {
			t.Errorf("only %d requests to %s: the loop did not run", len(http[i]), tg.url)
		}
		if n := len(http[i]); n > 0 && http[i][n-1].value != "ok" {
			t.Errorf("%s does not answer after the migration", tg.url)
		}
	}
}
