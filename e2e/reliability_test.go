//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lbService returns a LoadBalancer Service selecting the walkthrough app, with extra
// metadata/spec lines (already indented) when given.
func lbService(ns, name, annotations string) string {
	meta := ""
	if annotations != "" {
		meta = "\n  annotations: {" + annotations + "}"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: %s%s
spec:
  type: LoadBalancer
  selector: {app: app}
  ports: [{name: http, port: 80, targetPort: 8080}]
`, name, ns, meta)
}

// restartController deletes every controller pod and waits for the new ones.
func restartController(t *testing.T, c *Cluster) {
	t.Helper()
	c.Kubectl(t, "-n", Namespace, "delete", "pod", "-l", "app=metallb,component=controller", "--wait=true")
	c.WaitRollout(t, Namespace, "deployment/controller", 3*time.Minute)
}

// TestControllerRestartWithUnparsableRequestKeepsIP (issue 9, item 1): a Service holds an IP
// and then gets a garbage loadBalancerIPs annotation naming it ("<ip>,"); after the
// controller restarts, the IP is still that Service's, so a new Service gets another one.
func TestControllerRestartWithUnparsableRequestKeepsIP(t *testing.T) {
	c := Setup(t)
	client := c.StartClient(t)
	ns, _ := deployWalkthroughApp(t, c, client)
	c.Apply(t, lbService(ns, "first", ""), false)
	ip := c.ServiceIP(t, ns, "first", 90*time.Second)
	// The IP allocator hands out the lowest free address, so when the restarted controller
	// forgets this one, the next Service gets exactly it.
	c.Kubectl(t, "-n", ns, "annotate", "service", "first", "metallb.universe.tf/loadBalancerIPs="+ip.String()+",")
	restartController(t, c)
	c.Apply(t, lbService(ns, "second", ""), false)
	second := c.ServiceIP(t, ns, "second", 90*time.Second)
	if second == ip {
		t.Fatalf("after the controller restart, Service second got %s, still held by Service first (whose annotation does not parse)", ip)
	}
	if got := c.ServiceIP(t, ns, "first", 10*time.Second); got != ip {
		t.Errorf("Service first lost its IP %s (now %s)", ip, got)
	}
	t.Logf("first keeps %s, second got %s", ip, second)
}

// TestInvalidConfigAndSpeakerRestartKeepIPs (issue 9, item 7): with an invalid ConfigMap in
// place, every speaker is restarted; speakers that have no usable config must not win IPs,
// so every assigned IP keeps answering.
func TestInvalidConfigAndSpeakerRestartKeepIPs(t *testing.T) {
	c := Setup(t)
	client := c.StartClient(t)
	ns, walkIP := deployWalkthroughApp(t, c, client)
	ips := []netip.Addr{walkIP}
	for i := range 5 {
		name := fmt.Sprintf("svc-%d", i)
		c.Apply(t, lbService(ns, name, ""), false)
		ips = append(ips, c.ServiceIP(t, ns, name, 90*time.Second))
	}
	answersAll := func(ctx context.Context) error {
		// Forget the MACs learnt so far: a node that stopped announcing still forwards what
		// reaches it, so only a fresh ARP resolution shows whether somebody announces the IP.
		if _, err := client.Exec(ctx, "ip", "neigh", "flush", "all"); err != nil {
			return err
		}
		var failed []string
		for _, ip := range ips {
			if _, err := client.Get(ctx, "http://"+ip.String()+"/host"); err != nil {
				failed = append(failed, ip.String())
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("%d of %d IPs do not answer: %v", len(failed), len(ips), failed)
		}
		return nil
	}
	Eventually(t, 60*time.Second, time.Second, answersAll)

	// Registered before replaceConfig, so it runs after the config is back: a rollout stalled
	// on a not-ready speaker finishes before the next test.
	t.Cleanup(func() { c.WaitRollout(t, Namespace, "daemonset/speaker", 3*time.Minute) })
	replaceConfig(t, c, "address-pools:\n- name: default\n  protocol: layer2\n  addresses: [not-an-address]\n")
	c.Kubectl(t, "-n", Namespace, "rollout", "restart", "daemonset/speaker")
	// A speaker without a usable config reports not ready, so the rollout may stall on the
	// first node: give it time either way, then every IP must still answer.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	out, err := c.KubectlCtx(ctx, "-n", Namespace, "rollout", "status", "daemonset/speaker", "--timeout=90s")
	cancel()
	t.Logf("rollout under an invalid config: %v %s", err, strings.TrimSpace(out))
	time.Sleep(10 * time.Second) // restarted speakers have joined and made their first decision
	Eventually(t, 10*time.Second, time.Second, answersAll)
	t.Logf("all %d IPs answer with an invalid config after restarting the speakers", len(ips))
}

// TestMemberlistBlockedOnOneNodeOneAnswer (issue 9, item 8): memberlist traffic (7946/udp and
// tcp) dropped on the owner's node while the data path works: both sides believe the other
// dead, but a duplicate announcer must be resolved, so within 3 s of two MACs being seen
// exactly one MAC answers ARP for the IP again.
func TestMemberlistBlockedOnOneNodeOneAnswer(t *testing.T) {
	c := Setup(t)
	client := c.StartClient(t)
	_, ip := deployWalkthroughApp(t, c, client)
	macs := nodeMACs(t)
	owner := macs[soleARPOwner(t, client, ip)]

	rules := [][]string{
		{"INPUT", "-p", "udp", "--dport", "7946", "-j", "DROP"},
		{"INPUT", "-p", "tcp", "--dport", "7946", "-j", "DROP"},
	}
	iptables := func(op string, rule []string) error {
		args := append([]string{"exec", owner, "iptables", op}, rule...)
		if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		for _, r := range rules {
			// -D until it fails: a rule added twice is removed twice.
			for iptables("-D", r) == nil {
			}
		}
	})
	for _, r := range rules {
		if err := iptables("-I", r); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("memberlist blocked on %s, the owner of %s", owner, ip)

	// Sample for 40 s. Memberlist needs a few seconds to declare the other side dead, then a
	// second node may announce: a duplicate episode, which must end (one MAC again) within 3 s.
	// An asymmetric block like this one (only inbound 7946 dropped) lets the cut-off node's
	// own joins through now and then, so memberlist flaps and a new episode may start later;
	// each is held to the same bound. Samples are about half a second apart, hence the slack.
	const bound, slack = 3 * time.Second, 500 * time.Millisecond
	start := time.Now()
	var episodes []string
	var dupSince time.Duration = -1
	var tooLong []string
	silent, longestSilence := 0, 0 // consecutive samples nobody answered
	perNode := map[string]int{}
	for time.Since(start) < 40*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, _, _ := arpingMACs(ctx, client, ip, 2, "0.3")
		cancel()
		at := time.Since(start)
		for _, m := range got {
			perNode[macs[m]]++
		}
		switch {
		case len(got) > 1 && dupSince < 0:
			dupSince = at
			t.Logf("two MACs for %s %v after blocking: %v", ip, at.Round(time.Millisecond), got)
		case len(got) == 1 && dupSince >= 0:
			d := at - dupSince
			episodes = append(episodes, fmt.Sprintf("%v for %v", dupSince.Round(time.Millisecond), d.Round(time.Millisecond)))
			if d > bound+slack {
				tooLong = append(tooLong, episodes[len(episodes)-1])
			}
			dupSince = -1
		}
		if len(got) == 0 {
			silent++
			longestSilence = max(longestSilence, silent)
		} else {
			silent = 0
		}
	}
	if dupSince >= 0 {
		tooLong = append(tooLong, fmt.Sprintf("%v until the end of sampling", dupSince.Round(time.Millisecond)))
	}
	t.Logf("ARP answers for %s while memberlist is blocked on %s: %v; duplicate episodes (start after blocking, length): %v", ip, owner, perNode, episodes)
	if len(tooLong) > 0 {
		t.Errorf("two MACs answered for %s longer than %v: %v", ip, bound, tooLong)
	}
	// An unanswered sample or two is a lost reply on a busy machine; five in a row is nobody
	// announcing.
	if longestSilence >= 5 {
		t.Errorf("nobody answered ARP for %s in %d consecutive samples", ip, longestSilence)
	}
	Eventually(t, 10*time.Second, time.Second, func(ctx context.Context) error {
		_, err := client.Get(ctx, "http://"+ip.String()+"/host")
		return err
	})
}

// TestSpeakerTerminationWithinGrace (issue 9, item 12) measures how long a speaker takes from
// SIGTERM to exit while it has BGP sessions up and announces routes and layer-2 IPs (it closes
// the sessions, withdraws, leaves memberlist), and checks that this fits in the DaemonSet's
// terminationGracePeriodSeconds, after which the kubelet would SIGKILL it mid-handover.
func TestSpeakerTerminationWithinGrace(t *testing.T) {
	c := Setup(t)
	installIronlb(t, c)
	client := c.StartClient(t)
	ns, _ := deployWalkthroughApp(t, c, client)
	subnet := KindSubnetV4(t)
	pool := bgpPool(subnet)
	nodeIPs, eligible := kindNodes(t, c)
	var allIPs []netip.Addr
	for _, ip := range nodeIPs {
		allIPs = append(allIPs, ip)
	}
	router := startRouter(t, subnet, allIPs)
	replaceConfig(t, c, fmt.Sprintf(`peers:
- peer-address: %s
  peer-asn: %d
  my-asn: %d
address-pools:
- name: default
  protocol: layer2
  addresses:
  - %s
- name: %s
  protocol: bgp
  addresses:
  - %s
`, router.IP, routerASN, nodeASN, WalkthroughPool(subnet), bgpPoolName, pool))
	c.Apply(t, lbService(ns, "bgp", "metallb.universe.tf/address-pool: "+bgpPoolName), false)
	ip := c.ServiceIP(t, ns, "bgp", 90*time.Second)
	node := eligible[0]
	Eventually(t, 90*time.Second, time.Second, func(ctx context.Context) error {
		var n map[string]frrNeighbor
		if err := router.vtyshJSON(ctx, "show bgp neighbors json", &n); err != nil {
			return err
		}
		if st := n[nodeIPs[node].String()].State; st != "Established" {
			return fmt.Errorf("session with %s: %q, want Established", node, st)
		}
		paths, err := router.route(ctx, netip.PrefixFrom(ip, 32))
		if err != nil || len(paths) == 0 {
			return fmt.Errorf("no route to %s yet (%v)", ip, err)
		}
		return nil
	})

	grace, err := strconv.Atoi(strings.TrimSpace(c.Kubectl(t, "-n", Namespace, "get", "daemonset", "speaker",
		"-o", "jsonpath={.spec.template.spec.terminationGracePeriodSeconds}")))
	if err != nil {
		t.Fatalf("terminationGracePeriodSeconds: %v", err)
	}
	var worst time.Duration
	for round := range 3 {
		pod := strings.TrimSpace(c.Kubectl(t, "-n", Namespace, "get", "pods", "-l", "component=speaker",
			"--field-selector", "spec.nodeName="+node, "-o", "jsonpath={.items[0].metadata.name}"))
		c.Kubectl(t, "-n", Namespace, "wait", "--for=condition=Ready", "pod/"+pod, "--timeout=120s")
		Eventually(t, 90*time.Second, time.Second, func(ctx context.Context) error {
			var n map[string]frrNeighbor
			if err := router.vtyshJSON(ctx, "show bgp neighbors json", &n); err != nil {
				return err
			}
			if st := n[nodeIPs[node].String()].State; st != "Established" {
				return fmt.Errorf("session with %s: %q, want Established", node, st)
			}
			return nil
		})
		id := strings.TrimPrefix(strings.TrimSpace(c.Kubectl(t, "-n", Namespace, "get", "pod", pod,
			"-o", "jsonpath={.status.containerStatuses[0].containerID}")), "containerd://")
		// Timed inside the node, so that docker exec's own latency is not counted.
		script := fmt.Sprintf(`start=$(date +%%s%%N)
ctr -n k8s.io tasks kill -s SIGTERM %[1]s
while ctr -n k8s.io tasks ls | grep -q '^%[1]s .*RUNNING'; do sleep 0.02; done
echo $(( ($(date +%%s%%N) - start) / 1000000 ))`, id)
		out, err := exec.Command("docker", "exec", node, "bash", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("SIGTERM to the speaker on %s: %v: %s", node, err, out)
		}
		ms, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatalf("SIGTERM timing: %q", out)
		}
		d := time.Duration(ms) * time.Millisecond
		worst = max(worst, d)
		t.Logf("round %d: speaker on %s (BGP session up, announcing %s) exited %v after SIGTERM", round, node, ip, d)
	}
	t.Logf("SIGTERM to exit: worst %v; terminationGracePeriodSeconds %d", worst, grace)
	if worst >= time.Duration(grace)*time.Second {
		t.Errorf("the speaker needs %v to shut down, more than its terminationGracePeriodSeconds (%d s): the kubelet kills it mid-handover", worst, grace)
	}
}
