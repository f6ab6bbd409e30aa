// Package svcinfo reads the facts about a Service that both the controller and the speaker
// need: whether ironlb handles it, and the addresses in its status.
package svcinfo

import (
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// Handled reports whether svc is a LoadBalancer Service of the given loadBalancerClass ("" for
// Services without a class).
func Handled(svc *corev1.Service, lbClass string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	class := ""
	if svc.Spec.LoadBalancerClass != nil {
		class = *svc.Spec.LoadBalancerClass
	}
	return class == lbClass
}

// StatusIPs returns the addresses in the Service's .status.loadBalancer.ingress, sorted and
// unmapped, ignoring hostnames and anything unparsable.
func StatusIPs(svc *corev1.Service) []netip.Addr {
	ips := IngressIPs(svc)
	SortAddrs(ips)
	return ips
}

// IngressIPs returns the addresses in the Service's .status.loadBalancer.ingress in the order
// written there (unmapped, ignoring hostnames and anything unparsable). The order matters to
// the layer-2 election: the first address is the key that picks the node announcing all of
// them, as in MetalLB.
func IngressIPs(svc *corev1.Service) []netip.Addr {
	var ips []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(ing.IP); err == nil {
			ips = append(ips, ip.Unmap())
		}
	}
	return ips
}

// SortAddrs sorts addresses in place, IPv4 before IPv6.
func SortAddrs(ips []netip.Addr) {
	sort.Slice(ips, func(i, j int) bool { return ips[i].Less(ips[j]) })
}
