package speaker

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/internal/svcinfo"
)

// maxNamedServices is how many affected Services a refusal names; the
// others are counted.
const maxNamedServices = 10

// lostAddress is a status address a new configuration would take away.
type lostAddress struct {
	Service string // namespace/name
	IP      netip.Addr
	Why     string
}

// takenAway returns, sorted by Service and IP, the addresses in the status of
// the Services ironlb handles that cfg would leave in no pool, or turn into a
// .0/.255 address of an avoid-buggy-ips pool, or put in another pool than the
// Service's other address: MetalLB v0.12's speaker refuses such a
// configuration ("service has no configuration under new config"), and so
// does the controller. Cost: O(services × pools).
func takenAway(cfg *config.Config, svcs []*corev1.Service, lbClass string) []lostAddress {
	var lost []lostAddress
	for _, svc := range svcs {
		if !svcinfo.Handled(svc, lbClass) {
			continue
		}
		var home *config.Pool // of the Service's first address in a pool
		var homeIP netip.Addr
		for _, ip := range svcinfo.StatusIPs(svc) {
			why := ""
			switch p := cfg.PoolFor(ip); {
			case p == nil:
				why = "in no pool"
			case p.AvoidBuggyIPs && buggy(ip):
				why = fmt.Sprintf("a .0/.255 address of pool %q, which has avoid-buggy-ips", p.Name)
			case home != nil && p != home:
				// As the controller: one Service's addresses come from one pool.
				why = fmt.Sprintf("in pool %q while %s is in pool %q", p.Name, homeIP, home.Name)
			default:
				if home == nil {
					home, homeIP = p, ip
				}
				continue
			}
			lost = append(lost, lostAddress{Service: svc.Namespace + "/" + svc.Name, IP: ip, Why: why})
		}
	}
	slices.SortFunc(lost, func(a, b lostAddress) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return a.IP.Compare(b.IP)
	})
	return lost
}

// buggy: the IPv4 addresses that avoid-buggy-ips skips.
func buggy(ip netip.Addr) bool {
	if !ip.Is4() {
		return false
	}
	last := ip.As4()[3]
	return last == 0 || last == 255
}

// describeLost names the first maxNamedServices affected Services and
// counts the rest, for the log and the Event.
func describeLost(lost []lostAddress) string {
	var b strings.Builder
	services := 0
	prev := ""
	for _, l := range lost {
		if l.Service != prev {
			services++
			prev = l.Service
		}
		if services > maxNamedServices {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s would be %s", l.Service, l.IP, l.Why)
	}
	if services > maxNamedServices {
		fmt.Fprintf(&b, "; and %d more Services", services-maxNamedServices)
	}
	return fmt.Sprintf("%d Services would lose an address (%s)", services, b.String())
}
