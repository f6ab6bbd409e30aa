package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// routeProtocol marks the routes podroutes owns (rtnetlink protocol number, shown by `ip route`
// as "proto 77"), so stale ones can be removed without touching anyone else's.
const routeProtocol = 77

// syncRoutes makes the main routing table hold exactly the wanted routes among those marked
// with routeProtocol, plus an unreachable route per cluster CIDR. It carries on past errors (a
// link that is down fails only its own routes) and returns them all.
func syncRoutes(h *netlink.Handle, want []route, clusterCIDRs []netip.Prefix) error {
	var errs []error
	for _, c := range clusterCIDRs {
		r := &netlink.Route{Dst: ipNet(c), Type: unix.RTN_UNREACHABLE, Protocol: routeProtocol}
		if err := h.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("unreachable %s: %w", c, err))
		}
	}
	keep := map[netip.Prefix]bool{}
	for _, w := range want {
		keep[w.Dst] = true
		r := &netlink.Route{Dst: ipNet(w.Dst), Gw: net.IP(w.Via.AsSlice()), Protocol: routeProtocol}
		if err := h.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", w, err))
		}
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		have, err := h.RouteListFiltered(family, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			errs = append(errs, fmt.Errorf("list routes: %w", err))
			continue
		}
		for _, r := range have {
			if r.Dst == nil || r.Type == unix.RTN_UNREACHABLE {
				continue
			}
			p, ok := netipx(r.Dst)
			if ok && keep[p] {
				continue
			}
			if err := h.RouteDel(&r); err != nil {
				errs = append(errs, fmt.Errorf("delete stale route %s: %w", r.Dst, err))
			}
		}
	}
	return errors.Join(errs...)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func netipx(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
