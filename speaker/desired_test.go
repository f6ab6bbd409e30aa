package speaker

import (
	"net/netip"
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
	svc := serviceView{Key: "default/web", IPs: []netip.Addr{ip}}
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
			svc:       serviceView{Key: "default/a", IPs: []netip.Addr{ip}},
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
			svc:       serviceView{Key: "default/a", IPs: []netip.Addr{ip}},
			wantOwner: "kind-worker3",
		},
		{
			name:      "local traffic policy: only nodes with ready endpoints",
			alive:     allAlive(),
			svc:       serviceView{Key: "default/a", IPs: []netip.Addr{ip}, Local: true, ReadyNodes: map[string]bool{"kind-worker": true}},
			wantOwner: "kind-worker",
		},
		{
			name:    "local traffic policy without endpoints: nobody, with a reason",
			alive:   allAlive(),
			svc:     serviceView{Key: "default/a", IPs: []netip.Addr{ip}, Local: true},
			wantWhy: "no eligible node",
		},
		{
			name:    "address outside every pool",
			alive:   allAlive(),
			svc:     serviceView{Key: "default/a", IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
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
		{Key: "default/a", IPs: []netip.Addr{netip.MustParseAddr("10.99.0.5")}},
		{Key: "default/b", IPs: []netip.Addr{netip.MustParseAddr("10.99.0.6")}},
		{Key: "default/local", IPs: []netip.Addr{netip.MustParseAddr("10.99.0.7")}, Local: true,
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
		Services: []serviceView{{Key: "default/a", IPs: []netip.Addr{netip.MustParseAddr("172.18.255.200")}}}})
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
