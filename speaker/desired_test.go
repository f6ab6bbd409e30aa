package speaker

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/election"
)

func mustConfig(t *testing.T, doc string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const mixedConfig = `
peers:
- peer-address: 172.18.0.100
  peer-asn: 64500
  my-asn: 64501
  node-selectors:
  - match-labels: {rack: a}
bgp-communities:
  nope: "65535:65281"
address-pools:
- name: l2
  protocol: layer2
  addresses: [172.18.255.200-172.18.255.250]
- name: routed
  protocol: bgp
  addresses: [10.99.0.0/24]
  bgp-advertisements:
  - aggregation-length: 32
    communities: [nope]
  - aggregation-length: 24
`

func threeNodes() []nodeView {
	return []nodeView{
		{Name: "kind-worker", Labels: map[string]string{"rack": "a"}},
		{Name: "kind-worker2", Labels: map[string]string{"rack": "b"}},
		{Name: "kind-worker3", Labels: map[string]string{"rack": "a"}},
	}
}

func allAlive() map[string]bool {
	return map[string]bool{"kind-worker": true, "kind-worker2": true, "kind-worker3": true}
}

func TestDecideLayer2HasExactlyOneOwner(t *testing.T) {
	cfg := mustConfig(t, mixedConfig)
	ip := netip.MustParseAddr("172.18.255.200")
	svc := serviceView{Key: "default/web", IPs: []netip.Addr{ip}, Served: true}
	want := election.Owner(ip, []string{"kind-worker", "kind-worker2", "kind-worker3"})

	owners := 0
	for _, n := range threeNodes() {
		d := decide(world{Self: n.Name, Config: cfg, Nodes: threeNodes(), Alive: allAlive(), Services: []serviceView{svc}})
		if len(d.Owned) == 1 {
			owners++
			if n.Name != want {
				t.Errorf("%s owns %s, election says %s", n.Name, ip, want)
			}
			if len(d.Announcements) != 1 || d.Announcements[0].Protocol != config.Layer2 {
				t.Errorf("announcements %+v", d.Announcements)
			}
		}
		if len(d.Ads) != 0 {
			t.Errorf("%s advertises a layer2 IP over BGP: %+v", n.Name, d.Ads)
		}
	}
	if owners != 1 {
		t.Fatalf("%d owners, want exactly 1", owners)
	}
}

func TestDecideCandidates(t *testing.T) {
	cfg := mustConfig(t, mixedConfig)
	ip := netip.MustParseAddr("172.18.255.201")
	tests := []struct {
		name      string
		nodes     func([]nodeView) []nodeView
		alive     map[string]bool
		svc       serviceView
		wantOwner string // "" = nobody
		wantWhy   string
	}{
		{
			name:      "only one alive speaker",
			alive:     map[string]bool{"kind-worker2": true},
			svc:       serviceView{Key: "default/a", IPs: []netip.Addr{ip}, Served: true},
			wantOwner: "kind-worker2",
		},
		{
			name: "network unavailable and excluded nodes never own",
			nodes: func(n []nodeView) []nodeView {
				n[0].NetworkUnavailable = true
				n[1].Excluded = true
				return n
			},
			alive:     allAlive(),
			svc:       serviceView{Key: "default/a", IPs: []netip.Addr{ip}, Served: true},
			wantOwner: "kind-worker3",
		},
		{
			name:      "local traffic policy: only nodes with ready endpoints",
			alive:     allAlive(),
			svc:       serviceView{Key: "default/a", IPs: []netip.Addr{ip}, Served: true, Local: true, ReadyNodes: map[string]bool{"kind-worker": true}},
			wantOwner: "kind-worker",
		},
		{
			name:    "local traffic policy without endpoints: nobody, with a reason",
			alive:   allAlive(),
			svc:     serviceView{Key: "default/a", IPs: []netip.Addr{ip}, Local: true},
			wantWhy: "no ready or serving endpoint",
		},
		{
			name:    "local traffic policy, endpoint only on a dead speaker's node",
			alive:   map[string]bool{"kind-worker": true, "kind-worker3": true},
			svc:     serviceView{Key: "default/a", IPs: []netip.Addr{ip}, Served: true, Local: true, ReadyNodes: map[string]bool{"kind-worker2": true}},
			wantWhy: "no eligible node: kind-worker (externalTrafficPolicy is Local and the node has no ready or serving endpoint) kind-worker2 (speaker is not",
		},
		{
			name:    "cluster traffic policy without endpoints: nobody, with a reason",
			alive:   allAlive(),
			svc:     serviceView{Key: "default/a", IPs: []netip.Addr{ip}},
			wantWhy: "no ready or serving endpoint",
		},
		{
			name:    "address outside every pool",
			alive:   allAlive(),
			svc:     serviceView{Key: "default/a", IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, Served: true},
			wantWhy: "in no configured pool",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nodes := threeNodes()
			if tc.nodes != nil {
				nodes = tc.nodes(nodes)
			}
			owner := ""
			var why string
			for _, n := range nodes {
				if !tc.alive[n.Name] {
					continue // a dead speaker decides nothing
				}
				d := decide(world{Self: n.Name, Config: cfg, Nodes: nodes, Alive: tc.alive, Services: []serviceView{tc.svc}})
				if len(d.Owned) > 0 {
					if owner != "" {
						t.Fatalf("two owners: %s and %s", owner, n.Name)
					}
					owner = n.Name
				}
				why = d.NotAnnounced[tc.svc.Key]
			}
			if owner != tc.wantOwner {
				t.Errorf("owner %q, want %q", owner, tc.wantOwner)
			}
			if !strings.Contains(why, tc.wantWhy) {
				t.Errorf("reason %q, want it to contain %q", why, tc.wantWhy)
			}
		})
	}
}

func TestDecideBGP(t *testing.T) {
	cfg := mustConfig(t, mixedConfig)
	svcs := []serviceView{
		{Key: "default/a", IPs: []netip.Addr{netip.MustParseAddr("10.99.0.5")}, Served: true},
		{Key: "default/b", IPs: []netip.Addr{netip.MustParseAddr("10.99.0.6")}, Served: true},
		{Key: "default/local", IPs: []netip.Addr{netip.MustParseAddr("10.99.0.7")}, Served: true, Local: true,
			ReadyNodes: map[string]bool{"kind-worker2": true}},
	}
	// Every eligible node advertises Cluster Services; only nodes with endpoints the Local one.
	d := decide(world{Self: "kind-worker", Config: cfg, Nodes: threeNodes(), Alive: allAlive(), Services: svcs})
	got := map[string]bool{}
	for _, ad := range d.Ads {
		got[ad.Prefix.String()] = true
	}
	for _, want := range []string{"10.99.0.5/32", "10.99.0.6/32", "10.99.0.0/24"} {
		if !got[want] {
			t.Errorf("kind-worker does not advertise %s: %v", want, got)
		}
	}
	if got["10.99.0.7/32"] {
		t.Errorf("kind-worker advertises the Local Service without an endpoint")
	}
	for _, ad := range d.Ads {
		if ad.Prefix.Bits() == 32 && (len(ad.Communities) != 1 || ad.Communities[0] != 65535<<16|65281) {
			t.Errorf("%s communities %v, want [65535:65281]", ad.Prefix, ad.Communities)
		}
	}
	if len(d.Peers) != 1 {
		t.Errorf("kind-worker (rack a) peers %d, want 1", len(d.Peers))
	}

	d2 := decide(world{Self: "kind-worker2", Config: cfg, Nodes: threeNodes(), Alive: allAlive(), Services: svcs})
	if len(d2.Peers) != 0 {
		t.Errorf("kind-worker2 (rack b) peers %d, want none: the node selector excludes it", len(d2.Peers))
	}
	found := false
	for _, ad := range d2.Ads {
		found = found || ad.Prefix.String() == "10.99.0.7/32"
	}
	if !found {
		t.Errorf("kind-worker2 hosts the Local endpoint but does not advertise 10.99.0.7/32")
	}
}

func TestDecideWithoutConfigAnnouncesNothing(t *testing.T) {
	d := decide(world{Self: "kind-worker", Nodes: threeNodes(), Alive: allAlive(),
		Services: []serviceView{{Key: "default/a", IPs: []netip.Addr{netip.MustParseAddr("172.18.255.200")}, Served: true}}})
	if len(d.Owned) != 0 || len(d.Ads) != 0 {
		t.Fatalf("announces without a configuration: %+v", d)
	}
}

func TestNewRefusesToRunWithoutSecret(t *testing.T) {
	_, err := New(Options{Client: fake.NewClientset(), NodeName: "kind-worker", BindAddr: netip.MustParseAddr("172.18.0.4")})
	if err == nil {
		t.Fatal("speaker started without a memberlist secret and without --ml-insecure")
	}
	for _, want := range []string{`kubectl create secret generic -n metallb-system memberlist --from-literal=secretkey="$(openssl rand -base64 128)"`, "--ml-insecure"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not show %q", err, want)
		}
	}
	if _, err := New(Options{Client: fake.NewClientset(), NodeName: "kind-worker", BindAddr: netip.MustParseAddr("172.18.0.4"), Insecure: true}); err != nil {
		t.Errorf("--ml-insecure: %v", err)
	}
}

func TestRejoinedTriggersOnlyOnReturn(t *testing.T) {
	s := &Speaker{}
	steps := []struct {
		alive []string
		want  bool
	}{
		{[]string{"a", "b", "c"}, false}, // first decision: nothing to compare with
		{[]string{"a", "b", "c"}, false},
		{[]string{"a", "c"}, false}, // b failed
		{[]string{"a", "b", "c"}, true},
		{[]string{"a", "b", "c", "d"}, true}, // a new speaker
		{[]string{"a", "b", "c", "d"}, false},
	}
	for i, st := range steps {
		alive := map[string]bool{}
		for _, n := range st.alive {
			alive[n] = true
		}
		if got := s.rejoined(alive); got != st.want {
			t.Errorf("step %d %v: rejoined = %v, want %v", i, st.alive, got, st.want)
		}
	}
}

// owners runs every alive node's decision and returns, per layer-2 IP, the nodes owning it.
func owners(w world) map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for _, n := range w.Nodes {
		if !w.Alive[n.Name] {
			continue
		}
		w.Self = n.Name
		for _, ip := range decide(w).Owned {
			out[ip] = append(out[ip], n.Name)
		}
	}
	return out
}

// TestDecideDualStackOneNode: both addresses of a dual-stack Service are owned by one node, the
// one elected over the Service's first ingress IP (as written in the status, whichever family
// it is), over many random node sets and liveness patterns.
func TestDecideDualStackOneNode(t *testing.T) {
	cfg := mustConfig(t, endpointTestConfig)
	rng := rand.New(rand.NewPCG(10, 20))
	splitPerIP := 0 // samples the old per-IP election would have split across two nodes
	const samples = 500
	for i := range samples {
		nodes := make([]nodeView, 1+rng.IntN(12))
		alive := map[string]bool{}
		for j := range nodes {
			nodes[j] = nodeView{Name: fmt.Sprintf("node-%x", rng.Uint64()>>rng.IntN(56))}
			if rng.IntN(5) != 0 {
				alive[nodes[j].Name] = true
			}
		}
		v4 := netip.AddrFrom4([4]byte{172, 18, 255, byte(200 + rng.IntN(51))})
		v6 := netip.MustParseAddr(fmt.Sprintf("fc00:f853:ccd:e793::%x", 0xc8+rng.IntN(0x38)))
		ingress := []netip.Addr{v4, v6}
		if rng.IntN(2) == 0 {
			ingress = []netip.Addr{v6, v4} // MetalLB may have written IPv6 first
		}
		w := world{Config: cfg, Nodes: nodes, Alive: alive,
			Services: []serviceView{{Key: "default/dual", IPs: ingress, Served: true}}}
		var candidates []string
		for _, n := range nodes {
			if alive[n.Name] {
				candidates = append(candidates, n.Name)
			}
		}
		got := owners(w)
		want := election.Owner(ingress[0], candidates)
		if want == "" {
			if len(got) != 0 {
				t.Fatalf("sample %d: no alive node, yet owners %v", i, got)
			}
			continue
		}
		for _, ip := range ingress {
			if o := got[ip]; len(o) != 1 || o[0] != want {
				t.Fatalf("sample %d: %s owned by %v, want only %s (elected over the first ingress IP %s); nodes %v alive %v",
					i, ip, o, want, ingress[0], nodes, alive)
			}
		}
		if election.Owner(v4, candidates) != election.Owner(v6, candidates) {
			splitPerIP++
		}
	}
	t.Logf("%d of %d samples would have been split by a per-IP election", splitPerIP, samples)
	if splitPerIP == 0 {
		t.Fatal("no sample would have split under a per-IP election; the test proves nothing")
	}
}

// TestDecideSingleStackPickUnchanged: for single-stack Services the per-Service election is the
// MetalLB-compatible per-IP pick the election package pins (TestOwnerMatchesMetalLB).
func TestDecideSingleStackPickUnchanged(t *testing.T) {
	cfg := mustConfig(t, endpointTestConfig)
	nodes := threeNodes()
	names := []string{"kind-worker", "kind-worker2", "kind-worker3"}
	var svcs []serviceView
	for ip := netip.MustParseAddr("172.18.255.200"); ip.Compare(netip.MustParseAddr("172.18.255.250")) <= 0; ip = ip.Next() {
		svcs = append(svcs, serviceView{Key: "default/v4-" + ip.String(), IPs: []netip.Addr{ip}, Served: true})
	}
	for ip := netip.MustParseAddr("fc00:f853:ccd:e793::c8"); ip.Compare(netip.MustParseAddr("fc00:f853:ccd:e793::ff")) <= 0; ip = ip.Next() {
		svcs = append(svcs, serviceView{Key: "default/v6-" + ip.String(), IPs: []netip.Addr{ip}, Served: true})
	}
	got := owners(world{Config: cfg, Nodes: nodes, Alive: allAlive(), Services: svcs})
	for _, svc := range svcs {
		ip := svc.IPs[0]
		if want := election.Owner(ip, names); len(got[ip]) != 1 || got[ip][0] != want {
			t.Errorf("%s owned by %v, want %s", ip, got[ip], want)
		}
	}
}

// TestDecideExcludeLabel: a node labelled node.kubernetes.io/exclude-from-external-load-balancers
// announces nothing by default, in layer 2 and BGP, and is an ordinary candidate under
// --ignore-exclude-lb. BGP sessions follow the peers' node selectors either way.
func TestDecideExcludeLabel(t *testing.T) {
	cfg := mustConfig(t, mixedConfig)
	l2IP := netip.MustParseAddr("172.18.255.200")
	bgpIP := netip.MustParseAddr("10.99.0.5")
	// Label the layer-2 owner of l2IP among all three, so the label visibly moves it.
	l2Owner := election.Owner(l2IP, []string{"kind-worker", "kind-worker2", "kind-worker3"})
	nodes := threeNodes()
	for i := range nodes {
		nodes[i].Excluded = nodes[i].Name == l2Owner || nodes[i].Name == "kind-worker"
	}
	var rest []string
	for _, n := range nodes {
		if !n.Excluded {
			rest = append(rest, n.Name)
		}
	}
	svcs := []serviceView{
		{Key: "default/l2", IPs: []netip.Addr{l2IP}, Served: true},
		{Key: "default/bgp", IPs: []netip.Addr{bgpIP}, Served: true},
	}
	tests := []struct {
		name        string
		ignore      bool
		wantL2Owner string
		wantBGP     []string // nodes advertising bgpIP/32
	}{
		{"label honoured (default)", false, election.Owner(l2IP, rest), rest},
		{"--ignore-exclude-lb", true, l2Owner, []string{"kind-worker", "kind-worker2", "kind-worker3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := world{Config: cfg, Nodes: nodes, Alive: allAlive(), Services: svcs, IgnoreExcludeLB: tc.ignore}
			if got := owners(w)[l2IP]; len(got) != 1 || got[0] != tc.wantL2Owner {
				t.Errorf("layer 2: %s owned by %v, want %s", l2IP, got, tc.wantL2Owner)
			}
			var advertisers []string
			for _, n := range nodes {
				w.Self = n.Name
				d := decide(w)
				for _, ad := range d.Ads {
					if ad.Prefix == netip.PrefixFrom(bgpIP, 32) {
						advertisers = append(advertisers, n.Name)
					}
				}
				// Peering follows node selectors only (rack a: kind-worker and kind-worker3).
				if wantPeers := len(n.Labels) > 0 && n.Labels["rack"] == "a"; (len(d.Peers) == 1) != wantPeers {
					t.Errorf("%s: %d peers, want peering=%v", n.Name, len(d.Peers), wantPeers)
				}
			}
			if !slices.Equal(advertisers, tc.wantBGP) {
				t.Errorf("bgp: %s advertised by %v, want %v", bgpIP, advertisers, tc.wantBGP)
			}
		})
	}
}
