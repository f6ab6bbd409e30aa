package main

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// route is one pod CIDR reached through another node's address.
type route struct {
	Dst netip.Prefix
	Via netip.Addr
}

func (r route) String() string { return r.Dst.String() + " via " + r.Via.String() }

// desiredRoutes returns, sorted, the route to every other node's pod CIDRs that lie inside the
// cluster CIDRs, through that node's InternalIP of the same family. Nodes without a pod CIDR yet
// or without an address of that family are skipped until they get one.
func desiredRoutes(self string, nodes []*corev1.Node, clusterCIDRs []netip.Prefix) []route {
	var out []route
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			dst, err := netip.ParsePrefix(c)
			if err != nil || !insideAny(dst, clusterCIDRs) {
				continue
			}
			if via, ok := internalIP(n, dst.Addr().Is4()); ok {
				out = append(out, route{Dst: dst.Masked(), Via: via})
			}
		}
	}
	slices.SortFunc(out, func(a, b route) int { return a.Dst.Addr().Compare(b.Dst.Addr()) })
	return out
}

func insideAny(p netip.Prefix, in []netip.Prefix) bool {
	for _, c := range in {
		if c.Bits() <= p.Bits() && c.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func internalIP(n *corev1.Node, v4 bool) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err == nil && ip.Is4() == v4 {
			return ip, true
		}
	}
	return netip.Addr{}, false
}
