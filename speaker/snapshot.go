package speaker

import (
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/election"
	"github.com/ironlb/ironlb/internal/svcinfo"
)

// Inputs are the Kubernetes objects an announcement decision is made from. The speaker fills
// them from its informers; `ironlb status` fills them from the API.
type Inputs struct {
	Config   *config.Config
	LBClass  string
	Nodes    []*corev1.Node
	Services []*corev1.Service
	// EndpointSlices returns the slices of a Service (label kubernetes.io/service-name).
	EndpointSlices func(svc *corev1.Service) []*discoveryv1.EndpointSlice
	// Alive are the speakers taking part in the election.
	Alive map[string]bool
	// IgnoreExcludeLB (--ignore-exclude-lb): nodes labelled
	// node.kubernetes.io/exclude-from-external-load-balancers announce too. The default, as in
	// current MetalLB, is false: the label keeps a node from announcing, in layer 2 and BGP.
	IgnoreExcludeLB bool
}

// snapshot turns the objects into the plain view decide works on.
func snapshot(self string, in Inputs) world {
	w := world{Self: self, Config: in.Config, Alive: in.Alive, IgnoreExcludeLB: in.IgnoreExcludeLB}
	for _, n := range in.Nodes {
		_, excluded := n.Labels[excludeFromLBLabel]
		w.Nodes = append(w.Nodes, nodeView{
			Name:               n.Name,
			Labels:             n.Labels,
			NetworkUnavailable: nodeCondition(n, corev1.NodeNetworkUnavailable),
			Excluded:           excluded,
		})
	}
	for _, svc := range in.Services {
		if !svcinfo.Handled(svc, in.LBClass) {
			continue
		}
		// Status order, not sorted: the first address is the layer-2 election key.
		ips := svcinfo.IngressIPs(svc)
		if len(ips) == 0 {
			continue
		}
		view := serviceView{
			Key:   svc.Namespace + "/" + svc.Name,
			IPs:   ips,
			Local: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		}
		// Without a way to read EndpointSlices nothing is known to serve, so nothing is announced.
		if in.EndpointSlices != nil {
			view.Served, view.ReadyNodes = servingEndpoints(in.EndpointSlices(svc))
		}
		w.Services = append(w.Services, view)
	}
	sort.Slice(w.Services, func(i, j int) bool { return w.Services[i].Key < w.Services[j].Key })
	return w
}

// servingEndpoints reports whether any endpoint in the slices can take traffic, and which nodes
// host one. An endpoint without a node name counts for the first answer only: it can serve
// externalTrafficPolicy: Cluster traffic but is on no node a Local Service could announce from.
func servingEndpoints(slices []*discoveryv1.EndpointSlice) (served bool, nodes map[string]bool) {
	nodes = map[string]bool{}
	for _, sl := range slices {
		for _, ep := range sl.Endpoints {
			if !endpointCanServe(ep.Conditions) {
				continue
			}
			served = true
			if ep.NodeName != nil {
				nodes[*ep.NodeName] = true
			}
		}
	}
	return served, nodes
}

// endpointCanServe is current MetalLB's rule: an endpoint counts when it is ready (an unset
// ready condition means ready, as the EndpointSlice API defines) or when it is still serving.
// The API sets ready = serving and not terminating, so "serving but not ready" is a pod that
// terminates while it still answers: during a rolling update the IP stays announced until the
// last old pod stops serving, instead of blinking away before the new pods are ready.
func endpointCanServe(c discoveryv1.EndpointConditions) bool {
	if c.Ready == nil || *c.Ready {
		return true
	}
	return c.Serving != nil && *c.Serving
}

// Announcement explains where one Service IP is announced and why.
type Announcement struct {
	Service  string   `json:"service"`
	IP       string   `json:"ip"`
	Pool     string   `json:"pool,omitempty"`
	Protocol string   `json:"protocol,omitempty"`
	Nodes    []string `json:"nodes"` // the layer-2 owner, or every BGP advertiser
	Why      string   `json:"why"`
}

// Explain computes, with the speakers' own decision rules, which nodes announce every assigned
// Service IP and why (or why none does).
func Explain(in Inputs) []Announcement {
	w := snapshot("", in)
	var out []Announcement
	for _, svc := range w.Services {
		candidates, excluded := w.candidates(svc)
		for _, ip := range svc.IPs {
			out = append(out, explainIP(w.Config, svc, ip, candidates, excluded))
		}
	}
	return out
}

// explainIP applies decide's rules, in decide's order, to one IP of svc.
func explainIP(cfg *config.Config, svc serviceView, ip netip.Addr, candidates []string, excluded map[string]string) Announcement {
	a := Announcement{Service: svc.Key, IP: ip.String(), Nodes: []string{}}
	if cfg == nil {
		a.Why = "no configuration loaded"
		return a
	}
	pool := cfg.PoolFor(ip)
	if pool == nil {
		a.Why = ip.String() + " is in no configured pool; nobody announces it"
		return a
	}
	a.Pool, a.Protocol = pool.Name, string(pool.Protocol)
	switch {
	case !svc.Served:
		a.Why = reasonNoEndpoints
	case len(candidates) == 0:
		a.Why = noCandidateReason(excluded)
	case pool.Protocol == config.Layer2:
		key := svc.IPs[0]
		a.Nodes = []string{election.ServiceOwner(svc.IPs, candidates)}
		a.Why = "lowest sha256(node#" + key.String() + ") among " + strings.Join(candidates, ", ")
		if key != ip {
			a.Why += " (the Service's first ingress IP elects the node for all its IPs)"
		}
		a.Why += excludedSuffix(excluded)
	case pool.Protocol == config.BGP:
		a.Nodes = append(a.Nodes, candidates...)
		a.Why = "every eligible node advertises" + excludedSuffix(excluded)
	}
	return a
}

func excludedSuffix(excluded map[string]string) string {
	if len(excluded) == 0 {
		return ""
	}
	names := make([]string, 0, len(excluded))
	for n := range excluded {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ": " + excluded[n]
	}
	return "; not eligible: " + strings.Join(parts, "; ")
}
