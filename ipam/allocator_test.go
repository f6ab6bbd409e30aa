package ipam

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"go4.org/netipx"
)

func TestLowestFirst(t *testing.T) {
	a := newAlloc(t, mkPool(t, "default", true, false, "172.18.255.200-172.18.255.250"))
	for i := range 5 {
		mustAlloc(t, a, svc(fmt.Sprintf("ns/s%d", i)), Request{}, "default", fmt.Sprintf("172.18.255.%d", 200+i))
	}
	a.Release("ns/s0")
	a.Release("ns/s0") // idempotent
	a.Release("ns/s2")
	mustAlloc(t, a, svc("ns/new1"), Request{}, "default", "172.18.255.200")
	mustAlloc(t, a, svc("ns/new2"), Request{}, "default", "172.18.255.202")
	mustAlloc(t, a, svc("ns/new3"), Request{}, "default", "172.18.255.205")
	if _, ok := a.Get("ns/s0"); ok {
		t.Error("released service still has an assignment")
	}
}

func TestRequestedIP(t *testing.T) {
	pools := []Pool{
		mkPool(t, "a", true, false, "10.0.0.0/29"),
		mkPool(t, "b", false, true, "10.0.1.0/24"),
	}
	tests := []struct {
		name      string
		setup     func(t *testing.T, a *Allocator)
		svc       Service
		req       Request
		wantErr   error
		fragments []string
		wantPool  string
		want      []string
	}{
		{name: "free in pool", svc: svc("ns/x"), req: Request{IPs: addrs("10.0.0.5")}, wantPool: "a", want: []string{"10.0.0.5"}},
		{name: "free in auto-assign false pool", svc: svc("ns/x"), req: Request{IPs: addrs("10.0.1.7")}, wantPool: "b", want: []string{"10.0.1.7"}},
		{name: "in named pool", svc: svc("ns/x"), req: Request{Pool: "a", IPs: addrs("10.0.0.1")}, wantPool: "a", want: []string{"10.0.0.1"}},
		{name: "in no pool", svc: svc("ns/x"), req: Request{IPs: addrs("192.168.0.1")},
			wantErr: ErrNotInPool, fragments: []string{"192.168.0.1", "in no pool"}},
		{name: "not in named pool", svc: svc("ns/x"), req: Request{Pool: "a", IPs: addrs("10.0.1.3")},
			wantErr: ErrNotInPool, fragments: []string{"10.0.1.3", `not in pool "a"`, `pool "b"`}},
		{name: "unknown named pool", svc: svc("ns/x"), req: Request{Pool: "zz", IPs: addrs("10.0.1.3")},
			wantErr: ErrNoSuchPool, fragments: []string{`"zz"`}},
		{name: "buggy address of avoid-buggy pool", svc: svc("ns/x"), req: Request{IPs: addrs("10.0.1.255")},
			wantErr: ErrNotInPool, fragments: []string{"10.0.1.255", "avoids"}},
		{name: "in use, no sharing", setup: func(t *testing.T, a *Allocator) {
			mustAlloc(t, a, svc("ns/other"), Request{IPs: addrs("10.0.0.5")}, "a", "10.0.0.5")
		}, svc: svc("ns/x"), req: Request{IPs: addrs("10.0.0.5")},
			wantErr: ErrInUse, fragments: []string{"10.0.0.5 is in use by ns/other, which does not share it", "no sharing key on ns/other"}},
		{name: "in use, shareable", setup: func(t *testing.T, a *Allocator) {
			mustAlloc(t, a, shared("ns/other", "k", "", tcp80), Request{IPs: addrs("10.0.0.5")}, "a", "10.0.0.5")
		}, svc: shared("ns/x", "k", "", tcp443), req: Request{IPs: addrs("10.0.0.5")}, wantPool: "a", want: []string{"10.0.0.5"}},
		{name: "two IPv4 requested", svc: svc("ns/x"), req: Request{IPs: addrs("10.0.0.1", "10.0.0.2")}, wantErr: ErrInvalid},
		{name: "requested family not wanted", svc: svc("ns/x"), req: Request{IPs: addrs("10.0.0.1"), Families: []Family{IPv6}}, wantErr: ErrFamily},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, pools...)
			if tc.setup != nil {
				tc.setup(t, a)
			}
			got, err := a.Allocate(tc.svc, tc.req)
			checkErr(t, err, tc.wantErr, tc.fragments...)
			if tc.wantErr != nil {
				if _, ok := a.Get(tc.svc.Key); ok {
					t.Errorf("failed allocation left an assignment")
				}
				return
			}
			if got.Pool != tc.wantPool || !slices.Equal(got.IPs, addrs(tc.want...)) {
				t.Errorf("got %v, want %s %v", got, tc.wantPool, tc.want)
			}
		})
	}
}

func TestPoolChoice(t *testing.T) {
	tests := []struct {
		name      string
		pools     []Pool
		req       Request
		wantErr   error
		fragments []string
		wantPool  string
		want      []string
	}{
		{name: "auto pools in config order", pools: []Pool{
			mkPool(t, "manual", false, false, "10.0.0.0/30"),
			mkPool(t, "z", true, false, "10.0.2.0/30"),
			mkPool(t, "y", true, false, "10.0.1.0/30"),
		}, wantPool: "z", want: []string{"10.0.2.0"}},
		{name: "named auto-assign false pool", pools: []Pool{
			mkPool(t, "manual", false, false, "10.0.0.0/30"),
			mkPool(t, "z", true, false, "10.0.2.0/30"),
		}, req: Request{Pool: "manual"}, wantPool: "manual", want: []string{"10.0.0.0"}},
		{name: "unknown pool", pools: []Pool{mkPool(t, "z", true, false, "10.0.2.0/30")},
			req: Request{Pool: "nope"}, wantErr: ErrNoSuchPool, fragments: []string{`"nope"`}},
		{name: "only auto-assign false pools", pools: []Pool{mkPool(t, "manual", false, false, "10.0.0.0/30")},
			wantErr: ErrNoSuchPool, fragments: []string{"auto-assign"}},
		{name: "no pools", wantErr: ErrNoSuchPool},
		{name: "auto pool skipped for family", pools: []Pool{
			mkPool(t, "v4", true, false, "10.0.0.0/30"),
			mkPool(t, "v6", true, false, "fd00::/126"),
		}, req: Request{Families: []Family{IPv6}}, wantPool: "v6", want: []string{"fd00::"}},
		{name: "no auto pool has the family", pools: []Pool{
			mkPool(t, "v4", true, false, "10.0.0.0/30"),
			mkPool(t, "v4b", true, false, "10.0.1.0/30"),
			mkPool(t, "v6manual", false, false, "fd00::/126"),
		}, req: Request{Families: []Family{IPv6}}, wantErr: ErrFamily, fragments: []string{"IPv6", "v4, v4b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, tc.pools...)
			got, err := a.Allocate(svc("ns/x"), tc.req)
			checkErr(t, err, tc.wantErr, tc.fragments...)
			if tc.wantErr == nil && (got.Pool != tc.wantPool || !slices.Equal(got.IPs, addrs(tc.want...))) {
				t.Errorf("got %v, want %s %v", got, tc.wantPool, tc.want)
			}
		})
	}
}

func TestAvoidBuggyIPs(t *testing.T) {
	tests := []struct {
		name     string
		ranges   []string
		avoid    bool
		wantSize int64
		want     []string // every address, in allocation order
	}{
		{name: "range across a /24 boundary", ranges: []string{"10.0.0.252-10.0.1.2"}, avoid: true, wantSize: 5,
			want: []string{"10.0.0.252", "10.0.0.253", "10.0.0.254", "10.0.1.1", "10.0.1.2"}},
		{name: "without avoid-buggy-ips", ranges: []string{"10.0.0.254-10.0.1.1"}, avoid: false, wantSize: 4,
			want: []string{"10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"}},
		{name: "single buggy address", ranges: []string{"10.0.0.0", "10.0.0.7"}, avoid: true, wantSize: 1,
			want: []string{"10.0.0.7"}},
		{name: "IPv6 unaffected", ranges: []string{"fd00::ff-fd00::100"}, avoid: true, wantSize: 2,
			want: []string{"fd00::ff", "fd00::100"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, mkPool(t, "p", true, tc.avoid, tc.ranges...))
			if st := a.Stats(); st[0].Size.Cmp(big.NewInt(tc.wantSize)) != 0 {
				t.Errorf("size %v, want %d", st[0].Size, tc.wantSize)
			}
			fam := Request{Families: []Family{familyOf(addrs(tc.want[0])[0])}}
			for i, w := range tc.want {
				mustAlloc(t, a, svc(fmt.Sprintf("ns/s%d", i)), fam, "p", w)
			}
			_, err := a.Allocate(svc("ns/extra"), fam)
			checkErr(t, err, ErrPoolExhausted)
		})
	}

	t.Run("/8 is built without materialising its /24s", func(t *testing.T) {
		a := newAlloc(t, mkPool(t, "p", true, true, "10.0.0.0/8"))
		if n := a.pools.list[0].fams[0].free.tree.Len(); n != 1 {
			t.Errorf("%d free blocks, want 1", n)
		}
		if got, want := a.Stats()[0].Size.Int64(), int64(1<<24-2*(1<<16)); got != want {
			t.Errorf("size %d, want %d", got, want)
		}
		mustAlloc(t, a, svc("ns/a"), Request{}, "p", "10.0.0.1")
		mustAlloc(t, a, svc("ns/b"), Request{IPs: addrs("10.200.3.4")}, "p", "10.200.3.4")
		if n := a.pools.list[0].fams[0].free.tree.Len(); n != 2 {
			t.Errorf("%d free blocks after two allocations, want 2", n)
		}
	})
	t.Run("/23 fills 508 addresses, never .0 or .255", func(t *testing.T) {
		a := newAlloc(t, mkPool(t, "p", true, true, "10.0.0.0/23"))
		seen := map[netip.Addr]bool{}
		for i := range 508 {
			got, err := a.Allocate(svc(fmt.Sprintf("ns/s%d", i)), Request{})
			if err != nil {
				t.Fatalf("allocation %d: %v", i, err)
			}
			ip := got.IPs[0]
			if isBuggy(ip) || seen[ip] {
				t.Fatalf("allocation %d got %s (buggy %v, seen %v)", i, ip, isBuggy(ip), seen[ip])
			}
			seen[ip] = true
		}
		_, err := a.Allocate(svc("ns/extra"), Request{})
		checkErr(t, err, ErrPoolExhausted, `no free address in pool "p" for IPv4`)
		// A freed address next to a dropped buggy one is handed out again.
		a.Release("ns/s253") // 10.0.0.254
		mustAlloc(t, a, svc("ns/extra"), Request{}, "p", "10.0.0.254")
	})
}

func TestRangeSize(t *testing.T) {
	// Compare the arithmetic count of buggy addresses with a brute-force one.
	for _, s := range []string{"10.0.0.0/8", "10.0.0.0/24", "10.0.0.1-10.0.0.254", "10.0.0.255-10.0.1.0",
		"0.0.0.0-0.0.1.255", "255.255.255.0-255.255.255.255", "10.0.3.7-10.0.9.200"} {
		r := rng(t, s)
		want := new(big.Int)
		if r.To().As4()[1] == 0 || s != "10.0.0.0/8" { // brute force only the small ones
			n := int64(0)
			for ip := r.From(); ; ip = ip.Next() {
				if !isBuggy(ip) {
					n++
				}
				if ip == r.To() {
					break
				}
			}
			want.SetInt64(n)
		} else {
			want.SetInt64(1<<24 - 2*(1<<16))
		}
		if got := rangeSize(r, true); got.Cmp(want) != 0 {
			t.Errorf("rangeSize(%s) = %v, want %v", s, got, want)
		}
	}
	if got, want := rangeSize(rng(t, "fd00::/64"), true), new(big.Int).Lsh(big.NewInt(1), 64); got.Cmp(want) != 0 {
		t.Errorf("rangeSize(/64) = %v, want %v", got, want)
	}
}

func TestIPv6(t *testing.T) {
	a := newAlloc(t, mkPool(t, "v6", true, true, "fd00:1:2:3::/64"))
	v6 := Request{Families: []Family{IPv6}}
	mustAlloc(t, a, svc("ns/a"), v6, "v6", "fd00:1:2:3::")
	mustAlloc(t, a, svc("ns/b"), v6, "v6", "fd00:1:2:3::1")
	mustAlloc(t, a, svc("ns/c"), Request{IPs: addrs("fd00:1:2:3:ffff:ffff:ffff:ffff")}, "v6", "fd00:1:2:3:ffff:ffff:ffff:ffff")
	mustAlloc(t, a, svc("ns/d"), v6, "v6", "fd00:1:2:3::2")
	_, err := a.Allocate(svc("ns/e"), Request{})
	checkErr(t, err, ErrFamily, `pool "v6" has no IPv4 range`)
	st := a.Stats()
	if want := new(big.Int).Lsh(big.NewInt(1), 64); st[0].Size.Cmp(want) != 0 || st[0].InUse != 4 {
		t.Errorf("stats %v %d, want %v 4", st[0].Size, st[0].InUse, want)
	}
}

func TestDualStack(t *testing.T) {
	both := []Family{IPv4, IPv6}
	t.Run("both families from the same pool", func(t *testing.T) {
		a := newAlloc(t,
			mkPool(t, "v4only", true, false, "10.0.0.0/30"),
			mkPool(t, "ds", true, false, "10.1.0.0/30", "fd00::/126"),
		)
		mustAlloc(t, a, svc("ns/a"), Request{Families: both}, "ds", "10.1.0.0", "fd00::")
		mustAlloc(t, a, svc("ns/b"), Request{Families: []Family{IPv6, IPv4}}, "ds", "fd00::1", "10.1.0.1")
		mustAlloc(t, a, svc("ns/c"), Request{}, "v4only", "10.0.0.0")
		mustAlloc(t, a, svc("ns/d"), Request{IPs: addrs("fd00::3"), Families: both}, "ds", "10.1.0.2", "fd00::3")
	})
	t.Run("named pool lacks a family", func(t *testing.T) {
		a := newAlloc(t, mkPool(t, "v4only", true, false, "10.0.0.0/30"))
		_, err := a.Allocate(svc("ns/a"), Request{Pool: "v4only", Families: both})
		checkErr(t, err, ErrFamily, `pool "v4only" has no IPv6 range`)
	})
	t.Run("requested addresses in different pools", func(t *testing.T) {
		a := newAlloc(t, mkPool(t, "v4", true, false, "10.0.0.0/30"), mkPool(t, "v6", true, false, "fd00::/126"))
		_, err := a.Allocate(svc("ns/a"), Request{IPs: addrs("10.0.0.1", "fd00::1"), Families: both})
		checkErr(t, err, ErrNotInPool, "not in the same pool")
	})
	t.Run("one family exhausted", func(t *testing.T) {
		a := newAlloc(t, mkPool(t, "ds", true, false, "10.1.0.0/31", "fd00::/120"))
		mustAlloc(t, a, svc("ns/a"), Request{Families: both}, "ds", "10.1.0.0", "fd00::")
		mustAlloc(t, a, svc("ns/b"), Request{Families: both}, "ds", "10.1.0.1", "fd00::1")
		_, err := a.Allocate(svc("ns/c"), Request{Pool: "ds", Families: both})
		checkErr(t, err, ErrPoolExhausted, "IPv4")
		if st := a.Stats(); st[0].InUse != 4 {
			t.Errorf("in use %d after failed dual-stack allocation, want 4", st[0].InUse)
		}
	})
	t.Run("single to dual stack stays in the current pool", func(t *testing.T) {
		a := newAlloc(t,
			mkPool(t, "p1", true, false, "10.0.0.0/32", "fd00::/126"),
			mkPool(t, "p2", true, false, "10.0.1.0/30", "fd00:1::/126"),
		)
		mustAlloc(t, a, svc("ns/a"), Request{}, "p1", "10.0.0.0")
		mustAlloc(t, a, svc("ns/b"), Request{}, "p2", "10.0.1.0")
		a.Release("ns/a")
		mustAlloc(t, a, svc("ns/b"), Request{Families: both}, "p2", "10.0.1.0", "fd00:1::")
		mustAlloc(t, a, svc("ns/c"), Request{Families: both}, "p1", "10.0.0.0", "fd00::")
	})
	t.Run("single to dual stack keeps the IPv4 address", func(t *testing.T) {
		a := newAlloc(t, mkPool(t, "ds", true, false, "10.1.0.0/29", "fd00::/120"))
		mustAlloc(t, a, svc("ns/a"), Request{}, "ds", "10.1.0.0")
		mustAlloc(t, a, svc("ns/b"), Request{}, "ds", "10.1.0.1")
		a.Release("ns/a")
		mustAlloc(t, a, svc("ns/b"), Request{Families: both}, "ds", "10.1.0.1", "fd00::")
	})
}

func TestExhaustion(t *testing.T) {
	a := newAlloc(t, mkPool(t, "small", true, false, "10.0.0.1-10.0.0.3"))
	for i := range 3 {
		mustAlloc(t, a, svc(fmt.Sprintf("ns/s%d", i)), Request{}, "small", fmt.Sprintf("10.0.0.%d", i+1))
	}
	for _, req := range []Request{{}, {Pool: "small"}} {
		_, err := a.Allocate(svc("ns/late"), req)
		checkErr(t, err, ErrPoolExhausted, `"small"`, "IPv4")
	}
	a.Release("ns/s1")
	mustAlloc(t, a, svc("ns/late"), Request{}, "small", "10.0.0.2")

	t.Run("several auto pools", func(t *testing.T) {
		a := newAlloc(t, mkPool(t, "p1", true, false, "10.0.0.1"), mkPool(t, "p2", true, false, "10.0.0.2"))
		mustAlloc(t, a, svc("ns/a"), Request{}, "p1", "10.0.0.1")
		mustAlloc(t, a, svc("ns/b"), Request{}, "p2", "10.0.0.2")
		_, err := a.Allocate(svc("ns/c"), Request{})
		checkErr(t, err, ErrPoolExhausted, "p1, p2")
	})
}

func TestSharing(t *testing.T) {
	tests := []struct {
		name      string
		first     Service
		second    Service
		share     bool
		fragments []string // of the error when the second requests the first's address
	}{
		{name: "same key, different ports, both Cluster", first: shared("ns/a", "k", "", tcp80), second: shared("ns/b", "k", "", tcp443), share: true},
		{name: "same key, same port number, other protocol", first: shared("ns/a", "k", "", tcp53), second: shared("ns/b", "k", "", udp53), share: true},
		{name: "same key, same backend", first: shared("ns/a", "k", "app=x", tcp80), second: shared("ns/b", "k", "app=x", tcp443), share: true},
		{name: "port collision", first: shared("ns/a", "k", "", tcp80, tcp443), second: shared("ns/b", "k", "", udp53, tcp443),
			fragments: []string{"in use by ns/a", "port TCP/443 collides"}},
		{name: "key mismatch", first: shared("ns/a", "k1", "", tcp80), second: shared("ns/b", "k2", "", tcp443),
			fragments: []string{"sharing key mismatch"}},
		{name: "first without key", first: shared("ns/a", "", "", tcp80), second: shared("ns/b", "k", "", tcp443),
			fragments: []string{"no sharing key on ns/a"}},
		{name: "second without key", first: shared("ns/a", "k", "", tcp80), second: shared("ns/b", "", "", tcp443),
			fragments: []string{"no sharing key on ns/b"}},
		{name: "different backend keys", first: shared("ns/a", "k", "app=x", tcp80), second: shared("ns/b", "k", "app=y", tcp443),
			fragments: []string{"backend keys differ"}},
		{name: "Local and Cluster", first: shared("ns/a", "k", "app=x", tcp80), second: shared("ns/b", "k", "", tcp443),
			fragments: []string{"backend keys differ"}},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/lowest", func(t *testing.T) {
			a := newAlloc(t, mkPool(t, "p", true, false, "10.0.0.10-10.0.0.20"))
			mustAlloc(t, a, tc.first, Request{}, "p", "10.0.0.10")
			want := "10.0.0.11"
			if tc.share {
				want = "10.0.0.10"
			}
			mustAlloc(t, a, tc.second, Request{}, "p", want)
			if st := a.Stats(); tc.share != (st[0].InUse == 1) {
				t.Errorf("in use %d, share %v", st[0].InUse, tc.share)
			}
		})
		t.Run(tc.name+"/requested", func(t *testing.T) {
			a := newAlloc(t, mkPool(t, "p", true, false, "10.0.0.10-10.0.0.20"))
			mustAlloc(t, a, tc.first, Request{}, "p", "10.0.0.10")
			_, err := a.Allocate(tc.second, Request{IPs: addrs("10.0.0.10")})
			if tc.share {
				checkErr(t, err, nil)
				if got := a.Users(netip.MustParseAddr("10.0.0.10")); !slices.Equal(got, []string{"ns/a", "ns/b"}) {
					t.Errorf("users %v", got)
				}
				return
			}
			checkErr(t, err, ErrInUse, append(tc.fragments, "10.0.0.10")...)
		})
	}

	t.Run("lowest shareable below lowest free", func(t *testing.T) {
		a := newAlloc(t, mkPool(t, "p", true, false, "10.0.0.1-10.0.0.9"))
		mustAlloc(t, a, shared("ns/a", "k", "", tcp80), Request{}, "p", "10.0.0.1")
		mustAlloc(t, a, shared("ns/b", "k", "", tcp80), Request{}, "p", "10.0.0.2")
		mustAlloc(t, a, svc("ns/c"), Request{}, "p", "10.0.0.3")
		mustAlloc(t, a, shared("ns/d", "k", "", tcp443), Request{}, "p", "10.0.0.1")
		mustAlloc(t, a, shared("ns/e", "k", "", tcp443), Request{}, "p", "10.0.0.2")
		mustAlloc(t, a, shared("ns/f", "k", "", tcp443), Request{}, "p", "10.0.0.4")
		mustAlloc(t, a, shared("ns/g", "k", "", udp53), Request{}, "p", "10.0.0.1")
		// Freeing the first user leaves the address to the others.
		a.Release("ns/a")
		if got := a.Users(netip.MustParseAddr("10.0.0.1")); !slices.Equal(got, []string{"ns/d", "ns/g"}) {
			t.Errorf("users %v", got)
		}
		mustAlloc(t, a, shared("ns/h", "k", "", tcp80), Request{}, "p", "10.0.0.1")
		for _, k := range []string{"ns/d", "ns/g", "ns/h"} {
			a.Release(k)
		}
		mustAlloc(t, a, svc("ns/i"), Request{}, "p", "10.0.0.1")
	})
}

func TestAllocateIdempotent(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", true, false, "10.0.0.0/28"), mkPool(t, "q", false, false, "10.0.1.0/28"))
	mustAlloc(t, a, shared("ns/a", "k", "", tcp80), Request{}, "p", "10.0.0.0")
	mustAlloc(t, a, shared("ns/b", "k", "", tcp443), Request{}, "p", "10.0.0.0")
	for range 3 {
		mustAlloc(t, a, shared("ns/a", "k", "", tcp80), Request{}, "p", "10.0.0.0")
		mustAlloc(t, a, shared("ns/a", "k", "", tcp80), Request{Pool: "p"}, "p", "10.0.0.0")
		mustAlloc(t, a, shared("ns/a", "k", "", tcp80), Request{IPs: addrs("10.0.0.0")}, "p", "10.0.0.0")
	}
	if got := a.Users(netip.MustParseAddr("10.0.0.0")); !slices.Equal(got, []string{"ns/a", "ns/b"}) {
		t.Errorf("users %v", got)
	}
	// Updated ports are stored: ns/a moves to port 8080, freeing 80 for ns/c.
	mustAlloc(t, a, shared("ns/a", "k", "", Port{"TCP", 8080}), Request{}, "p", "10.0.0.0")
	mustAlloc(t, a, shared("ns/c", "k", "", tcp80), Request{}, "p", "10.0.0.0")
	// A change that breaks sharing is refused and the old assignment kept.
	_, err := a.Allocate(shared("ns/a", "k", "", tcp443), Request{})
	checkErr(t, err, ErrInUse, "port TCP/443 collides", "ns/b")
	_, err = a.Allocate(shared("ns/a", "other", "", Port{"TCP", 8080}), Request{})
	checkErr(t, err, ErrInUse, "sharing key mismatch")
	if got, ok := a.Get("ns/a"); !ok || got.IPs[0] != netip.MustParseAddr("10.0.0.0") {
		t.Errorf("ns/a lost its assignment: %v %v", got, ok)
	}
	mustAlloc(t, a, shared("ns/d", "k", "", Port{"TCP", 8080}), Request{}, "p", "10.0.0.1")
	// A sole user may change its keys in place.
	mustAlloc(t, a, svc("ns/d"), Request{}, "p", "10.0.0.1")
	_, err = a.Allocate(shared("ns/e", "k", "", udp53), Request{IPs: addrs("10.0.0.1")})
	checkErr(t, err, ErrInUse, "no sharing key on ns/d")
}

func TestChangeRequest(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", true, false, "10.0.0.0/28"), mkPool(t, "q", false, false, "10.0.1.0/28"))
	mustAlloc(t, a, svc("ns/a"), Request{}, "p", "10.0.0.0")
	mustAlloc(t, a, svc("ns/other"), Request{}, "p", "10.0.0.1")

	mustAlloc(t, a, svc("ns/a"), Request{Pool: "q"}, "q", "10.0.1.0")
	if u := a.Users(netip.MustParseAddr("10.0.0.0")); len(u) != 0 {
		t.Errorf("old address still used by %v", u)
	}
	// Back to "any pool": the q address still satisfies it.
	mustAlloc(t, a, svc("ns/a"), Request{}, "q", "10.0.1.0")
	mustAlloc(t, a, svc("ns/a"), Request{IPs: addrs("10.0.0.7")}, "p", "10.0.0.7")

	// Failures keep the old assignment.
	for _, req := range []Request{
		{IPs: addrs("10.0.0.1")},            // in use
		{IPs: addrs("192.0.2.1")},           // in no pool
		{Pool: "nope"},                      // unknown pool
		{Families: []Family{IPv6}},          // no pool has IPv6
		{Pool: "q", IPs: addrs("10.0.0.3")}, // not in pool q
	} {
		if _, err := a.Allocate(svc("ns/a"), req); err == nil {
			t.Fatalf("Allocate(%+v) succeeded", req)
		}
		if got, ok := a.Get("ns/a"); !ok || got.Pool != "p" || got.IPs[0] != netip.MustParseAddr("10.0.0.7") {
			t.Fatalf("after failed Allocate(%+v): %v %v", req, got, ok)
		}
	}
	if st := a.Stats(); st[0].InUse != 2 || st[1].InUse != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestAssign(t *testing.T) {
	pools := []Pool{mkPool(t, "p", true, false, "10.0.0.0/28", "fd00::/120"), mkPool(t, "manual", false, true, "10.0.1.0/24")}
	tests := []struct {
		name      string
		svc       Service
		ips       []string
		wantErr   error
		fragments []string
		wantPool  string
	}{
		{name: "auto-assign pool", svc: svc("ns/x"), ips: []string{"10.0.0.3"}, wantPool: "p"},
		{name: "auto-assign false pool", svc: svc("ns/x"), ips: []string{"10.0.1.3"}, wantPool: "manual"},
		{name: "dual stack", svc: svc("ns/x"), ips: []string{"fd00::9", "10.0.0.3"}, wantPool: "p"},
		{name: "in no pool", svc: svc("ns/x"), ips: []string{"10.9.0.3"}, wantErr: ErrNotInPool, fragments: []string{"10.9.0.3"}},
		{name: "buggy", svc: svc("ns/x"), ips: []string{"10.0.1.0"}, wantErr: ErrNotInPool},
		{name: "different pools", svc: svc("ns/x"), ips: []string{"10.0.1.3", "fd00::1"}, wantErr: ErrNotInPool},
		{name: "conflict", svc: svc("ns/x"), ips: []string{"10.0.0.1"}, wantErr: ErrInUse, fragments: []string{"ns/holder"}},
		{name: "shared", svc: shared("ns/x", "k", "", tcp443), ips: []string{"10.0.0.2"}, wantPool: "p"},
		{name: "none", svc: svc("ns/x"), wantErr: ErrInvalid},
		{name: "empty key", svc: svc(""), ips: []string{"10.0.0.3"}, wantErr: ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, pools...)
			mustAlloc(t, a, svc("ns/holder"), Request{IPs: addrs("10.0.0.1")}, "p", "10.0.0.1")
			mustAlloc(t, a, shared("ns/sharer", "k", "", tcp80), Request{IPs: addrs("10.0.0.2")}, "p", "10.0.0.2")
			for range 2 { // idempotent
				got, err := a.Assign(tc.svc, addrs(tc.ips...))
				checkErr(t, err, tc.wantErr, tc.fragments...)
				if tc.wantErr != nil {
					return
				}
				if got.Pool != tc.wantPool || !slices.Equal(got.IPs, addrs(tc.ips...)) {
					t.Fatalf("got %v, want %s %v", got, tc.wantPool, tc.ips)
				}
			}
			// The restored assignment satisfies a request without a pool.
			if got, err := a.Allocate(tc.svc, Request{Families: familiesOf(addrs(tc.ips...))}); err != nil || !slices.Equal(got.IPs, addrs(tc.ips...)) {
				t.Errorf("Allocate after Assign: %v %v", got, err)
			}
		})
	}
}

func familiesOf(ips []netip.Addr) []Family {
	var out []Family
	for _, ip := range ips {
		out = append(out, familyOf(ip))
	}
	return out
}

func TestSetPools(t *testing.T) {
	t.Run("keeps and re-homes", func(t *testing.T) {
		a := newAlloc(t,
			mkPool(t, "p", true, false, "10.0.0.0/24", "fd00::/120"),
			mkPool(t, "q", true, false, "10.0.1.0/24"),
		)
		mustAlloc(t, a, svc("ns/keep"), Request{IPs: addrs("10.0.0.5")}, "p", "10.0.0.5")
		mustAlloc(t, a, svc("ns/move"), Request{IPs: addrs("10.0.0.200")}, "p", "10.0.0.200")
		mustAlloc(t, a, svc("ns/gone"), Request{IPs: addrs("10.0.1.7")}, "q", "10.0.1.7")
		mustAlloc(t, a, svc("ns/ds"), Request{Families: []Family{IPv4, IPv6}}, "p", "10.0.0.0", "fd00::")
		mustAlloc(t, a, shared("ns/s1", "k", "", tcp80), Request{IPs: addrs("10.0.0.9")}, "p", "10.0.0.9")
		mustAlloc(t, a, shared("ns/s2", "k", "", tcp443), Request{IPs: addrs("10.0.0.9")}, "p", "10.0.0.9")

		checkErr(t, a.SetPools([]Pool{
			mkPool(t, "p", true, false, "10.0.0.0-10.0.0.127", "fd00::/120"),
			mkPool(t, "manual", false, false, "10.0.0.128-10.0.0.255"),
			mkPool(t, "q", true, true, "10.0.1.0/24"),
		}), nil)
		for key, want := range map[string]string{"ns/keep": "p", "ns/move": "manual", "ns/gone": "q", "ns/ds": "p", "ns/s1": "p", "ns/s2": "p"} {
			if got, ok := a.Get(key); !ok || got.Pool != want {
				t.Errorf("%s: %v %v, want pool %s", key, got, ok, want)
			}
		}
		st := a.Stats()
		if st[0].Name != "p" || st[0].InUse != 4 || st[1].InUse != 1 || st[2].InUse != 1 {
			t.Errorf("stats %+v", st)
		}
		// The re-homed address stays taken.
		mustAlloc(t, a, svc("ns/new"), Request{Pool: "manual"}, "manual", "10.0.0.128")
		mustAlloc(t, a, svc("ns/new2"), Request{Pool: "q"}, "q", "10.0.1.1")
		// The moved service keeps its address when asking for any pool.
		mustAlloc(t, a, svc("ns/move"), Request{}, "manual", "10.0.0.200")
	})

	t.Run("refuses pools that take addresses away", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			pools []Pool
			want  []string // refused Services, sorted
			frags []string
		}{
			{"no pools at all", nil, []string{"ns/buggy", "ns/ds", "ns/plain"}, []string{"3 service(s)", "10.0.0.7 would be in no pool"}},
			{"avoid-buggy-ips turned on", []Pool{mkPool(t, "p", true, true, "10.0.0.0/24", "fd00::/120")}, []string{"ns/buggy"}, []string{"ns/buggy", "10.0.0.0 would become unusable", `"p"`}},
			{"range shrunk", []Pool{mkPool(t, "p", true, false, "10.0.0.0-10.0.0.6", "fd00::/120")}, []string{"ns/plain"}, []string{"ns/plain (10.0.0.7 would be in no pool)"}},
			{"dual-stack split over two pools", []Pool{mkPool(t, "p", true, false, "10.0.0.0/24"), mkPool(t, "v6", true, false, "fd00::/120")}, []string{"ns/ds"}, []string{"different pools", `"v6"`}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := newAlloc(t, mkPool(t, "p", true, false, "10.0.0.0/24", "fd00::/120"))
				mustAlloc(t, a, svc("ns/buggy"), Request{}, "p", "10.0.0.0")
				mustAlloc(t, a, svc("ns/plain"), Request{IPs: addrs("10.0.0.7")}, "p", "10.0.0.7")
				mustAlloc(t, a, svc("ns/ds"), Request{Families: []Family{IPv4, IPv6}}, "p", "10.0.0.1", "fd00::")
				err := a.SetPools(tc.pools)
				checkErr(t, err, ErrWouldRelease, tc.frags...)
				var rerr *ReleaseError
				if !errors.As(err, &rerr) {
					t.Fatalf("error %T is not a *ReleaseError", err)
				}
				var got []string
				for _, s := range rerr.Services {
					got = append(got, s.Key)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("refused for %v, want %v", got, tc.want)
				}
				// Nothing changed: every assignment stands and the next address is the same.
				for key, want := range map[string]string{"ns/buggy": "10.0.0.0", "ns/plain": "10.0.0.7", "ns/ds": "10.0.0.1,fd00::"} {
					if got, ok := a.Get(key); !ok || joinIPs(got.IPs) != want || got.Pool != "p" {
						t.Errorf("%s: %v %v, want %s in p", key, got, ok, want)
					}
				}
				mustAlloc(t, a, svc("ns/next"), Request{}, "p", "10.0.0.2")
			})
		}
	})

	t.Run("turning auto-assign off or widening takes nothing", func(t *testing.T) {
		a := newAlloc(t, mkPool(t, "p", true, false, "10.0.0.0/30"))
		mustAlloc(t, a, svc("ns/a"), Request{}, "p", "10.0.0.0")
		checkErr(t, a.SetPools([]Pool{mkPool(t, "p", false, false, "10.0.0.0/30")}), nil)
		checkErr(t, a.SetPools([]Pool{mkPool(t, "p", true, false, "10.0.0.0/24"), mkPool(t, "extra", true, false, "10.1.0.0/24")}), nil)
		if got, ok := a.Get("ns/a"); !ok || joinIPs(got.IPs) != "10.0.0.0" {
			t.Errorf("ns/a: %v %v", got, ok)
		}
	})

	t.Run("invalid configs leave the state unchanged", func(t *testing.T) {
		for _, tc := range []struct {
			name      string
			pools     []Pool
			fragments []string
		}{
			{"overlap between pools", []Pool{mkPool(t, "a", true, false, "10.0.0.0/24"), mkPool(t, "b", true, false, "10.0.0.128-10.0.1.5")}, []string{`"a"`, `"b"`, "overlap"}},
			{"overlap inside a pool", []Pool{mkPool(t, "a", true, false, "10.0.0.0/24", "10.0.0.255")}, []string{`"a"`, "overlap"}},
			{"duplicate name", []Pool{mkPool(t, "a", true, false, "10.0.0.0/24"), mkPool(t, "a", true, false, "10.0.1.0/24")}, []string{`"a"`}},
			{"empty name", []Pool{mkPool(t, "", true, false, "10.0.0.0/24")}, []string{"empty name"}},
			{"malformed range", []Pool{{Name: "a", Ranges: []netipx.IPRange{{}}}}, []string{`"a"`}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := newAlloc(t, mkPool(t, "p", true, false, "10.0.0.0/24"))
				mustAlloc(t, a, svc("ns/x"), Request{}, "p", "10.0.0.0")
				checkErr(t, a.SetPools(tc.pools), ErrInvalid, tc.fragments...)
				if st := a.Stats(); len(st) != 1 || st[0].Name != "p" || st[0].InUse != 1 {
					t.Errorf("stats changed: %+v", st)
				}
				mustAlloc(t, a, svc("ns/y"), Request{}, "p", "10.0.0.1")
			})
		}
	})
}

func TestStats(t *testing.T) {
	a := newAlloc(t,
		mkPool(t, "a", true, false, "10.0.0.0/24", "fd00::/64"),
		mkPool(t, "b", false, true, "10.1.0.0/16"),
	)
	mustAlloc(t, a, shared("ns/1", "k", "", tcp80), Request{}, "a", "10.0.0.0")
	mustAlloc(t, a, shared("ns/2", "k", "", tcp443), Request{}, "a", "10.0.0.0")
	mustAlloc(t, a, svc("ns/3"), Request{Families: []Family{IPv4, IPv6}}, "a", "10.0.0.1", "fd00::")
	mustAlloc(t, a, svc("ns/4"), Request{Pool: "b"}, "b", "10.1.0.1")
	st := a.Stats()
	wantA := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 64), big.NewInt(256))
	if len(st) != 2 || st[0].Name != "a" || st[0].Size.Cmp(wantA) != 0 || st[0].InUse != 3 ||
		st[1].Name != "b" || st[1].Size.Int64() != 65536-512 || st[1].InUse != 1 {
		t.Errorf("stats %+v", st)
	}
	st[0].Size.SetInt64(0) // callers may not corrupt the allocator
	if a.Stats()[0].Size.Cmp(wantA) != 0 {
		t.Error("Stats returned the allocator's own big.Int")
	}
	if name, ok := a.PoolFor(netip.MustParseAddr("10.1.2.3")); !ok || name != "b" {
		t.Errorf("PoolFor = %q %v", name, ok)
	}
	if _, ok := a.PoolFor(netip.MustParseAddr("10.1.2.255")); ok {
		t.Error("PoolFor found a buggy address in an avoid-buggy-ips pool")
	}
}

func TestConcurrentUse(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", true, true, "10.0.0.0/24"))
	const workers, each = 4, 50
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range each {
				key := fmt.Sprintf("ns/w%d-%d", w, i)
				if _, err := a.Allocate(svc(key), Request{}); err != nil {
					errs <- err
					return
				}
				a.Stats()
				a.Users(netip.MustParseAddr("10.0.0.1"))
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[netip.Addr]string{}
	for w := range workers {
		for i := range each {
			key := fmt.Sprintf("ns/w%d-%d", w, i)
			got, ok := a.Get(key)
			if !ok || seen[got.IPs[0]] != "" {
				t.Fatalf("%s: %v %v (also held by %q)", key, got, ok, seen[got.IPs[0]])
			}
			seen[got.IPs[0]] = key
		}
	}
	if st := a.Stats(); st[0].InUse != workers*each {
		t.Errorf("in use %d, want %d", st[0].InUse, workers*each)
	}
	checkInvariants(t, a, "after concurrent allocations")
}

func joinIPs(ips []netip.Addr) string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return strings.Join(out, ",")
}

func TestReserve(t *testing.T) {
	t.Run("before any pool, then homed by SetPools", func(t *testing.T) {
		a := New()
		if _, err := a.Reserve(svc("ns/old"), addrs("10.0.0.0")); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Reserve(shared("ns/s1", "k", "", tcp80), addrs("10.0.0.1", "fd00::1")); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Reserve(shared("ns/s2", "k", "", tcp443), addrs("10.0.0.1")); err != nil {
			t.Fatal(err)
		}
		_, err := a.Reserve(svc("ns/thief"), addrs("10.0.0.0"))
		checkErr(t, err, ErrInUse, "ns/old")
		if got, ok := a.Get("ns/old"); !ok || got.Pool != "" || joinIPs(got.IPs) != "10.0.0.0" {
			t.Errorf("reserved: %v %v", got, ok)
		}
		checkInvariants(t, a, "after reserve")

		// A pool set that does not cover every reserved address is refused ...
		checkErr(t, a.SetPools([]Pool{mkPool(t, "p", true, false, "10.0.0.0/30")}), ErrWouldRelease, "fd00::1 would be in no pool")
		// ... one that does homes them, and the lowest free address is the next one.
		checkErr(t, a.SetPools([]Pool{mkPool(t, "p", true, false, "10.0.0.0/30", "fd00::/120")}), nil)
		for _, key := range []string{"ns/old", "ns/s1", "ns/s2"} {
			if got, ok := a.Get(key); !ok || got.Pool != "p" {
				t.Errorf("%s: %v %v", key, got, ok)
			}
		}
		if st := a.Stats(); st[0].InUse != 3 {
			t.Errorf("stats %+v", st)
		}
		mustAlloc(t, a, svc("ns/new"), Request{}, "p", "10.0.0.2")
		checkInvariants(t, a, "after SetPools")
	})
	t.Run("inside a pool it is an Assign", func(t *testing.T) {
		a := newAlloc(t, mkPool(t, "p", false, false, "10.0.0.0/30"))
		got, err := a.Reserve(svc("ns/a"), addrs("10.0.0.1"))
		if err != nil || got.Pool != "p" {
			t.Fatalf("%v %v", got, err)
		}
		mustAlloc(t, a, svc("ns/b"), Request{IPs: addrs("10.0.0.0")}, "p", "10.0.0.0")
		mustAlloc(t, a, svc("ns/c"), Request{Pool: "p"}, "p", "10.0.0.2")
	})
	t.Run("outside the pools it holds the address without a pool", func(t *testing.T) {
		a := newAlloc(t, mkPool(t, "p", true, false, "10.0.0.0/30"))
		if _, err := a.Reserve(svc("ns/x"), addrs("10.0.0.0", "fd99::1")); err != nil {
			t.Fatal(err)
		}
		// 10.0.0.0 is held although ns/x has no pool; a new request moves ns/x.
		mustAlloc(t, a, svc("ns/y"), Request{}, "p", "10.0.0.1")
		mustAlloc(t, a, svc("ns/x"), Request{}, "p", "10.0.0.0")
		if users := a.Users(netip.MustParseAddr("fd99::1")); len(users) != 0 {
			t.Errorf("old reserved address still held by %v", users)
		}
		checkInvariants(t, a, "after move")
	})
}
