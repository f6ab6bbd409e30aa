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
}

// snapshot turns the objects into the plain view decide works on.
func snapshot(self string, in Inputs) world {
	w := world{Self: self, Config: in.Config, Alive: in.Alive}
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
		ips := svcinfo.StatusIPs(svc)
		if len(ips) == 0 {
			continue
		}
		view := serviceView{Key: svc.Namespace + "/" + svc.Name, IPs: ips}
		if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			view.Local = true
			if in.EndpointSlices != nil {
				view.ReadyNodes = readyNodes(in.EndpointSlices(svc))
			}
		}
		w.Services = append(w.Services, view)
	}
	sort.Slice(w.Services, func(i, j int) bool { return w.Services[i].Key < w.Services[j].Key })
	return w
}

// readyNodes returns the nodes hosting a ready endpoint in the slices.
func readyNodes(slices []*discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, sl := range slices {
		for _, ep := range sl.Endpoints {
			if ep.NodeName == nil || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			out[*ep.NodeName] = true
		}
	}
	return out
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
			out = append(out, explainIP(w.Config, svc.Key, ip, candidates, excluded))
		}
	}
	return out
}

func explainIP(cfg *config.Config, key string, ip netip.Addr, candidates []string, excluded map[string]string) Announcement {
	a := Announcement{Service: key, IP: ip.String(), Nodes: []string{}}
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
	case len(candidates) == 0:
		a.Why = noCandidateReason(excluded)
	case pool.Protocol == config.Layer2:
		a.Nodes = []string{election.Owner(ip, candidates)}
		a.Why = "lowest sha256(node#ip) among " + strings.Join(candidates, ", ") + excludedSuffix(excluded)
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
