package speaker

import (
	"net/netip"
	"sort"

	"github.com/ironlb/ironlb/bgp"
	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/election"
	"github.com/ironlb/ironlb/internal/svcinfo"
)

// serviceView is what the announcement decision needs to know about one Service.
type serviceView struct {
	Key string // namespace/name
	// IPs are the addresses of .status.loadBalancer.ingress in the order written there; the
	// first one is the layer-2 election key of the whole Service (election.ServiceOwner).
	IPs   []netip.Addr
	Local bool // externalTrafficPolicy: Local
	// Served: some endpoint of the Service, on any node or none, can take traffic (see
	// endpointCanServe). Without one nobody announces the Service, whatever its policy.
	Served bool
	// ReadyNodes are the nodes hosting an endpoint that can take traffic (consulted for Local).
	ReadyNodes map[string]bool
}

// reasonNoEndpoints is why a Service without any endpoint able to take traffic is not announced.
const reasonNoEndpoints = "no ready or serving endpoint in the Service's EndpointSlices; nobody announces it"

// nodeView is one Kubernetes node as the election sees it, minus endpoint readiness.
type nodeView struct {
	Name               string
	Labels             map[string]string
	NetworkUnavailable bool
	// Excluded: the node carries node.kubernetes.io/exclude-from-external-load-balancers
	// (whether that keeps it from announcing depends on world.IgnoreExcludeLB).
	Excluded bool
}

// world is a snapshot of everything the speaker decides from.
type world struct {
	Self     string
	Config   *config.Config
	Nodes    []nodeView
	Alive    map[string]bool // speakers alive in membership (plus those within their restart grace)
	Services []serviceView
	// IgnoreExcludeLB (--ignore-exclude-lb) lets nodes labelled
	// node.kubernetes.io/exclude-from-external-load-balancers announce too.
	IgnoreExcludeLB bool
}

// announcement is one (Service, IP) this node announces, and how.
type announcement struct {
	Service  string
	IP       netip.Addr
	Protocol config.Protocol
}

// decision is what this node should do: the layer-2 addresses it owns, the BGP routes it
// advertises, and, for status and logs, why Services are not announced here.
type decision struct {
	Owned         []netip.Addr
	Ads           []bgp.Advertisement
	Peers         []*config.Peer
	Announcements []announcement
	// NotAnnounced explains, per Service key, why no node at all announces it (for logs).
	NotAnnounced map[string]string
}

// decide computes this node's announcements from a snapshot. It is pure and deterministic: every
// speaker computing it over the same snapshot agrees on the layer-2 owner of each Service.
//
// The rules, in the order they apply to each Service IP: an IP in no pool is not announced; a
// Service with no endpoint able to take traffic is not announced at all (layer 2 and BGP, both
// traffic policies); the candidates are the eligible nodes (election.Candidates); in layer 2 one
// node, elected over the Service's first ingress IP, announces all its IPs; in BGP every
// candidate advertises.
func decide(w world) decision {
	d := decision{NotAnnounced: map[string]string{}}
	if w.Config == nil {
		return d
	}
	var self *nodeView
	for i := range w.Nodes {
		if w.Nodes[i].Name == w.Self {
			self = &w.Nodes[i]
		}
	}
	if self != nil {
		for _, p := range w.Config.Peers {
			if p.MatchesNode(self.Labels) {
				d.Peers = append(d.Peers, p)
			}
		}
	}

	bgpIPs := map[*config.Pool][]netip.Addr{}
	for _, svc := range w.Services {
		candidates, excluded := w.candidates(svc)
		owner := election.ServiceOwner(svc.IPs, candidates)
		for _, ip := range svc.IPs {
			pool := w.Config.PoolFor(ip)
			if pool == nil {
				d.NotAnnounced[svc.Key] = ip.String() + " is in no configured pool"
				continue
			}
			if !svc.Served {
				d.NotAnnounced[svc.Key] = reasonNoEndpoints
				continue
			}
			if len(candidates) == 0 {
				d.NotAnnounced[svc.Key] = noCandidateReason(excluded)
				continue
			}
			switch pool.Protocol {
			case config.Layer2:
				if owner == w.Self {
					d.Owned = append(d.Owned, ip)
					d.Announcements = append(d.Announcements, announcement{svc.Key, ip, config.Layer2})
				}
			case config.BGP:
				// Every eligible node advertises; the router spreads traffic over them.
				if contains(candidates, w.Self) {
					bgpIPs[pool] = append(bgpIPs[pool], ip)
					d.Announcements = append(d.Announcements, announcement{svc.Key, ip, config.BGP})
				}
			}
		}
	}
	for _, pool := range w.Config.Pools {
		ips := bgpIPs[pool]
		if len(ips) == 0 {
			continue
		}
		d.Ads = append(d.Ads, bgp.Build(ips, advertisementSpecs(pool))...)
	}
	svcinfo.SortAddrs(d.Owned)
	sort.Slice(d.Announcements, func(i, j int) bool {
		a, b := d.Announcements[i], d.Announcements[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		return a.IP.Less(b.IP)
	})
	return d
}

// candidates returns the nodes that may announce svc, and why the others may not.
func (w world) candidates(svc serviceView) ([]string, map[string]string) {
	nodes := make([]election.Node, 0, len(w.Nodes))
	for _, n := range w.Nodes {
		nodes = append(nodes, election.Node{
			Name:               n.Name,
			Alive:              w.Alive[n.Name],
			NetworkUnavailable: n.NetworkUnavailable,
			ExcludedByLabel:    n.Excluded && !w.IgnoreExcludeLB,
			HasReadyEndpoint:   svc.ReadyNodes[n.Name],
		})
	}
	return election.Candidates(nodes, svc.Local)
}

func advertisementSpecs(pool *config.Pool) []bgp.AdvertisementSpec {
	specs := make([]bgp.AdvertisementSpec, 0, len(pool.BGPAdvertisements))
	for _, adv := range pool.BGPAdvertisements {
		comms := make([]uint32, 0, len(adv.Communities))
		for _, c := range adv.Communities {
			comms = append(comms, c.Uint32())
		}
		specs = append(specs, bgp.AdvertisementSpec{
			AggregationLength:   adv.AggregationLength,
			AggregationLengthV6: adv.AggregationLengthV6,
			LocalPref:           adv.LocalPref,
			Communities:         comms,
		})
	}
	return specs
}

func noCandidateReason(excluded map[string]string) string {
	if len(excluded) == 0 {
		return "no speaker node is known"
	}
	names := make([]string, 0, len(excluded))
	for n := range excluded {
		names = append(names, n)
	}
	sort.Strings(names)
	reason := "no eligible node:"
	for _, n := range names {
		reason += " " + n + " (" + excluded[n] + ")"
	}
	return reason
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
