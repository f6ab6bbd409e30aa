package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"go4.org/netipx"
)

// rng parses "a-b", a CIDR or a single address.
func rng(t testing.TB, s string) netipx.IPRange {
	t.Helper()
	if from, to, ok := strings.Cut(s, "-"); ok {
		r := netipx.IPRangeFrom(netip.MustParseAddr(from), netip.MustParseAddr(to))
		if !r.IsValid() {
			t.Fatalf("bad range %q", s)
		}
		return r
	}
	if strings.Contains(s, "/") {
		return netipx.RangeOfPrefix(netip.MustParsePrefix(s))
	}
	ip := netip.MustParseAddr(s)
	return netipx.IPRangeFrom(ip, ip)
}

func mkPool(t testing.TB, name string, auto, avoid bool, ranges ...string) Pool {
	t.Helper()
	p := Pool{Name: name, AutoAssign: auto, AvoidBuggyIPs: avoid}
	for _, r := range ranges {
		p.Ranges = append(p.Ranges, rng(t, r))
	}
	return p
}

func newAlloc(t testing.TB, pools ...Pool) *Allocator {
	t.Helper()
	a := New()
	if err := a.SetPools(pools); err != nil {
		t.Fatalf("SetPools: %v", err)
	}
	return a
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func svc(key string) Service { return Service{Key: key} }

func shared(key, sharing, backend string, ports ...Port) Service {
	return Service{Key: key, SharingKey: sharing, BackendKey: backend, Ports: ports}
}

var (
	tcp80  = Port{"TCP", 80}
	tcp443 = Port{"TCP", 443}
	udp53  = Port{"UDP", 53}
	tcp53  = Port{"TCP", 53}
)

// mustAlloc allocates and checks the result's addresses.
func mustAlloc(t *testing.T, a *Allocator, s Service, req Request, wantPool string, want ...string) {
	t.Helper()
	got, err := a.Allocate(s, req)
	if err != nil {
		t.Fatalf("Allocate(%s, %+v): %v", s.Key, req, err)
	}
	if got.Pool != wantPool || !slices.Equal(got.IPs, addrs(want...)) {
		t.Fatalf("Allocate(%s, %+v) = %v %v, want %s %v", s.Key, req, got.Pool, got.IPs, wantPool, want)
	}
}

// checkErr asserts err matches kind (nil for success) and contains every
// fragment.
func checkErr(t *testing.T, err, kind error, fragments ...string) {
	t.Helper()
	if kind == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %v, want one matching %v", err, kind)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}
