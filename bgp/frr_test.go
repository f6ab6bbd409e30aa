package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// Addressing of the test topology:
//
//	client 10.78.0.2 ── router 10.78.0.1 | 10.77.0.1, fd00:77::1 ── switch (bridge) ── node i 10.77.0.1i, fd00:77::1i
//
// The router runs FRR (AS 64500); each node runs a Speaker in a helper
// process. Service IPs come from 198.51.100.0/24 and 2001:db8:100::/64.
const (
	routerASN = 64500
	holdTime  = 90 * time.Second
)

var (
	routerV4 = netip.MustParseAddr("10.77.0.1")
	routerV6 = netip.MustParseAddr("fd00:77::1")
)

func nodeV4(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 77, 0, byte(11 + i)}) }
func nodeV6(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fd00:77::%d", 11+i)) }

type topology struct {
	router, client string
	nodes          []string
	frr            *frr
}

// newTopology builds the namespaces, links and FRR. neighbors is the body
// of FRR's "router bgp" section after the common settings, and
// addressFamilies the address-family sections.
func newTopology(t testing.TB, nodes int, neighbors, addressFamilies string) *topology {
	t.Helper()
	sfx := uniqueSuffix(t)
	tp := &topology{
		router: addNetns(t, "ilbr-"+sfx),
		client: addNetns(t, "ilbc-"+sfx),
	}
	sw := addNetns(t, "ilbs-"+sfx)
	nsRun(t, sw, "ip", "link", "add", "br0", "type", "bridge")
	nsRun(t, sw, "ip", "link", "set", "br0", "up")
	plug := func(ns, ifname, port string) {
		veth(t, ns, ifname, sw, port)
		nsRun(t, sw, "ip", "link", "set", port, "master", "br0")
	}
	plug(tp.router, "eth0", "p0")
	nsRun(t, tp.router, "ip", "addr", "add", "10.77.0.1/24", "dev", "eth0")
	nsRun(t, tp.router, "ip", "addr", "add", "fd00:77::1/64", "dev", "eth0", "nodad")
	nsRun(t, tp.router, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	for i := range nodes {
		ns := addNetns(t, fmt.Sprintf("ilbn%d-%s", i+1, sfx))
		tp.nodes = append(tp.nodes, ns)
		plug(ns, "eth0", fmt.Sprintf("p%d", i+1))
		nsRun(t, ns, "ip", "addr", "add", nodeV4(i).String()+"/24", "dev", "eth0")
		nsRun(t, ns, "ip", "addr", "add", nodeV6(i).String()+"/64", "dev", "eth0", "nodad")
		nsRun(t, ns, "ip", "route", "add", "default", "via", routerV4.String())
	}
	veth(t, tp.router, "eth1", tp.client, "eth0")
	nsRun(t, tp.router, "ip", "addr", "add", "10.78.0.1/24", "dev", "eth1")
	nsRun(t, tp.client, "ip", "addr", "add", "10.78.0.2/24", "dev", "eth0")
	nsRun(t, tp.client, "ip", "route", "add", "default", "via", "10.78.0.1")

	conf := fmt.Sprintf(`frr defaults traditional
hostname router
!
router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
%s
%s
exit
!
`, routerASN, routerV4, neighbors, addressFamilies)
	tp.frr = startFRR(t, tp.router, conf)
	return tp
}

func (tp *topology) waitNeighbor(t testing.TB, addr netip.Addr, state string) frrNeighbor {
	t.Helper()
	var n frrNeighbor
	waitFor(t, 60*time.Second, fmt.Sprintf("FRR neighbor %s %s", addr, state), func() error {
		var ok bool
		n, ok = tp.frr.neighbors(t)[addr.String()]
		if !ok {
			return fmt.Errorf("FRR has no neighbor %s", addr)
		}
		if n.State != state {
			return fmt.Errorf("state %s", n.State)
		}
		return nil
	})
	return n
}

func (tp *topology) waitNextHops(t testing.TB, p netip.Prefix, want ...string) {
	t.Helper()
	slices.Sort(want)
	waitFor(t, 30*time.Second, fmt.Sprintf("FRR next hops of %s = %v", p, want), func() error {
		if got := tp.frr.nextHops(t, p); !slices.Equal(got, want) {
			return fmt.Errorf("next hops %v", got)
		}
		return nil
	})
}

func community(asn, v uint32) uint32 { return asn<<16 | v }

func TestFRR(t *testing.T) {
	const password = "s3cret"
	neighbors := fmt.Sprintf(` neighbor %s remote-as 64501
 neighbor %s remote-as 64502
 neighbor %s remote-as %d
 neighbor %s password %s
 neighbor %s remote-as 64501`,
		nodeV4(0), nodeV4(1), nodeV4(2), routerASN, nodeV4(2), password, nodeV6(0))
	afs := fmt.Sprintf(` address-family ipv4 unicast
  neighbor %s activate
  neighbor %s activate
  neighbor %s activate
  maximum-paths 8
  maximum-paths ibgp 8
 exit-address-family
 address-family ipv6 unicast
  neighbor %s activate
  maximum-paths 8
 exit-address-family`, nodeV4(0), nodeV4(1), nodeV4(2), nodeV6(0))
	tp := newTopology(t, 3, neighbors, afs)

	n1 := startHelper(t, tp.nodes[0], "node1", nodeV4(0))
	n2 := startHelper(t, tp.nodes[1], "node2", nodeV4(1))
	n3 := startHelper(t, tp.nodes[2], "node3", nodeV4(2))
	ebgp1 := Peer{Addr: routerV4, ASN: routerASN, MyASN: 64501, HoldTime: holdTime}
	ebgp2 := Peer{Addr: routerV4, ASN: routerASN, MyASN: 64502, HoldTime: holdTime}
	ibgp3 := Peer{Addr: routerV4, ASN: routerASN, MyASN: routerASN, HoldTime: holdTime, Password: "wrong"}
	n1.setPeers(t, ebgp1)
	n2.setPeers(t, ebgp2)
	n3.setPeers(t, ibgp3)

	svc := netip.MustParsePrefix("198.51.100.10/32")
	svcV6 := netip.MustParsePrefix("2001:db8:100::10/128")
	svcIBGP := netip.MustParsePrefix("198.51.100.20/32")

	t.Run("sessions established", func(t *testing.T) {
		tp.waitNeighbor(t, nodeV4(0), "Established")
		tp.waitNeighbor(t, nodeV4(1), "Established")
		waitFor(t, 10*time.Second, "speaker reports the session up", func() error {
			s := n1.must(t, helperCmd{Op: "sessions"}).Sessions
			if len(s) != 1 || s[0].Peer != routerV4 || !s[0].Up || s[0].State != "established" {
				return fmt.Errorf("sessions %+v", s)
			}
			return nil
		})
		if !strings.Contains(n1.stderr.String(), "BGP session established") {
			t.Errorf("no session log line in:\n%s", n1.stderr.String())
		}
	})

	t.Run("wrong password keeps the session down with a clear log line", func(t *testing.T) {
		waitFor(t, 30*time.Second, "password warning in node3's log", func() error {
			if !strings.Contains(n3.stderr.String(), "TCP MD5 password is set") {
				return fmt.Errorf("not logged yet")
			}
			return nil
		})
		// Let a few more attempts fail.
		time.Sleep(3 * time.Second)
		if st := tp.frr.neighbors(t)[nodeV4(2).String()]; st.State == "Established" || st.ConnectionsEstablished != 0 {
			t.Fatalf("session with a wrong password: %+v", st)
		}
		if s := n3.must(t, helperCmd{Op: "sessions"}).Sessions; len(s) != 1 || s[0].Up {
			t.Fatalf("speaker reports %+v with a wrong password", s)
		}
		t.Logf("log line: %s", grepLine(n3.stderr.String(), "TCP MD5"))
	})

	t.Run("ECMP: one next hop per advertising node, with communities", func(t *testing.T) {
		ad := Advertisement{Prefix: svc, LocalPref: 300, Communities: []uint32{community(64500, 100)}}
		n1.setAds(t, ad)
		n2.setAds(t, ad)
		tp.waitNextHops(t, svc, nodeV4(0).String(), nodeV4(1).String())
		for _, p := range tp.frr.route(t, svc) {
			if !p.Multipath {
				t.Errorf("path via %v not multipath", p.Nexthops)
			}
			if p.Community.String != "64500:100" {
				t.Errorf("path via %v: community %q, want 64500:100", p.Nexthops, p.Community.String)
			}
			if p.LocalPref == 300 {
				t.Errorf("path via %v: local-pref 300 sent on an eBGP session", p.Nexthops)
			}
		}
		// Idempotent: the same set again sends no UPDATE.
		before := updatesSent(t, n1)
		n1.setAds(t, ad)
		time.Sleep(500 * time.Millisecond)
		if after := updatesSent(t, n1); after != before {
			t.Errorf("re-setting the same advertisements sent %d UPDATEs", after-before)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		body := n1.must(t, helperCmd{Op: "metrics"}).Body
		for _, want := range []string{
			`metallb_bgp_session_up{peer="10.77.0.1:179"} 1`,
			`metallb_bgp_announced_prefixes_total{peer="10.77.0.1:179"} 1`,
			`metallb_bgp_pending_prefixes_total{peer="10.77.0.1:179"} 1`,
			`metallb_bgp_updates_total{peer="10.77.0.1:179"}`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %q:\n%s", want, body)
			}
		}
	})

	t.Run("forwarding from a client through the router", func(t *testing.T) {
		for i, h := range []*helper{n1, n2} {
			nsRun(t, tp.nodes[i], "ip", "addr", "add", svc.String(), "dev", "lo")
			h.must(t, helperCmd{Op: "http", Addr: netip.AddrPortFrom(svc.Addr(), 8080).String(), Body: h.name})
		}
		waitFor(t, 30*time.Second, "zebra installs the ECMP route", func() error {
			out := nsRun(t, tp.router, "ip", "route", "show", svc.Addr().String())
			if !strings.Contains(out, "proto bgp") || !strings.Contains(out, nodeV4(0).String()) || !strings.Contains(out, nodeV4(1).String()) {
				return fmt.Errorf("kernel route: %q", out)
			}
			return nil
		})
		client := startHelper(t, tp.client, "client", netip.MustParseAddr("10.78.0.2"))
		got := client.must(t, helperCmd{Op: "get", Addr: "http://" + netip.AddrPortFrom(svc.Addr(), 8080).String() + "/"}).Body
		if got != "node1" && got != "node2" {
			t.Fatalf("client got %q, want node1 or node2", got)
		}
		t.Logf("client reached %s via the router", got)
	})

	t.Run("changing communities takes effect", func(t *testing.T) {
		n1.setAds(t, Advertisement{Prefix: svc, Communities: []uint32{community(64500, 200), community(64500, 201)}})
		waitFor(t, 30*time.Second, "new communities on node1's path", func() error {
			for _, p := range tp.frr.route(t, svc) {
				if len(p.Nexthops) > 0 && p.Nexthops[0].IP == nodeV4(0).String() {
					if p.Community.String == "64500:200 64500:201" {
						return nil
					}
					return fmt.Errorf("community %q", p.Community.String)
				}
			}
			return fmt.Errorf("no path via node1")
		})
		tp.waitNextHops(t, svc, nodeV4(0).String(), nodeV4(1).String())
	})

	t.Run("iBGP with password and local-pref", func(t *testing.T) {
		fixed := ibgp3
		fixed.Password = password
		n3.setPeers(t, fixed)
		tp.waitNeighbor(t, nodeV4(2), "Established")
		n3.setAds(t, Advertisement{Prefix: svcIBGP, LocalPref: 250, Communities: []uint32{community(64500, 300)}})
		tp.waitNextHops(t, svcIBGP, nodeV4(2).String())
		p := tp.frr.route(t, svcIBGP)[0]
		if p.LocalPref != 250 || p.Community.String != "64500:300" {
			t.Fatalf("iBGP path: local-pref %d community %q, want 250 and 64500:300", p.LocalPref, p.Community.String)
		}
	})

	t.Run("new IPv6 peer without resetting the IPv4 session; IPv6 prefix", func(t *testing.T) {
		before := tp.frr.neighbors(t)[nodeV4(0).String()]
		n1.setPeers(t, ebgp1, Peer{Addr: routerV6, ASN: routerASN, MyASN: 64501, HoldTime: holdTime})
		n1.setAds(t,
			Advertisement{Prefix: svc, Communities: []uint32{community(64500, 200), community(64500, 201)}},
			Advertisement{Prefix: svcV6, Communities: []uint32{community(64500, 600)}})
		tp.waitNeighbor(t, nodeV6(0), "Established")
		tp.waitNextHops(t, svcV6, nodeV6(0).String())
		if c := tp.frr.route(t, svcV6)[0].Community.String; c != "64500:600" {
			t.Errorf("IPv6 path community %q", c)
		}
		// The IPv6 prefix must not leak to the IPv4 session, nor IPv4 to IPv6.
		if nh := tp.frr.nextHops(t, svc); !slices.Equal(nh, []string{nodeV4(0).String(), nodeV4(1).String()}) {
			t.Errorf("IPv4 next hops after adding the IPv6 peer: %v", nh)
		}
		after := tp.frr.neighbors(t)[nodeV4(0).String()]
		// FRR derives the epoch from "now - uptime", so it may move by a
		// second; a reset would move it by the seconds this test took.
		drift := after.UptimeEstablishedEpoch - before.UptimeEstablishedEpoch
		if after.State != "Established" || after.ConnectionsEstablished != before.ConnectionsEstablished ||
			after.ConnectionsDropped != before.ConnectionsDropped || drift < -1 || drift > 1 {
			t.Fatalf("IPv4 session was reset: before %+v after %+v", before, after)
		}
	})

	t.Run("changing one peer resets only its session", func(t *testing.T) {
		nb := tp.frr.neighbors(t)
		v4, v6 := nb[nodeV4(0).String()], nb[nodeV6(0).String()]
		n1.setPeers(t, ebgp1, Peer{Addr: routerV6, ASN: routerASN, MyASN: 64501, HoldTime: 60 * time.Second})
		waitFor(t, 60*time.Second, "IPv6 session re-established", func() error {
			n := tp.frr.neighbors(t)[nodeV6(0).String()]
			if n.State != "Established" || n.ConnectionsEstablished != v6.ConnectionsEstablished+1 {
				return fmt.Errorf("%+v", n)
			}
			return nil
		})
		tp.waitNextHops(t, svcV6, nodeV6(0).String())
		if n := tp.frr.neighbors(t)[nodeV4(0).String()]; n.ConnectionsEstablished != v4.ConnectionsEstablished || n.ConnectionsDropped != v4.ConnectionsDropped {
			t.Fatalf("IPv4 session was reset: before %+v after %+v", v4, n)
		}
	})

	t.Run("withdrawal", func(t *testing.T) {
		n2.setAds(t)
		tp.waitNextHops(t, svc, nodeV4(0).String())
	})

	t.Run("shutdown withdraws before the hold time", func(t *testing.T) {
		start := time.Now()
		n1.must(t, helperCmd{Op: "shutdown"})
		tp.waitNextHops(t, svc)
		tp.waitNextHops(t, svcV6)
		took := time.Since(start)
		if took > holdTime/3 {
			t.Fatalf("routes withdrawn after %s, hold time is %s", took, holdTime)
		}
		n := tp.frr.neighbors(t)[nodeV4(0).String()]
		if n.State == "Established" {
			t.Errorf("session still established after shutdown")
		}
		t.Logf("routes withdrawn %s after Shutdown; FRR: last reset due to %q", took, n.LastResetDueTo)
		if !strings.Contains(strings.ToLower(n.LastResetDueTo), "notification") {
			t.Errorf("FRR's last reset reason %q: want a NOTIFICATION (cease)", n.LastResetDueTo)
		}
	})
}

func updatesSent(t testing.TB, h *helper) uint64 {
	t.Helper()
	var n uint64
	for _, s := range h.must(t, helperCmd{Op: "sessions"}).Sessions {
		n += s.UpdatesSent
	}
	return n
}

func grepLine(s, substr string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}
