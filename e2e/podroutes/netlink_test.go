package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newNetns returns a netlink handle inside a fresh network namespace holding a link with
// 172.31.0.1/24, deleted when the test ends.
func newNetns(t *testing.T) *netlink.Handle {
	t.Helper()
	name := fmt.Sprintf("ironlb-podroutes-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	t.Cleanup(h.Close)
	// A veth pair rather than a dummy link: this kernel has no dummy driver.
	link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pr0"}, PeerName: "pr1"}
	if err := h.LinkAdd(link); err != nil {
		t.Fatalf("add veth link: %v", err)
	}
	peer, err := h.LinkByName("pr1")
	if err != nil {
		t.Fatalf("veth peer: %v", err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		t.Fatalf("peer up: %v", err)
	}
	addr, _ := netlink.ParseAddr("172.31.0.1/24")
	if err := h.AddrAdd(link, addr); err != nil {
		t.Fatalf("add address: %v", err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatalf("link up: %v", err)
	}
	return h
}

// routesIn lists the IPv4 routes of the main table as "dst via gw proto N" or "unreachable dst".
func routesIn(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("list routes: %v", err)
	}
	var out []string
	for _, r := range rs {
		switch {
		case r.Type == unix.RTN_UNREACHABLE:
			out = append(out, "unreachable "+r.Dst.String())
		case r.Gw != nil:
			out = append(out, fmt.Sprintf("%s via %s proto %d", r.Dst, r.Gw, r.Protocol))
		}
	}
	slices.Sort(out)
	return out
}

func TestSyncRoutes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to create a network namespace (CI runs as root)")
	}
	h := newNetns(t)
	cluster := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}
	r := func(dst, via string) route {
		return route{Dst: netip.MustParsePrefix(dst), Via: netip.MustParseAddr(via)}
	}
	// A route someone else owns inside the cluster CIDR must survive every sync.
	_, foreign, _ := net.ParseCIDR("10.244.200.0/24")
	if err := h.RouteAdd(&netlink.Route{Dst: foreign, Gw: net.ParseIP("172.31.0.9")}); err != nil {
		t.Fatalf("add foreign route: %v", err)
	}
	steps := []struct {
		name string
		want []route
		have []string
	}{
		{"first sync", []route{r("10.244.1.0/24", "172.31.0.2"), r("10.244.2.0/24", "172.31.0.3")}, []string{
			"10.244.1.0/24 via 172.31.0.2 proto 77", "10.244.2.0/24 via 172.31.0.3 proto 77",
			"10.244.200.0/24 via 172.31.0.9 proto 3", "unreachable 10.244.0.0/16"}},
		{"node moved, node gone", []route{r("10.244.1.0/24", "172.31.0.4")}, []string{
			"10.244.1.0/24 via 172.31.0.4 proto 77",
			"10.244.200.0/24 via 172.31.0.9 proto 3", "unreachable 10.244.0.0/16"}},
		{"idempotent", []route{r("10.244.1.0/24", "172.31.0.4")}, []string{
			"10.244.1.0/24 via 172.31.0.4 proto 77",
			"10.244.200.0/24 via 172.31.0.9 proto 3", "unreachable 10.244.0.0/16"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := syncRoutes(h, st.want, cluster); err != nil {
				t.Fatalf("syncRoutes: %v", err)
			}
			if got := routesIn(t, h); !slices.Equal(got, st.have) {
				t.Errorf("routes:\n got %q\nwant %q", got, st.have)
			}
		})
	}
	t.Run("unreachable gateway fails only its route", func(t *testing.T) {
		err := syncRoutes(h, []route{r("10.244.1.0/24", "172.31.0.4"), r("10.244.3.0/24", "192.0.2.1")}, cluster)
		if err == nil {
			t.Fatal("syncRoutes with an off-link gateway: no error")
		}
		if got := routesIn(t, h); !slices.Contains(got, "10.244.1.0/24 via 172.31.0.4 proto 77") {
			t.Errorf("routes after a partial failure: %q", got)
		}
	})
}
