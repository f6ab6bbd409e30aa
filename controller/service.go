package controller

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/ipam"
)

// Annotations understood on Services. The metallb.io/ name wins over MetalLB's historical
// metallb.universe.tf/ one when both are set, as in current MetalLB.
var (
	poolAnnotations    = []string{"metallb.io/address-pool", "metallb.universe.tf/address-pool"}
	ipsAnnotations     = []string{"metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"}
	sharingAnnotations = []string{"metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"}
)

// The annotation the controller writes with the pool a Service's addresses come from; current
// MetalLB writes the same and removes the deprecated name.
const (
	poolAllocatedAnnotation           = "metallb.io/ip-allocated-from-pool"
	deprecatedPoolAllocatedAnnotation = "metallb.universe.tf/ip-allocated-from-pool"
)

// annotation returns the value of the first of names that is set, and that name.
func annotation(svc *corev1.Service, names []string) (value, name string) {
	for _, n := range names {
		if v, ok := svc.Annotations[n]; ok {
			return strings.TrimSpace(v), n
		}
	}
	return "", ""
}

// serviceIdentity is who a Service is to the allocator and how it may share an address. It
// cannot fail, so the addresses of a Service whose request is malformed can still be held.
func serviceIdentity(svc *corev1.Service) ipam.Service {
	sharing, _ := annotation(svc, sharingAnnotations)
	s := ipam.Service{
		Key:        svc.Namespace + "/" + svc.Name,
		SharingKey: sharing,
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
	return s
}

// allocRequest is what a Service asks for.
type allocRequest struct {
	ipam.Request
	// PreferDualStack: both families if a pool has them, else one.
	PreferDualStack bool
}

// allocationRequest reads what a Service asks for: pool, addresses, families. A malformed or
// contradictory request is an error naming the field and value.
func allocationRequest(svc *corev1.Service) (allocRequest, error) {
	var req allocRequest
	req.Pool, _ = annotation(svc, poolAnnotations)
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
	req.PreferDualStack = svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy == corev1.IPFamilyPolicyPreferDualStack && len(req.Families) == 2

	ipsValue, ipsName := annotation(svc, ipsAnnotations)
	var requested []string
	switch {
	case ipsValue != "" && svc.Spec.LoadBalancerIP != "":
		return req, fmt.Errorf("service can not have both %s (%q) and spec.loadBalancerIP (%q)", ipsName, ipsValue, svc.Spec.LoadBalancerIP)
	case ipsValue != "":
		requested = strings.Split(ipsValue, ",")
	case svc.Spec.LoadBalancerIP != "":
		requested = []string{svc.Spec.LoadBalancerIP}
		ipsName = "spec.loadBalancerIP"
	}
	seen := map[ipam.Family]bool{}
	for _, r := range requested {
		r = strings.TrimSpace(r)
		ip, err := netip.ParseAddr(r)
		if err != nil {
			return req, fmt.Errorf("invalid %s %q: %q is not an IP address", ipsName, ipsValue+svc.Spec.LoadBalancerIP, r)
		}
		ip = ip.Unmap()
		fam := familyOf(ip)
		if seen[fam] {
			return req, fmt.Errorf("invalid %s %q: more than one %s address", ipsName, ipsValue, fam)
		}
		seen[fam] = true
		req.IPs = append(req.IPs, ip)
	}
	if len(req.IPs) > 0 {
		var want []string
		for _, f := range families {
			want = append(want, string(f))
		}
		for _, ip := range req.IPs {
			if !containsFamily(req.Families, familyOf(ip)) {
				return req, fmt.Errorf("requested address %s does not match the Service's ipFamilies %v", ip, want)
			}
		}
		if len(req.IPs) != len(req.Families) {
			// As MetalLB: the requested addresses must cover every family of the Service.
			return req, fmt.Errorf("requested address %s does not cover the Service's ipFamilies %v: request one address of each family, or none", joinAddrs(req.IPs), want)
		}
		req.PreferDualStack = false
	}
	return req, nil
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
