package controller

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/ipam"
)

// Annotations understood on Services, under MetalLB's historical prefix and its newer one.
var (
	poolAnnotations      = []string{"metallb.universe.tf/address-pool", "metallb.io/address-pool"}
	ipsAnnotations       = []string{"metallb.universe.tf/loadBalancerIPs", "metallb.io/loadBalancerIPs"}
	sharingAnnotations   = []string{"metallb.universe.tf/allow-shared-ip", "metallb.io/allow-shared-ip"}
	errRequestedFamilies = fmt.Errorf("requested addresses do not match the Service's IP families")
)

func annotation(svc *corev1.Service, names []string) string {
	for _, n := range names {
		if v, ok := svc.Annotations[n]; ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// allocationInput turns a Service into what the allocator needs: who it is, how it may share,
// and what it asks for.
func allocationInput(svc *corev1.Service) (ipam.Service, ipam.Request, error) {
	s := ipam.Service{
		Key:        svc.Namespace + "/" + svc.Name,
		SharingKey: annotation(svc, sharingAnnotations),
	}
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		// Local Services may only share an IP with Services that select the same pods, because
		// the announcing node must have an endpoint of every Service on the IP.
		s.BackendKey = labels.Set(svc.Spec.Selector).String()
	}
	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		s.Ports = append(s.Ports, ipam.Port{Protocol: proto, Port: p.Port})
	}

	req := ipam.Request{Pool: annotation(svc, poolAnnotations)}
	families := svc.Spec.IPFamilies
	if len(families) == 0 {
		families = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	for _, f := range families {
		switch f {
		case corev1.IPv4Protocol:
			req.Families = append(req.Families, ipam.IPv4)
		case corev1.IPv6Protocol:
			req.Families = append(req.Families, ipam.IPv6)
		}
	}

	var requested []string
	if v := annotation(svc, ipsAnnotations); v != "" {
		requested = strings.Split(v, ",")
	} else if svc.Spec.LoadBalancerIP != "" {
		requested = []string{svc.Spec.LoadBalancerIP}
	}
	seen := map[ipam.Family]bool{}
	for _, r := range requested {
		r = strings.TrimSpace(r)
		ip, err := netip.ParseAddr(r)
		if err != nil {
			return s, req, fmt.Errorf("requested address %q is not an IP address", r)
		}
		ip = ip.Unmap()
		fam := familyOf(ip)
		if seen[fam] {
			return s, req, fmt.Errorf("more than one IPv%d address requested (%s)", fam, strings.Join(requested, ","))
		}
		seen[fam] = true
		req.IPs = append(req.IPs, ip)
	}
	if len(req.IPs) > 0 {
		for _, ip := range req.IPs {
			if !containsFamily(req.Families, familyOf(ip)) {
				return s, req, fmt.Errorf("%w: %s requested but the Service's ipFamilies are %v", errRequestedFamilies, ip, families)
			}
		}
	}
	return s, req, nil
}

func familyOf(ip netip.Addr) ipam.Family {
	if ip.Is4() {
		return ipam.IPv4
	}
	return ipam.IPv6
}

func containsFamily(fams []ipam.Family, f ipam.Family) bool {
	for _, x := range fams {
		if x == f {
			return true
		}
	}
	return false
}

func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func ingressFor(ips []netip.Addr) []corev1.LoadBalancerIngress {
	out := make([]corev1.LoadBalancerIngress, 0, len(ips))
	for _, ip := range ips {
		out = append(out, corev1.LoadBalancerIngress{IP: ip.String()})
	}
	return out
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}
