//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The BGP e2e topology: an FRR router (AS routerASN) on the kind network, the speakers of all
// nodes peering with it from AS nodeASN.
const (
	routerASN     = 64512
	nodeASN       = 64513
	bgpPoolName   = "e2e-bgp"
	hostCommunity = "64512:100" // on each Service's /32, given by name through bgp-communities
	aggCommunity  = "64512:200" // on the pool's /24 aggregate
	excludeLabel  = "node.kubernetes.io/exclude-from-external-load-balancers"
)

// bgpPool returns the BGP pool of the test: x.y.254.0/24 of the kind subnet, next to the
// walkthrough's layer-2 range x.y.255.200-250.
func bgpPool(subnet netip.Prefix) netip.Prefix {
	b := subnet.Addr().As4()
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{b[0], b[1], 254, 0}), 24)
}

// frrRouter is an FRR container on the kind network; bgpd and zebra run in it, so the routes
// it learns are installed in its kernel table and it forwards along them.
type frrRouter struct {
	Name string
	IP   netip.Addr
}

// startRouter runs the FRR container with a fixed free address of the kind network, peering
// passively with each of nodeIPs (FRR answers; the speakers dial out). It is removed when the
// test ends, after its logs are printed if the test failed.
func startRouter(t *testing.T, subnet netip.Prefix, nodeIPs []netip.Addr) *frrRouter {
	t.Helper()
	used := kindNetworkAddrs(t)
	b := subnet.Addr().As4()
	r := &frrRouter{Name: "ironlb-e2e-frr-" + RandomSuffix()}
	var runErr error
	for last := 200; last < 250 && !r.IP.IsValid(); last++ {
		ip := netip.AddrFrom4([4]byte{b[0], b[1], 0, byte(last)})
		if used[ip] {
			continue
		}
		// Forwarding is what the client test needs; redirects are off so that the client keeps
		// sending through the router instead of learning the next hop from an ICMP redirect.
		out, err := exec.Command("docker", "run", "-d", "--rm", "--name", r.Name, "--label", containerLabel,
			"--network", KindNetwork, "--ip", ip.String(),
			"--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--cap-add", "SYS_ADMIN",
			"--sysctl", "net.ipv4.ip_forward=1",
			"--sysctl", "net.ipv4.conf.all.send_redirects=0",
			"--sysctl", "net.ipv4.conf.eth0.send_redirects=0",
			"--entrypoint", "sleep", FRRImage, "infinity").CombinedOutput()
		if err != nil {
			// Another container may have taken the address meanwhile: try the next one.
			runErr = fmt.Errorf("docker run %s --ip %s: %v: %s", FRRImage, ip, err, out)
			_ = exec.Command("docker", "rm", "-f", r.Name).Run()
			continue
		}
		r.IP = ip
	}
	if !r.IP.IsValid() && runErr != nil && strings.Contains(runErr.Error(), "user configured subnets") {
		// A kind network Docker does not count as user-configured (created without --subnet)
		// takes no fixed address: let Docker pick one and read it back.
		r.IP = runRouterAnyIP(t, r.Name)
	}
	if !r.IP.IsValid() {
		t.Fatalf("no FRR container on the kind network: %v", runErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, d := range []string{"bgpd", "zebra"} {
				out, _ := exec.Command("docker", "exec", r.Name, "tail", "-n", "40", "/var/run/frr/"+d+".log").CombinedOutput()
				t.Logf("FRR %s log (tail):\n%s", d, out)
			}
		}
		if out, err := exec.Command("docker", "rm", "-f", r.Name).CombinedOutput(); err != nil {
			t.Logf("cleanup: docker rm -f %s: %v: %s", r.Name, err, out)
		}
	})

	var neighbors strings.Builder
	for _, ip := range nodeIPs {
		fmt.Fprintf(&neighbors, " neighbor %s remote-as %d\n neighbor %s passive\n", ip, nodeASN, ip)
	}
	conf := fmt.Sprintf(`frr defaults traditional
hostname e2e-router
!
router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 bgp bestpath as-path multipath-relax
%s address-family ipv4 unicast
  maximum-paths 8
 exit-address-family
exit
!
`, routerASN, r.IP, neighbors.String())
	// Each daemon reads its own file: zebra needs no configuration, and would log every
	// bgpd line of a shared frr.conf as an unknown command.
	for file, text := range map[string]string{"bgpd.conf": conf, "zebra.conf": "hostname e2e-router\n"} {
		write := exec.Command("docker", "exec", "-i", r.Name, "sh", "-c", "cat >/etc/frr/"+file)
		write.Stdin = strings.NewReader(text)
		if out, err := write.CombinedOutput(); err != nil {
			t.Fatalf("writing %s into %s: %v: %s", file, r.Name, err, out)
		}
	}
	// The Debian package runs the daemons as frr (a member of frrvty, which vtysh needs); the
	// run directory is made by systemd on a real host, so it is made here.
	start := `set -e
mkdir -p /var/run/frr && chown frr:frr /var/run/frr
for d in zebra bgpd; do
  /usr/lib/frr/$d -d -u frr -g frr -f /etc/frr/$d.conf --log file:/var/run/frr/$d.log
done`
	if out, err := exec.Command("docker", "exec", r.Name, "sh", "-c", start).CombinedOutput(); err != nil {
		t.Fatalf("starting zebra and bgpd in %s: %v: %s", r.Name, err, out)
	}
	Eventually(t, 30*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
		var n map[string]frrNeighbor
		if err := r.vtyshJSON(ctx, "show bgp neighbors json", &n); err != nil {
			return err
		}
		if len(n) != len(nodeIPs) {
			return fmt.Errorf("FRR configured %d neighbors, want %d: %v", len(n), len(nodeIPs), n)
		}
		return nil
	})
	return r
}

// runRouterAnyIP runs the FRR container on the kind network with an address Docker picks.
func runRouterAnyIP(t *testing.T, name string) netip.Addr {
	t.Helper()
	out, err := exec.Command("docker", "run", "-d", "--rm", "--name", name, "--label", containerLabel,
		"--network", KindNetwork,
		"--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--cap-add", "SYS_ADMIN",
		"--sysctl", "net.ipv4.ip_forward=1",
		"--sysctl", "net.ipv4.conf.all.send_redirects=0",
		"--sysctl", "net.ipv4.conf.eth0.send_redirects=0",
		"--entrypoint", "sleep", FRRImage, "infinity").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s: %v: %s", FRRImage, err, out)
	}
	raw, err := exec.Command("docker", "inspect", "-f", `{{(index .NetworkSettings.Networks "kind").IPAddress}}`, name).Output()
	if err != nil {
		t.Fatalf("docker inspect %s: %v", name, err)
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("FRR container %s: kind network address %q: %v", name, raw, err)
	}
	return ip
}

// kindNetworkAddrs returns the IPv4 addresses of the containers on the kind network.
func kindNetworkAddrs(t *testing.T) map[netip.Addr]bool {
	t.Helper()
	out, err := exec.Command("docker", "network", "inspect", KindNetwork, "-f", "{{range .Containers}}{{.IPv4Address}} {{end}}").CombinedOutput()
	if err != nil {
		t.Fatalf("docker network inspect %s: %v: %s", KindNetwork, err, out)
	}
	used := map[netip.Addr]bool{}
	for _, f := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(f); err == nil {
			used[p.Addr()] = true
		}
	}
	return used
}

func (r *frrRouter) exec(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", append([]string{"exec", r.Name}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return string(out), fmt.Errorf("docker exec %s %s: %w: %s", r.Name, strings.Join(args, " "), err, stderr)
	}
	return string(out), nil
}

func (r *frrRouter) vtyshJSON(ctx context.Context, cmd string, v any) error {
	out, err := r.exec(ctx, "vtysh", "-c", cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(bytes.TrimSpace([]byte(out)), v); err != nil {
		return fmt.Errorf("vtysh -c %q: decoding %q: %w", cmd, out, err)
	}
	return nil
}

// table is FRR's IPv4 BGP table and neighbor summary as text, for failure messages.
func (r *frrRouter) table() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sum, err1 := r.exec(ctx, "vtysh", "-c", "show bgp ipv4 unicast summary")
	tbl, err2 := r.exec(ctx, "vtysh", "-c", "show bgp ipv4 unicast")
	s := "\n--- FRR summary ---\n" + sum + "\n--- FRR table ---\n" + tbl
	for _, err := range []error{err1, err2} {
		if err != nil {
			s += "\n" + err.Error()
		}
	}
	return s
}

// frrNeighbor is part of 'show bgp neighbors json'.
type frrNeighbor struct {
	State             string `json:"bgpState"`
	AddressFamilyInfo struct {
		IPv4Unicast struct {
			AcceptedPrefixCounter int `json:"acceptedPrefixCounter"`
		} `json:"ipv4Unicast"`
	} `json:"addressFamilyInfo"`
}

// frrPath is one path of 'show bgp ipv4 unicast <prefix> json'.
type frrPath struct {
	Valid     bool `json:"valid"`
	Multipath bool `json:"multipath"`
	Bestpath  struct {
		Overall bool `json:"overall"`
	} `json:"bestpath"`
	Community struct {
		String string `json:"string"`
	} `json:"community"`
	Nexthops []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
}

// route returns FRR's paths for exactly p (none when FRR does not have it).
func (r *frrRouter) route(ctx context.Context, p netip.Prefix) ([]frrPath, error) {
	var rt struct {
		Prefix string    `json:"prefix"`
		Paths  []frrPath `json:"paths"`
	}
	if err := r.vtyshJSON(ctx, fmt.Sprintf("show bgp ipv4 unicast %s json", p), &rt); err != nil {
		return nil, err
	}
	if rt.Prefix != p.String() {
		return nil, nil // FRR answers {} or a covering prefix when it has no exact match
	}
	return rt.Paths, nil
}

// checkRoute verifies that FRR's valid paths for p come from exactly the nodes want, each
// carrying community, all of them used (best or multipath).
func (r *frrRouter) checkRoute(ctx context.Context, p netip.Prefix, community string, want []netip.Addr) error {
	paths, err := r.route(ctx, p)
	if err != nil {
		return err
	}
	var got []string
	for _, path := range paths {
		if !path.Valid || len(path.Nexthops) == 0 {
			continue
		}
		nh := path.Nexthops[0].IP
		got = append(got, nh)
		if path.Community.String != community {
			return fmt.Errorf("%s via %s: community %q, want %q%s", p, nh, path.Community.String, community, r.table())
		}
		if !path.Multipath && !path.Bestpath.Overall {
			return fmt.Errorf("%s via %s: path neither best nor multipath%s", p, nh, r.table())
		}
	}
	slices.Sort(got)
	if w := addrStrings(want); !slices.Equal(got, w) {
		return fmt.Errorf("%s: next hops %v, want %v%s", p, got, w, r.table())
	}
	return nil
}

// waitWithdrawn polls FRR until it has no path for p and returns how long that took from
// start.
func (r *frrRouter) waitWithdrawn(t *testing.T, p netip.Prefix, start time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		paths, err := r.route(ctx, p)
		cancel()
		if err == nil && len(paths) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s still in FRR's table %s after the change (last error: %v)%s", p, timeout, err, r.table())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func addrStrings(as []netip.Addr) []string {
	s := make([]string, 0, len(as))
	for _, a := range as {
		s = append(s, a.String())
	}
	slices.Sort(s)
	return s
}

// kindNodes returns the IP on the kind network of every node, and the names of the nodes
// allowed to announce (those without the exclude-from-external-load-balancers label).
func kindNodes(t *testing.T, c *Cluster) (ips map[string]netip.Addr, eligible []string) {
	t.Helper()
	out, err := exec.Command("docker", "ps", "--filter", "label=io.x-k8s.kind.cluster=kind", "--format", "{{.Names}}").Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	ips = map[string]netip.Addr{}
	for _, name := range strings.Fields(string(out)) {
		raw, err := exec.Command("docker", "inspect", "-f", `{{(index .NetworkSettings.Networks "kind").IPAddress}}`, name).Output()
		if err != nil {
			t.Fatalf("docker inspect %s: %v", name, err)
		}
		ip, err := netip.ParseAddr(strings.TrimSpace(string(raw)))
		if err != nil {
			t.Fatalf("node %s: kind network address %q: %v", name, raw, err)
		}
		ips[name] = ip
	}
	names := c.Kubectl(t, "get", "nodes", "-l", "!"+excludeLabel, "-o", "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}")
	eligible = strings.Fields(names)
	slices.Sort(eligible)
	for _, n := range eligible {
		if _, ok := ips[n]; !ok {
			t.Fatalf("node %s has no container on the kind network (%v)", n, ips)
		}
	}
	if len(eligible) < 2 {
		t.Fatalf("want at least 2 nodes eligible to announce, got %v", eligible)
	}
	return ips, eligible
}

// replaceConfig sets the `config` key of the ironlb ConfigMap and puts the whole object back
// as it was (data, labels, annotations) when the test ends.
func replaceConfig(t *testing.T, c *Cluster, cfg string) {
	t.Helper()
	saved := c.Kubectl(t, "-n", Namespace, "get", "configmap", "config", "-o", "json")
	restore, err := withoutServerFields(saved, nil)
	if err != nil {
		t.Fatal(err)
	}
	changed, err := withoutServerFields(saved, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := c.kubectlIn(ctx, restore, "replace", "-f", "-"); err != nil {
			t.Errorf("restoring ConfigMap %s/config: %v\n%s", Namespace, err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := c.kubectlIn(ctx, changed, "replace", "-f", "-"); err != nil {
		t.Fatalf("replacing ConfigMap %s/config: %v\n%s", Namespace, err, out)
	}
}

// withoutServerFields drops what the API server owns from a ConfigMap in JSON, so that it
// can be replaced unconditionally; cfg, when set, becomes data.config.
func withoutServerFields(obj string, cfg *string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(obj), &m); err != nil {
		return nil, fmt.Errorf("ConfigMap JSON: %w", err)
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"} {
			delete(md, f)
		}
	}
	if cfg != nil {
		data, _ := m["data"].(map[string]any)
		if data == nil {
			data = map[string]any{}
		}
		data["config"] = *cfg
		m["data"] = data
	}
	return json.Marshal(m)
}

// localApp is a one-replica copy of the app pinned to node, behind a LoadBalancer Service with
// externalTrafficPolicy: Local from the BGP pool.
func localApp(ns, node string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: local-app, namespace: %[1]s}
spec:
  replicas: 1
  selector:
    matchLabels: {app: local-app}
  template:
    metadata:
      labels: {app: local-app}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[2]s}
      terminationGracePeriodSeconds: 2
      containers:
      - name: app
        image: %[3]s
        imagePullPolicy: IfNotPresent
        ports:
        - {name: http, containerPort: 8080}
        env:
        - name: MY_NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        - name: MY_POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 2
        securityContext:
          runAsNonRoot: true
          runAsUser: 65534
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
---
apiVersion: v1
kind: Service
metadata:
  name: local-service
  namespace: %[1]s
  annotations: {metallb.universe.tf/address-pool: %[4]s}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: local-app}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
`, ns, node, AppImage, bgpPoolName)
}

// TestBGP runs the walkthrough's app behind a BGP pool with a real FRR router in front of the
// cluster: the eligible nodes peer with it, it learns each Service's /32 from every eligible
// node (ECMP) with the configured communities plus the pool's aggregate, learns an
// externalTrafficPolicy: Local Service only from the node with its endpoint, sees routes
// withdrawn when endpoints or Services go, and forwards a client's traffic to the nodes.
func TestBGP(t *testing.T) {
	c := Setup(t)
	installIronlb(t, c)
	ensurePool(t, c)
	subnet := KindSubnetV4(t)
	pool := bgpPool(subnet)
	nodeIPs, eligible := kindNodes(t, c)
	var allIPs, eligibleIPs []netip.Addr
	for _, ip := range nodeIPs {
		allIPs = append(allIPs, ip)
	}
	for _, n := range eligible {
		eligibleIPs = append(eligibleIPs, nodeIPs[n])
	}

	router := startRouter(t, subnet, allIPs)
	t.Logf("FRR router %s at %s; nodes %v, eligible %v", router.Name, router.IP, nodeIPs, eligible)

	// Registered after the router, so it runs before the router goes: the speakers drop the
	// peer while FRR still answers.
	replaceConfig(t, c, fmt.Sprintf(`peers:
- peer-address: %s
  peer-asn: %d
  my-asn: %d
bgp-communities:
  e2e-host: %s
address-pools:
- name: default
  protocol: layer2
  addresses:
  - %s
- name: %s
  protocol: bgp
  addresses:
  - %s
  bgp-advertisements:
  - communities: [e2e-host]
  - aggregation-length: 24
    communities: [%s]
`, router.IP, routerASN, nodeASN, hostCommunity, WalkthroughPool(subnet), bgpPoolName, pool, aggCommunity))

	sessionsUp := time.Now()
	if !t.Run("sessions established with the eligible nodes", func(t *testing.T) {
		Eventually(t, 90*time.Second, time.Second, func(ctx context.Context) error {
			var n map[string]frrNeighbor
			if err := router.vtyshJSON(ctx, "show bgp neighbors json", &n); err != nil {
				return err
			}
			for _, name := range eligible {
				if st := n[nodeIPs[name].String()].State; st != "Established" {
					return fmt.Errorf("session with %s (%s): %q, want Established%s", name, nodeIPs[name], st, router.table())
				}
			}
			return nil
		})
		t.Logf("sessions with %v established %v after the ConfigMap change", eligible, time.Since(sessionsUp).Round(time.Millisecond))
	}) {
		return
	}

	ns := c.CreateNamespace(t, "e2e-bgp")
	app, err := os.ReadFile(filepath.Join(c.RepoRoot, "e2e/kind/manifests/app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := strings.ReplaceAll(string(app), "namespace: default", "namespace: "+ns)
	manifest = strings.Replace(manifest, "  name: loadbalancer-service\n",
		"  name: loadbalancer-service\n  annotations: {metallb.universe.tf/address-pool: "+bgpPoolName+"}\n", 1)
	if !strings.Contains(manifest, bgpPoolName) {
		t.Fatalf("app.yaml changed: no Service named loadbalancer-service to annotate:\n%s", manifest)
	}
	c.Apply(t, manifest, false)
	c.WaitRollout(t, ns, "deployment/app", 3*time.Minute)
	ip := c.ServiceIP(t, ns, "loadbalancer-service", 90*time.Second)
	if !pool.Contains(ip) {
		t.Fatalf("Service IP %s outside the BGP pool %s", ip, pool)
	}
	host := netip.PrefixFrom(ip, 32)

	if !t.Run("Cluster Service: /32 from every eligible node with its community, and the aggregate", func(t *testing.T) {
		start := time.Now()
		Eventually(t, 60*time.Second, time.Second, func(ctx context.Context) error {
			return router.checkRoute(ctx, host, hostCommunity, eligibleIPs)
		})
		t.Logf("%s learnt from %v within %v", host, eligible, time.Since(start).Round(time.Millisecond))
		Eventually(t, 30*time.Second, time.Second, func(ctx context.Context) error {
			return router.checkRoute(ctx, pool, aggCommunity, eligibleIPs)
		})
		// zebra installs the multipath route: the router's kernel forwards along it.
		Eventually(t, 30*time.Second, time.Second, func(ctx context.Context) error {
			out, err := router.exec(ctx, "ip", "-j", "route", "show", host.String())
			if err != nil {
				return err
			}
			var routes []struct {
				Nexthops []struct {
					Gateway string `json:"gateway"`
				} `json:"nexthops"`
			}
			if err := json.Unmarshal([]byte(out), &routes); err != nil {
				return fmt.Errorf("ip -j route show %s: %q: %w", host, out, err)
			}
			var gws []string
			for _, r := range routes {
				for _, nh := range r.Nexthops {
					gws = append(gws, nh.Gateway)
				}
			}
			slices.Sort(gws)
			if want := addrStrings(eligibleIPs); !slices.Equal(gws, want) {
				return fmt.Errorf("router's kernel route for %s goes via %v, want %v (ip route: %s)%s", host, gws, want, out, router.table())
			}
			return nil
		})
		// Excluded nodes may hold a session (peers are chosen by node-selectors only) but
		// must send no route at all.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var n map[string]frrNeighbor
		if err := router.vtyshJSON(ctx, "show bgp neighbors json", &n); err != nil {
			t.Fatal(err)
		}
		for name, ip := range nodeIPs {
			if slices.Contains(eligible, name) {
				continue
			}
			nb := n[ip.String()]
			t.Logf("excluded node %s (%s): session %q, %d prefixes accepted from it", name, ip, nb.State, nb.AddressFamilyInfo.IPv4Unicast.AcceptedPrefixCounter)
			if got := nb.AddressFamilyInfo.IPv4Unicast.AcceptedPrefixCounter; got != 0 {
				t.Errorf("excluded node %s advertises %d prefixes%s", name, got, router.table())
			}
		}
	}) {
		return
	}

	client := c.StartClient(t)
	url := "http://" + ip.String() + "/host"
	if !t.Run("client reaches the Service through the router", func(t *testing.T) {
		// Nothing answers ARP for BGP pool addresses: without the route the client gets nothing.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if body, err := client.Get(ctx, url); err == nil {
			t.Errorf("%s answers without a route via the router (%q): the path below proves nothing", url, body)
		}
		cancel()
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := client.Exec(ctx, "ip", "route", "add", pool.String(), "via", router.IP.String()); err != nil {
			t.Fatal(err)
		}
		var body string
		Eventually(t, 30*time.Second, time.Second, func(ctx context.Context) error {
			var err error
			body, err = client.Get(ctx, url)
			if err != nil {
				out, _ := router.exec(ctx, "ip", "route", "show", host.String())
				return fmt.Errorf("%w (router's kernel route: %s)%s", err, strings.TrimSpace(out), router.table())
			}
			return nil
		})
		if nodeAnswer.FindStringSubmatch(strings.TrimSpace(body)) == nil {
			t.Fatalf("unexpected answer through the router: %q", body)
		}
		t.Logf("answer through %s via %s: %s", ip, router.IP, strings.TrimSpace(body))
	}) {
		return
	}

	if !t.Run("Local Service: advertised by the endpoint's node only, withdrawn with the endpoint", func(t *testing.T) {
		node := eligible[len(eligible)-1]
		c.Apply(t, localApp(ns, node), false)
		c.WaitRollout(t, ns, "deployment/local-app", 3*time.Minute)
		lip := c.ServiceIP(t, ns, "local-service", 90*time.Second)
		if !pool.Contains(lip) {
			t.Fatalf("Local Service IP %s outside the BGP pool %s", lip, pool)
		}
		lhost := netip.PrefixFrom(lip, 32)
		Eventually(t, 60*time.Second, time.Second, func(ctx context.Context) error {
			return router.checkRoute(ctx, lhost, hostCommunity, []netip.Addr{nodeIPs[node]})
		})
		lurl := "http://" + lip.String() + "/host"
		Eventually(t, 30*time.Second, time.Second, func(ctx context.Context) error {
			body, err := client.Get(ctx, lurl)
			if err != nil {
				return fmt.Errorf("%w%s", err, router.table())
			}
			if m := nodeAnswer.FindStringSubmatch(strings.TrimSpace(body)); m == nil || m[1] != node {
				return fmt.Errorf("answer %q through the router, want one from %s", body, node)
			}
			return nil
		})

		start := time.Now()
		c.Kubectl(t, "-n", ns, "scale", "deployment/local-app", "--replicas=0")
		took := router.waitWithdrawn(t, lhost, start, time.Minute)
		t.Logf("%s withdrawn %v after scaling the only endpoint (on %s) to 0", lhost, took.Round(time.Millisecond), node)
		// The Cluster Service keeps its route. Polled rather than checked once: the cluster is
		// shared, and a speaker restarted meanwhile by another test drops its paths for a moment.
		Eventually(t, 30*time.Second, time.Second, func(ctx context.Context) error {
			if err := router.checkRoute(ctx, host, hostCommunity, eligibleIPs); err != nil {
				return fmt.Errorf("Cluster Service route after the Local Service lost its endpoint: %w", err)
			}
			return nil
		})
	}) {
		return
	}

	t.Run("deleting the Service withdraws its route and, with no Service left, the aggregate", func(t *testing.T) {
		start := time.Now()
		c.Kubectl(t, "-n", ns, "delete", "service", "loadbalancer-service", "--wait=false")
		took := router.waitWithdrawn(t, host, start, time.Minute)
		t.Logf("%s withdrawn %v after deleting its Service", host, took.Round(time.Millisecond))
		// The Local Service still holds an IP of the pool but has no endpoint: nobody
		// announces anything from the pool any more.
		took = router.waitWithdrawn(t, pool, start, time.Minute)
		t.Logf("aggregate %s withdrawn %v after deleting the last announced Service", pool, took.Round(time.Millisecond))
	})
}
