package speaker

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/election"
)

const endpointTestConfig = `
address-pools:
- name: l2
  protocol: layer2
  addresses: [172.18.255.200-172.18.255.250, "fc00:f853:ccd:e793::c8-fc00:f853:ccd:e793::ff"]
- name: routed
  protocol: bgp
  addresses: [10.99.0.0/24]
`

// cond builds EndpointConditions; nil pointers stand for an unset condition.
func cond(ready, serving, terminating *bool) discoveryv1.EndpointConditions {
	return discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}
}

func ptr[T any](v T) *T { return &v }

var (
	yes = ptr(true)
	no  = ptr(false)
)

func endpoint(node string, c discoveryv1.EndpointConditions) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{Addresses: []string{"10.244.1.5"}, Conditions: c}
	if node != "" {
		ep.NodeName = ptr(node)
	}
	return ep
}

func lbService(name string, policy corev1.ServiceExternalTrafficPolicy, ips ...string) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: policy},
	}
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return svc
}

func k8sNodes(names ...string) []*corev1.Node {
	out := make([]*corev1.Node, 0, len(names))
	for _, n := range names {
		out = append(out, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
	}
	return out
}

// announcers runs every alive node's decision over the same objects and returns, per node, what
// it announces (layer-2 addresses owned plus BGP prefixes) and the NotAnnounced reason of svc.
func announcers(t *testing.T, in Inputs, svcKey string) (map[string][]string, string) {
	t.Helper()
	got := map[string][]string{}
	why := ""
	for _, n := range in.Nodes {
		if !in.Alive[n.Name] {
			continue
		}
		d := decide(snapshot(n.Name, in))
		for _, ip := range d.Owned {
			got[n.Name] = append(got[n.Name], ip.String())
		}
		for _, ad := range d.Ads {
			got[n.Name] = append(got[n.Name], ad.Prefix.String())
		}
		if r := d.NotAnnounced[svcKey]; r != "" {
			why = r
		}
	}
	return got, why
}

// TestDecideEndpointRules pins which endpoints make a Service announceable (current MetalLB):
// an endpoint counts when it is ready (an unset ready condition means ready, as the
// EndpointSlice API defines) or still serving while it terminates. A Service with no such
// endpoint is announced by nobody, whatever its externalTrafficPolicy and protocol.
func TestDecideEndpointRules(t *testing.T) {
	cfg := mustConfig(t, endpointTestConfig)
	workers := []string{"kind-worker", "kind-worker2", "kind-worker3"}
	alive := map[string]bool{"kind-worker": true, "kind-worker2": true, "kind-worker3": true}
	const (
		cluster = corev1.ServiceExternalTrafficPolicyCluster
		local   = corev1.ServiceExternalTrafficPolicyLocal
	)
	tests := []struct {
		name   string
		policy corev1.ServiceExternalTrafficPolicy
		ip     string
		eps    []discoveryv1.Endpoint // nil: the Service has no EndpointSlice at all
		// wantNodes: the nodes that announce; for layer 2 exactly one is expected when any.
		wantNodes []string
		wantWhy   string // substring of the NotAnnounced reason when nobody announces
	}{
		{name: "cluster l2, no EndpointSlice", policy: cluster, ip: "172.18.255.200", wantWhy: "no ready or serving endpoint"},
		{name: "cluster l2, empty slice", policy: cluster, ip: "172.18.255.200", eps: []discoveryv1.Endpoint{}, wantWhy: "no ready or serving endpoint"},
		{name: "cluster bgp, no endpoint", policy: cluster, ip: "10.99.0.5", wantWhy: "no ready or serving endpoint"},
		{name: "cluster l2, only not-ready endpoints", policy: cluster, ip: "172.18.255.200",
			eps:     []discoveryv1.Endpoint{endpoint("kind-worker", cond(no, no, no)), endpoint("kind-worker2", cond(no, nil, nil))},
			wantWhy: "no ready or serving endpoint"},
		{name: "cluster bgp, terminating and no longer serving", policy: cluster, ip: "10.99.0.5",
			eps:     []discoveryv1.Endpoint{endpoint("kind-worker", cond(no, no, yes))},
			wantWhy: "no ready or serving endpoint"},
		{name: "cluster l2, ready endpoint", policy: cluster, ip: "172.18.255.200",
			eps: []discoveryv1.Endpoint{endpoint("kind-worker", cond(yes, yes, no))}, wantNodes: []string{"*"}},
		{name: "cluster l2, unset ready counts as ready", policy: cluster, ip: "172.18.255.200",
			eps: []discoveryv1.Endpoint{endpoint("kind-worker", cond(nil, nil, nil))}, wantNodes: []string{"*"}},
		{name: "cluster l2, endpoint without a node name still counts", policy: cluster, ip: "172.18.255.200",
			eps: []discoveryv1.Endpoint{endpoint("", cond(yes, yes, no))}, wantNodes: []string{"*"}},
		{name: "cluster l2, serving while terminating counts", policy: cluster, ip: "172.18.255.200",
			eps: []discoveryv1.Endpoint{endpoint("kind-worker", cond(no, yes, yes))}, wantNodes: []string{"*"}},
		{name: "cluster bgp, serving while terminating: every node advertises", policy: cluster, ip: "10.99.0.5",
			eps: []discoveryv1.Endpoint{endpoint("kind-worker", cond(no, yes, yes))}, wantNodes: workers},
		{name: "local bgp, serving while terminating on worker2", policy: local, ip: "10.99.0.5",
			eps: []discoveryv1.Endpoint{endpoint("kind-worker2", cond(no, yes, yes)), endpoint("kind-worker3", cond(no, no, yes))}, wantNodes: []string{"kind-worker2"}},
		{name: "local l2, only the terminating node still serves", policy: local, ip: "172.18.255.200",
			eps: []discoveryv1.Endpoint{endpoint("kind-worker3", cond(no, yes, yes)), endpoint("kind-worker", cond(no, no, no))}, wantNodes: []string{"kind-worker3"}},
		{name: "local l2, terminating and not serving", policy: local, ip: "172.18.255.200",
			eps:     []discoveryv1.Endpoint{endpoint("kind-worker3", cond(no, no, yes))},
			wantWhy: "no ready or serving endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := lbService("web", tc.policy, tc.ip)
			var epSlices []*discoveryv1.EndpointSlice
			if tc.eps != nil {
				epSlices = []*discoveryv1.EndpointSlice{{
					ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
					AddressType: discoveryv1.AddressTypeIPv4,
					Endpoints:   tc.eps,
				}}
			}
			in := Inputs{
				Config:         cfg,
				Nodes:          k8sNodes(workers...),
				Services:       []*corev1.Service{svc},
				EndpointSlices: func(*corev1.Service) []*discoveryv1.EndpointSlice { return epSlices },
				Alive:          alive,
			}
			got, why := announcers(t, in, "default/web")
			switch {
			case len(tc.wantNodes) == 0:
				if len(got) != 0 {
					t.Errorf("announced by %v, want nobody", got)
				}
				if !strings.Contains(why, tc.wantWhy) {
					t.Errorf("NotAnnounced reason %q, want it to contain %q", why, tc.wantWhy)
				}
				// ironlb status must give the same reason.
				for _, a := range Explain(in) {
					if len(a.Nodes) != 0 || !strings.Contains(a.Why, tc.wantWhy) {
						t.Errorf("Explain: %+v, want no node and a reason containing %q", a, tc.wantWhy)
					}
				}
			case tc.wantNodes[0] == "*": // layer 2: exactly one node, any
				if len(got) != 1 {
					t.Errorf("announced by %v, want exactly one node", got)
				}
				if why != "" {
					t.Errorf("announced, but NotAnnounced says %q", why)
				}
			default:
				if len(got) != len(tc.wantNodes) {
					t.Errorf("announced by %v, want %v", got, tc.wantNodes)
				}
				for _, n := range tc.wantNodes {
					if len(got[n]) == 0 {
						t.Errorf("%s does not announce; announcers %v, want %v", n, got, tc.wantNodes)
					}
				}
			}
		})
	}
}

// TestEndpointComesBack: withdrawn while no endpoint serves, announced again as soon as one does.
func TestEndpointComesBack(t *testing.T) {
	cfg := mustConfig(t, endpointTestConfig)
	svc := lbService("web", corev1.ServiceExternalTrafficPolicyCluster, "172.18.255.200")
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{endpoint("kind-worker", cond(yes, yes, no))},
	}
	in := Inputs{
		Config:         cfg,
		Nodes:          k8sNodes("kind-worker", "kind-worker2"),
		Services:       []*corev1.Service{svc},
		EndpointSlices: func(*corev1.Service) []*discoveryv1.EndpointSlice { return []*discoveryv1.EndpointSlice{slice} },
		Alive:          map[string]bool{"kind-worker": true, "kind-worker2": true},
	}
	steps := []struct {
		conds     discoveryv1.EndpointConditions
		announced bool
	}{
		{cond(yes, yes, no), true},
		{cond(no, yes, yes), true}, // rolling update: the old pod terminates but still serves
		{cond(no, no, yes), false}, // it stopped serving and no new pod is ready
		{cond(yes, yes, no), true}, // the new pod is ready
	}
	for i, st := range steps {
		slice.Endpoints[0].Conditions = st.conds
		got, _ := announcers(t, in, "default/web")
		if (len(got) == 1) != st.announced {
			t.Errorf("step %d: announcers %v, want announced=%v", i, got, st.announced)
		}
	}
}

// TestSnapshotDualStackKeepsStatusOrder: the Service's IPs keep the order of
// .status.loadBalancer.ingress, so the first ingress IP as written elects the layer-2 node, and
// Explain (ironlb status) names that node and that key for both addresses.
func TestSnapshotDualStackKeepsStatusOrder(t *testing.T) {
	cfg := mustConfig(t, endpointTestConfig)
	v4, v6 := netip.MustParseAddr("172.18.255.200"), netip.MustParseAddr("fc00:f853:ccd:e793::c8")
	names := []string{"kind-worker", "kind-worker2", "kind-worker3"}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		Endpoints:  []discoveryv1.Endpoint{endpoint("kind-worker", cond(yes, yes, no))},
	}
	for _, ingress := range [][]netip.Addr{{v4, v6}, {v6, v4}} {
		t.Run(ingress[0].String()+"-first", func(t *testing.T) {
			svc := lbService("web", corev1.ServiceExternalTrafficPolicyCluster, ingress[0].String(), ingress[1].String())
			in := Inputs{
				Config:         cfg,
				Nodes:          k8sNodes(names...),
				Services:       []*corev1.Service{svc},
				EndpointSlices: func(*corev1.Service) []*discoveryv1.EndpointSlice { return []*discoveryv1.EndpointSlice{slice} },
				Alive:          map[string]bool{"kind-worker": true, "kind-worker2": true, "kind-worker3": true},
			}
			w := snapshot("", in)
			if len(w.Services) != 1 || !slices.Equal(w.Services[0].IPs, ingress) {
				t.Fatalf("snapshot services %+v, want IPs in status order %v", w.Services, ingress)
			}
			want := election.Owner(ingress[0], names)
			got, _ := announcers(t, in, "default/web")
			if len(got) != 1 || len(got[want]) != 2 {
				t.Errorf("announcers %v, want %s announcing both %v", got, want, ingress)
			}
			rows := Explain(in)
			if len(rows) != 2 {
				t.Fatalf("Explain rows %+v, want one per IP", rows)
			}
			for _, r := range rows {
				if !slices.Equal(r.Nodes, []string{want}) || !strings.Contains(r.Why, "sha256(node#"+ingress[0].String()+")") {
					t.Errorf("Explain %+v, want node %s elected over %s", r, want, ingress[0])
				}
			}
		})
	}
}
