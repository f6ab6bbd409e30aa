package ipam

import (
	"math/big"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/btree"
	"go4.org/netipx"
)

// shareKey is what Services sharing an address must agree on.
type shareKey struct {
	sharing, backend string
}

// famState is one family of one pool.
type famState struct {
	family Family
	free   *freeSet
	// shared indexes, by key, the addresses in use whose users allow
	// sharing, so a Service with that key finds the lowest address it may
	// join without looking at unrelated addresses.
	shared map[shareKey]*btree.BTreeG[netip.Addr]
}

// pool is the live state of a configured Pool.
type pool struct {
	cfg   Pool
	fams  [2]*famState // [0] IPv4, [1] IPv6; nil when the pool has no range of that family
	size  *big.Int
	inUse int
}

func (p *pool) fam(f Family) *famState {
	if i, ok := famIndex(f); ok {
		return p.fams[i]
	}
	return nil
}

func famIndex(f Family) (int, bool) {
	switch f {
	case IPv4:
		return 0, true
	case IPv6:
		return 1, true
	}
	return 0, false
}

// rangeEntry maps a configured range back to its pool; the allocator keeps
// all ranges sorted by first address to find an address's pool in O(log r).
type rangeEntry struct {
	r netipx.IPRange
	p *pool
}

// poolSet is an immutable-shape set of pools built from a configuration.
type poolSet struct {
	list   []*pool
	byName map[string]*pool
	ranges []rangeEntry
}

// buildPools validates pools and builds their state: names unique and
// non-empty, ranges well formed and not overlapping anywhere.
func buildPools(pools []Pool, blockFL *btree.FreeListG[block]) (*poolSet, error) {
	ps := &poolSet{byName: make(map[string]*pool, len(pools))}
	for i, cfg := range pools {
		if cfg.Name == "" {
			return nil, errorf(ErrInvalid, "pool #%d has an empty name", i)
		}
		if _, dup := ps.byName[cfg.Name]; dup {
			return nil, errorf(ErrInvalid, "pool name %q is used twice", cfg.Name)
		}
		p := &pool{cfg: cfg, size: new(big.Int)}
		p.cfg.Ranges = slices.Clone(cfg.Ranges)
		for _, r := range cfg.Ranges {
			if !r.IsValid() || r.From().Zone() != "" || r.To().Zone() != "" || r.From().Is4In6() || r.To().Is4In6() {
				return nil, errorf(ErrInvalid, "pool %q: range %s is malformed", cfg.Name, r)
			}
			f := familyOf(r.From())
			fs := p.fam(f)
			if fs == nil {
				fs = &famState{family: f, free: newFreeSet(f, cfg.AvoidBuggyIPs, blockFL), shared: map[shareKey]*btree.BTreeG[netip.Addr]{}}
				i, _ := famIndex(f)
				p.fams[i] = fs
			}
			fs.free.addRange(r.From(), r.To())
			p.size.Add(p.size, rangeSize(r, cfg.AvoidBuggyIPs))
			ps.ranges = append(ps.ranges, rangeEntry{r: r, p: p})
		}
		ps.list = append(ps.list, p)
		ps.byName[cfg.Name] = p
	}
	slices.SortFunc(ps.ranges, func(a, b rangeEntry) int { return a.r.From().Compare(b.r.From()) })
	for _, p := range ps.list {
		for _, fs := range p.fams {
			if fs != nil {
				fs.free.coalesce()
			}
		}
	}
	for i := 1; i < len(ps.ranges); i++ {
		prev, cur := ps.ranges[i-1], ps.ranges[i]
		if !prev.r.To().Less(cur.r.From()) {
			if prev.p == cur.p {
				return nil, errorf(ErrInvalid, "pool %q: ranges %s and %s overlap", cur.p.cfg.Name, prev.r, cur.r)
			}
			return nil, errorf(ErrInvalid, "pools %q and %q overlap: %s and %s", prev.p.cfg.Name, cur.p.cfg.Name, prev.r, cur.r)
		}
	}
	return ps, nil
}

// rangeOf returns the configured range holding ip, whatever avoid-buggy-ips
// says about ip. O(log r).
func (ps *poolSet) rangeOf(ip netip.Addr) (rangeEntry, bool) {
	i, _ := slices.BinarySearchFunc(ps.ranges, ip, func(e rangeEntry, ip netip.Addr) int {
		return e.r.From().Compare(ip)
	})
	// ranges[i] is the first range starting at or after ip.
	if i < len(ps.ranges) && ps.ranges[i].r.From() == ip {
		return ps.ranges[i], true
	}
	if i > 0 && ps.ranges[i-1].r.Contains(ip) {
		return ps.ranges[i-1], true
	}
	return rangeEntry{}, false
}

// poolFor returns the pool ip belongs to, or nil. An avoid-buggy-ips pool
// does not own its .0 and .255 addresses (as in MetalLB).
func (ps *poolSet) poolFor(ip netip.Addr) *pool {
	e, ok := ps.rangeOf(ip)
	if !ok || (e.p.cfg.AvoidBuggyIPs && isBuggy(ip)) {
		return nil
	}
	return e.p
}

// rangeSize counts the allocatable addresses of r, computing the number of
// .0/.255 addresses arithmetically rather than by walking the range.
func rangeSize(r netipx.IPRange, avoidBuggy bool) *big.Int {
	from, to := r.From().As16(), r.To().As16()
	n := new(big.Int).Sub(new(big.Int).SetBytes(to[:]), new(big.Int).SetBytes(from[:]))
	n.Add(n, big.NewInt(1))
	if avoidBuggy && r.From().Is4() {
		n.Sub(n, big.NewInt(int64(buggyUpTo(v4(r.To()))-buggyBelow(v4(r.From())))))
	}
	return n
}

func v4(ip netip.Addr) uint64 {
	b := ip.As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// buggyUpTo counts the addresses in [0, n] ending in .0 or .255.
func buggyUpTo(n uint64) uint64 { return n>>8 + 1 + (n+1)>>8 }

// buggyBelow counts the addresses in [0, n) ending in .0 or .255.
func buggyBelow(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	return buggyUpTo(n - 1)
}

func joinNames(ps []*pool) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.cfg.Name
	}
	return strings.Join(names, ", ")
}
