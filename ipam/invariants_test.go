package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// checkInvariants verifies the internal state by brute force over every
// address of every pool (small pools only): free blocks sorted, disjoint,
// never adjacent and inside the pool; every allocatable address either
// free or in use, never both; the sharing index exactly the shared
// addresses in use; the in-use counters right.
func checkInvariants(t *testing.T, a *Allocator, where string) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	inUse := map[*pool]int{}
	for ip, st := range a.addrs {
		if len(st.users) == 0 {
			t.Fatalf("%s: %s has no users", where, ip)
		}
		if st.pool == nil {
			if a.pools.poolFor(ip) != nil {
				t.Fatalf("%s: %s is held outside a pool that contains it", where, ip)
			}
			continue
		}
		inUse[st.pool]++
		for i, u := range st.users {
			if a.svcs[u.svc.Key] != u || (i > 0 && st.users[i-1].svc.Key >= u.svc.Key) {
				t.Fatalf("%s: %s users corrupt", where, ip)
			}
		}
		fs := st.pool.fam(familyOf(ip))
		if t2 := fs.shared[st.key]; (st.key.sharing != "") != (t2 != nil && t2.Has(ip)) {
			t.Fatalf("%s: sharing index wrong for %s", where, ip)
		}
	}
	for _, p := range a.pools.list {
		if inUse[p] != p.inUse {
			t.Fatalf("%s: pool %s inUse %d, counted %d", where, p.cfg.Name, p.inUse, inUse[p])
		}
		for _, fs := range p.fams {
			if fs == nil {
				continue
			}
			var prev block
			first := true
			fs.free.tree.Ascend(func(b block) bool {
				if b.to.less(b.from) || (!first && !prev.to.next().less(b.from)) {
					t.Fatalf("%s: pool %s blocks %v and %v overlap or touch", where, p.cfg.Name, prev, b)
				}
				if from := b.from.addr(fs.family); a.pools.poolFor(from) != p && !isBuggy(from) {
					t.Fatalf("%s: block %v outside pool %s", where, b, p.cfg.Name)
				}
				prev, first = b, false
				return true
			})
			for k, tr := range fs.shared {
				tr.Ascend(func(ip netip.Addr) bool {
					if st := a.addrs[ip]; st == nil || st.key != k {
						t.Fatalf("%s: stale sharing index entry %s", where, ip)
					}
					return true
				})
			}
		}
		for _, r := range p.cfg.Ranges {
			for ip := r.From(); ; ip = ip.Next() {
				free := p.fam(familyOf(ip)).free.isFree(ip)
				used := a.addrs[ip] != nil
				buggy := p.cfg.AvoidBuggyIPs && isBuggy(ip)
				switch {
				case buggy && used:
					t.Fatalf("%s: buggy %s in use", where, ip)
				case !buggy && free == used:
					t.Fatalf("%s: %s free %v, used %v", where, ip, free, used)
				}
				if ip == r.To() {
					break
				}
			}
		}
	}
}

func TestFreeSetMerges(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", true, false, "10.0.0.0-10.0.0.99", "10.0.0.100-10.0.0.199"))
	if n := a.pools.list[0].fams[0].free.tree.Len(); n != 1 {
		t.Fatalf("adjacent ranges give %d blocks, want 1", n)
	}
	for i := range 200 {
		mustAlloc(t, a, svc(fmt.Sprint("ns/", i)), Request{}, "p", fmt.Sprintf("10.0.0.%d", i))
	}
	if n := a.pools.list[0].fams[0].free.tree.Len(); n != 0 {
		t.Fatalf("full pool has %d free blocks", n)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, i := range r.Perm(200) {
		a.Release(fmt.Sprint("ns/", i))
		checkInvariants(t, a, fmt.Sprint("release ", i))
	}
	if n := a.pools.list[0].fams[0].free.tree.Len(); n != 1 {
		t.Fatalf("empty pool has %d free blocks, want 1", n)
	}
}

// TestAddressSpaceEdges allocates and frees around the ends of the address
// spaces and across the 64-bit boundary of the integer representation.
func TestAddressSpaceEdges(t *testing.T) {
	for _, tc := range []struct {
		rng  string
		want []string
	}{
		{"255.255.255.253-255.255.255.255", []string{"255.255.255.253", "255.255.255.254", "255.255.255.255"}},
		{"0.0.0.0-0.0.0.1", []string{"0.0.0.0", "0.0.0.1"}},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
			[]string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}},
		{"fd00::ffff:ffff:ffff:fffe-fd00:0:0:1::1",
			[]string{"fd00::ffff:ffff:ffff:fffe", "fd00::ffff:ffff:ffff:ffff", "fd00:0:0:1::", "fd00:0:0:1::1"}},
		{"::-::1", []string{"::", "::1"}},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			a := newAlloc(t, mkPool(t, "p", true, false, tc.rng))
			req := Request{Families: []Family{familyOf(addrs(tc.want[0])[0])}}
			for i, w := range tc.want {
				mustAlloc(t, a, svc(fmt.Sprint("ns/", i)), req, "p", w)
			}
			_, err := a.Allocate(svc("ns/x"), req)
			checkErr(t, err, ErrPoolExhausted)
			for _, i := range []int{len(tc.want) - 1, 0, 1} {
				a.Release(fmt.Sprint("ns/", i))
				checkInvariants(t, a, fmt.Sprint("release ", i))
			}
			mustAlloc(t, a, svc("ns/x"), req, "p", tc.want[0])
			checkInvariants(t, a, "realloc")
		})
	}
}
