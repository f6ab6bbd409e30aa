package ipam

import (
	"cmp"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/btree"
)

// addrState is an address held by at least one Service.
type addrState struct {
	pool  *pool       // nil for an address Reserve kept outside every pool
	key   shareKey    // every user has this sharing and backend key
	users []*svcState // sorted by Service key
}

// svcState is a Service's assignment.
type svcState struct {
	svc  Service
	pool *pool        // nil when Reserve kept addresses that are not all in one pool
	ips  []netip.Addr // at most one per family
}

func (s *svcState) addrOf(f Family) (netip.Addr, bool) {
	for _, ip := range s.ips {
		if familyOf(ip) == f {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func (s *svcState) assignment() Assignment {
	a := Assignment{IPs: slices.Clone(s.ips)}
	if s.pool != nil {
		a.Pool = s.pool.cfg.Name
	}
	return a
}

// Allocator assigns addresses from pools to Services. It is safe for
// concurrent use. Memory grows with the number of Services and of free
// blocks (at most one more than the addresses in use per range), never
// with pool sizes.
type Allocator struct {
	mu    sync.Mutex
	pools *poolSet
	addrs map[netip.Addr]*addrState
	svcs  map[string]*svcState

	blockFL *btree.FreeListG[block]
	addrFL  *btree.FreeListG[netip.Addr]
}

// New returns an Allocator with no pools.
func New() *Allocator {
	a := &Allocator{
		addrs:   map[netip.Addr]*addrState{},
		svcs:    map[string]*svcState{},
		blockFL: btree.NewFreeListG[block](64),
		addrFL:  btree.NewFreeListG[netip.Addr](64),
	}
	a.pools, _ = buildPools(nil, a.blockFL)
	return a
}

// SetPools replaces the pool set (a configuration reload). Every assignment
// is kept and re-homed to the one pool that now holds all its addresses,
// even if that pool is auto-assign false. A pool set under which some
// assignment would lose an address (it leaves every pool, becomes a .0/.255
// address of an avoid-buggy-ips pool, or the Service's addresses end up in
// different pools) is refused: the error is a *ReleaseError naming those
// Services, it wraps ErrWouldRelease, and the state is unchanged. If pools
// overlap, have duplicate or empty names or malformed ranges, the error
// wraps ErrInvalid and the state is unchanged.
// Cost: O(s log n) for s assigned Services.
func (a *Allocator) SetPools(pools []Pool) error {
	ps, err := buildPools(pools, a.blockFL)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	homes := make(map[*svcState]*pool, len(a.svcs))
	var lost []ReleasedService
	for key, s := range a.svcs {
		p, why := ps.homeOf(s.ips)
		if why != "" {
			lost = append(lost, ReleasedService{Key: key, IPs: slices.Clone(s.ips), Reason: why})
			continue
		}
		homes[s] = p
	}
	if len(lost) > 0 {
		slices.SortFunc(lost, func(x, y ReleasedService) int { return cmp.Compare(x.Key, y.Key) })
		return &ReleaseError{Services: lost}
	}
	old := a.svcs
	a.pools = ps
	a.addrs = make(map[netip.Addr]*addrState, len(a.addrs))
	a.svcs = make(map[string]*svcState, len(old))
	for _, s := range old {
		s.pool = homes[s]
		a.hold(s)
	}
	return nil
}

// homeOf returns the one pool of ps holding every address of ips, or why
// there is none.
func (ps *poolSet) homeOf(ips []netip.Addr) (*pool, string) {
	var home *pool
	for i, ip := range ips {
		q := ps.poolFor(ip)
		if q == nil {
			if e, ok := ps.rangeOf(ip); ok {
				return nil, fmt.Sprintf("%s would become unusable: pool %q avoids addresses ending in .0 and .255", ip, e.p.cfg.Name)
			}
			return nil, fmt.Sprintf("%s would be in no pool", ip)
		}
		if i > 0 && q != home {
			return nil, fmt.Sprintf("%s (pool %q) and %s (pool %q) would be in different pools", ips[0], home.cfg.Name, ip, q.cfg.Name)
		}
		home = q
	}
	return home, ""
}

// Allocate gives svc addresses satisfying req, and is idempotent: if svc
// already holds an assignment that satisfies req (same pool if one is
// named, the requested addresses, exactly the requested families), that
// assignment is returned unchanged, after re-checking that svc's (possibly
// updated) ports and keys still let it share its addresses; if they do not,
// the error wraps ErrInUse and the stored Service is left as it was.
//
// Otherwise a new assignment is looked for: the requested addresses (which
// must lie in a pool, in req.Pool if named, and be free or shareable), and
// for every other family the lowest address that is free or shareable (same
// sharing key, equal backend keys, no port/protocol collision), from
// req.Pool or else from the first auto-assign pool, in configuration order,
// that can serve every family (svc's current pool, if auto-assign, is tried
// first). A family svc already holds an address of in the chosen pool keeps
// it, so moving from single- to dual-stack does not renumber the first
// family. svc's old addresses stay reserved during the search; on
// success they are released, on failure they are kept and the error
// returned.
//
// Cost: O(log n) per family, plus the addresses sharing svc's key that lie
// below the lowest free address and whose ports collide.
func (a *Allocator) Allocate(svc Service, req Request) (Assignment, error) {
	if err := checkService(&svc); err != nil {
		return Assignment{}, err
	}
	fams, want, err := normRequest(req)
	if err != nil {
		return Assignment{}, fmt.Errorf("service %s: %w", svc.Key, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()

	if req.Pool != "" && a.pools.byName[req.Pool] == nil {
		return Assignment{}, errorf(ErrNoSuchPool, "service %s: pool %q does not exist", svc.Key, req.Pool)
	}
	cur := a.svcs[svc.Key]
	if cur != nil && satisfies(cur, req.Pool, fams, want) {
		for _, ip := range cur.ips {
			if err := a.conflict(ip, &svc); err != nil {
				return Assignment{}, err
			}
		}
		return a.commit(cur, svc, cur.pool, cur.ips), nil
	}

	var candidates []*pool
	switch {
	case want.any():
		p, err := a.poolOfAddrs(want, req.Pool)
		if err != nil {
			return Assignment{}, err
		}
		candidates = []*pool{p}
	case req.Pool != "":
		candidates = []*pool{a.pools.byName[req.Pool]}
	default:
		// The current pool goes first so that a changed request (say,
		// single- to dual-stack) does not move the Service needlessly.
		if cur != nil && cur.pool != nil && cur.pool.cfg.AutoAssign {
			candidates = append(candidates, cur.pool)
		}
		for _, p := range a.pools.list {
			if p.cfg.AutoAssign && (cur == nil || p != cur.pool) {
				candidates = append(candidates, p)
			}
		}
		if len(candidates) == 0 {
			return Assignment{}, errorf(ErrNoSuchPool, "no auto-assign pool is configured")
		}
	}

	var errs []error
	for _, p := range candidates {
		ips, err := a.plan(p, &svc, fams, want, cur)
		if err == nil {
			return a.commit(cur, svc, p, ips), nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return Assignment{}, errs[0]
	}
	for _, err := range errs {
		if errors.Is(err, ErrPoolExhausted) {
			return Assignment{}, errorf(ErrPoolExhausted, "no auto-assign pool has a free %s address (tried %s)", famNames(fams), joinNames(candidates))
		}
	}
	return Assignment{}, errorf(ErrFamily, "no auto-assign pool has %s ranges (tried %s)", famNames(fams), joinNames(candidates))
}

// Assign gives svc exactly ips (at most one per family, all in one pool),
// as when restoring the addresses found in Service status at start-up. It
// honours the sharing rules and ignores auto-assign. An address in no pool
// is an ErrNotInPool error; a conflict is an ErrInUse error; the previous
// assignment is kept then. Cost: O(log n) per address.
func (a *Allocator) Assign(svc Service, ips []netip.Addr) (Assignment, error) {
	if err := checkService(&svc); err != nil {
		return Assignment{}, err
	}
	if len(ips) == 0 {
		return Assignment{}, errorf(ErrInvalid, "service %s: no address to assign", svc.Key)
	}
	var want wanted
	var fams []Family
	for _, ip := range ips {
		ip, err := normAddr(ip)
		if err != nil {
			return Assignment{}, fmt.Errorf("service %s: %w", svc.Key, err)
		}
		f := familyOf(ip)
		if prev, dup := want.get(f); dup {
			return Assignment{}, errorf(ErrInvalid, "service %s: two %s addresses %s and %s", svc.Key, f, prev, ip)
		}
		want.set(ip)
		fams = append(fams, f)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p, err := a.poolOfAddrs(want, "")
	if err != nil {
		return Assignment{}, fmt.Errorf("service %s: %w", svc.Key, err)
	}
	out := make([]netip.Addr, 0, len(fams))
	for _, f := range fams {
		ip, _ := want.get(f)
		if err := a.conflict(ip, &svc); err != nil {
			return Assignment{}, err
		}
		out = append(out, ip)
	}
	return a.commit(a.svcs[svc.Key], svc, p, out), nil
}

// Reserve gives svc exactly ips (at most one per family) whether or not
// they lie in a pool, as when restoring the addresses found in Service
// status before any valid configuration is known: an address a Service
// holds stays its own whatever else is wrong. Addresses inside a pool are
// taken from it; the others are only marked in use, and a later SetPools
// must home them (or it is refused). A conflict with a Service that may not
// share an address is an ErrInUse error, and the previous assignment is
// kept then. Cost: O(log n) per address.
func (a *Allocator) Reserve(svc Service, ips []netip.Addr) (Assignment, error) {
	if err := checkService(&svc); err != nil {
		return Assignment{}, err
	}
	if len(ips) == 0 {
		return Assignment{}, errorf(ErrInvalid, "service %s: no address to reserve", svc.Key)
	}
	var want wanted
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		ip, err := normAddr(ip)
		if err != nil {
			return Assignment{}, fmt.Errorf("service %s: %w", svc.Key, err)
		}
		if prev, dup := want.get(familyOf(ip)); dup {
			return Assignment{}, errorf(ErrInvalid, "service %s: two %s addresses %s and %s", svc.Key, familyOf(ip), prev, ip)
		}
		want.set(ip)
		out = append(out, ip)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ip := range out {
		if err := a.conflict(ip, &svc); err != nil {
			return Assignment{}, err
		}
	}
	p, _ := a.pools.homeOf(out)
	return a.commit(a.svcs[svc.Key], svc, p, out), nil
}

// Release frees key's addresses, if it holds any. Idempotent. O(log n).
func (a *Allocator) Release(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.svcs[key]; s != nil {
		a.unhold(s)
		delete(a.svcs, key)
	}
}

// Get returns key's assignment. O(1).
func (a *Allocator) Get(key string) (Assignment, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.svcs[key]
	if s == nil {
		return Assignment{}, false
	}
	return s.assignment(), true
}

// Users returns the keys of the Services holding ip, sorted. O(users).
func (a *Allocator) Users(ip netip.Addr) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.addrs[ip.Unmap().WithZone("")]
	if st == nil {
		return nil
	}
	keys := make([]string, len(st.users))
	for i, u := range st.users {
		keys[i] = u.svc.Key
	}
	return keys
}

// PoolFor returns the name of the pool ip belongs to. O(log r) for r ranges.
func (a *Allocator) PoolFor(ip netip.Addr) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.pools.poolFor(ip.Unmap().WithZone("")); p != nil {
		return p.cfg.Name, true
	}
	return "", false
}

// Stats describes every pool, in configuration order. O(pools).
func (a *Allocator) Stats() []PoolStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]PoolStats, len(a.pools.list))
	for i, p := range a.pools.list {
		out[i] = PoolStats{Name: p.cfg.Name, Size: new(big.Int).Set(p.size), InUse: p.inUse}
	}
	return out
}

// plan picks svc's addresses in p without changing any state (but for
// dropping buggy addresses from free blocks, which changes no result).
func (a *Allocator) plan(p *pool, svc *Service, fams []Family, want wanted, cur *svcState) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(fams))
	for _, f := range fams {
		fs := p.fam(f)
		if fs == nil {
			return nil, errorf(ErrFamily, "service %s: pool %q has no %s range", svc.Key, p.cfg.Name, f)
		}
		if ip, ok := want.get(f); ok {
			if err := a.conflict(ip, svc); err != nil {
				return nil, err
			}
			out = append(out, ip)
			continue
		}
		if cur != nil {
			// An address svc holds in p stays its own (its pool may be nil
			// when Reserve kept addresses not all in one pool).
			if ip, ok := cur.addrOf(f); ok && a.addrs[ip].pool == p && a.conflict(ip, svc) == nil {
				out = append(out, ip)
				continue
			}
		}
		ip, ok := a.lowest(fs, svc)
		if !ok {
			return nil, errorf(ErrPoolExhausted, "service %s: no free address in pool %q for %s", svc.Key, p.cfg.Name, f)
		}
		out = append(out, ip)
	}
	return out, nil
}

// lowest returns the lowest address of fs that svc may take: the first free
// one, or a lower one that Services with svc's keys hold and whose ports do
// not collide with svc's.
func (a *Allocator) lowest(fs *famState, svc *Service) (netip.Addr, bool) {
	best, ok := fs.free.lowest()
	if svc.SharingKey == "" {
		return best, ok
	}
	t := fs.shared[shareKey{svc.SharingKey, svc.BackendKey}]
	if t == nil {
		return best, ok
	}
	t.Ascend(func(ip netip.Addr) bool {
		if ok && !ip.Less(best) {
			return false
		}
		if _, collide := portCollision(a.addrs[ip], svc); !collide {
			best, ok = ip, true
			return false
		}
		return true
	})
	return best, ok
}

// conflict returns an ErrInUse error if ip is held by Services other than
// svc that svc may not share it with.
func (a *Allocator) conflict(ip netip.Addr, svc *Service) error {
	st := a.addrs[ip]
	if st == nil {
		return nil
	}
	var others []string
	for _, u := range st.users {
		if u.svc.Key != svc.Key {
			others = append(others, u.svc.Key)
		}
	}
	if len(others) == 0 {
		return nil
	}
	var why string
	switch {
	case st.key.sharing == "":
		why = "no sharing key on " + others[0]
	case svc.SharingKey == "":
		why = "no sharing key on " + svc.Key
	case st.key.sharing != svc.SharingKey:
		why = fmt.Sprintf("sharing key mismatch (%q wanted, %q in use)", svc.SharingKey, st.key.sharing)
	case st.key.backend != svc.BackendKey:
		why = fmt.Sprintf("backend keys differ (%q wanted, %q in use)", svc.BackendKey, st.key.backend)
	default:
		owner, collide := portCollision(st, svc)
		if !collide {
			return nil
		}
		others = []string{owner.svc.svc.Key}
		why = fmt.Sprintf("port %s collides", owner.port)
	}
	return errorf(ErrInUse, "service %s: %s is in use by %s, which does not share it: %s", svc.Key, ip, strings.Join(others, ", "), why)
}

type portOwner struct {
	svc  *svcState
	port Port
}

// portCollision finds a user of st other than svc exposing one of svc's
// port/protocol pairs. O(users × ports), both small in practice.
func portCollision(st *addrState, svc *Service) (portOwner, bool) {
	for _, u := range st.users {
		if u.svc.Key == svc.Key {
			continue
		}
		for _, p := range u.svc.Ports {
			if slices.Contains(svc.Ports, p) {
				return portOwner{svc: u, port: p}, true
			}
		}
	}
	return portOwner{}, false
}

// commit replaces cur (which may be nil) by svc holding ips in p. The caller
// has checked that every address is free or shareable by svc once cur's
// holds are dropped, so commit cannot fail.
func (a *Allocator) commit(cur *svcState, svc Service, p *pool, ips []netip.Addr) Assignment {
	if cur != nil {
		a.unhold(cur)
	}
	s := &svcState{svc: svc, pool: p, ips: slices.Clone(ips)}
	a.svcs[svc.Key] = s
	a.hold(s)
	return s.assignment()
}

// hold records s as a user of its addresses. O(log n) per address.
func (a *Allocator) hold(s *svcState) {
	a.svcs[s.svc.Key] = s
	for _, ip := range s.ips {
		st := a.addrs[ip]
		if st == nil {
			st = &addrState{pool: a.pools.poolFor(ip), key: shareKey{s.svc.SharingKey, s.svc.BackendKey}}
			a.addrs[ip] = st
		}
		if st.pool != nil && len(st.users) == 0 {
			fs := st.pool.fam(familyOf(ip))
			if !fs.free.take(ip) {
				panic(fmt.Sprintf("ipam: %s is neither free nor in use in pool %q", ip, st.pool.cfg.Name))
			}
			st.pool.inUse++
			if st.key.sharing != "" {
				t := fs.shared[st.key]
				if t == nil {
					t = btree.NewWithFreeListG(8, netip.Addr.Less, a.addrFL)
					fs.shared[st.key] = t
				}
				t.ReplaceOrInsert(ip)
			}
		}
		i, _ := slices.BinarySearchFunc(st.users, s.svc.Key, func(u *svcState, k string) int { return cmp.Compare(u.svc.Key, k) })
		st.users = slices.Insert(st.users, i, s)
	}
}

// unhold removes s as a user of its addresses, freeing those nobody else
// holds. O(log n) per address.
func (a *Allocator) unhold(s *svcState) {
	for _, ip := range s.ips {
		st := a.addrs[ip]
		if st == nil {
			continue
		}
		st.users = slices.DeleteFunc(st.users, func(u *svcState) bool { return u == s })
		if len(st.users) > 0 {
			continue
		}
		delete(a.addrs, ip)
		if st.pool == nil {
			continue
		}
		st.pool.inUse--
		fs := st.pool.fam(familyOf(ip))
		if t := fs.shared[st.key]; t != nil {
			t.Delete(ip)
			if t.Len() == 0 {
				delete(fs.shared, st.key)
			}
		}
		fs.free.put(ip)
	}
}

// poolOfAddrs returns the one pool holding every requested address, which
// must be named if named is not "".
func (a *Allocator) poolOfAddrs(want wanted, named string) (*pool, error) {
	var p *pool
	var first netip.Addr
	for _, f := range []Family{IPv4, IPv6} {
		ip, ok := want.get(f)
		if !ok {
			continue
		}
		q := a.pools.poolFor(ip)
		if q == nil {
			if e, ok := a.pools.rangeOf(ip); ok {
				return nil, errorf(ErrNotInPool, "%s is in no pool (pool %q avoids addresses ending in .0 and .255)", ip, e.p.cfg.Name)
			}
			return nil, errorf(ErrNotInPool, "%s is in no pool", ip)
		}
		if named != "" && q.cfg.Name != named {
			return nil, errorf(ErrNotInPool, "%s is not in pool %q (it is in pool %q)", ip, named, q.cfg.Name)
		}
		if p != nil && q != p {
			return nil, errorf(ErrNotInPool, "requested addresses %s (pool %q) and %s (pool %q) are not in the same pool", first, p.cfg.Name, ip, q.cfg.Name)
		}
		p, first = q, ip
	}
	return p, nil
}

// satisfies reports whether cur already is what req asks for.
func satisfies(cur *svcState, named string, fams []Family, want wanted) bool {
	if cur.pool == nil {
		return false
	}
	if named != "" && cur.pool.cfg.Name != named {
		return false
	}
	if len(cur.ips) != len(fams) {
		return false
	}
	for _, f := range fams {
		ip, ok := cur.addrOf(f)
		if !ok {
			return false
		}
		if w, ok := want.get(f); ok && w != ip {
			return false
		}
	}
	return true
}

func checkService(svc *Service) error {
	if svc.Key == "" {
		return errorf(ErrInvalid, "service key is empty")
	}
	svc.Ports = slices.Clone(svc.Ports)
	return nil
}

func normAddr(ip netip.Addr) (netip.Addr, error) {
	if !ip.IsValid() {
		return ip, errorf(ErrInvalid, "invalid (zero) address")
	}
	return ip.Unmap().WithZone(""), nil
}

// wanted holds the requested addresses by family: [0] IPv4, [1] IPv6; the
// zero Addr means none. An array, not a map, keeps Allocate allocation-light.
type wanted [2]netip.Addr

func (w *wanted) get(f Family) (netip.Addr, bool) {
	i, ok := famIndex(f)
	if !ok || !w[i].IsValid() {
		return netip.Addr{}, false
	}
	return w[i], true
}

func (w *wanted) set(ip netip.Addr) {
	i, _ := famIndex(familyOf(ip))
	w[i] = ip
}

func (w *wanted) any() bool { return w[0].IsValid() || w[1].IsValid() }

// normRequest checks req and returns its families (defaulted) and requested
// addresses.
func normRequest(req Request) ([]Family, wanted, error) {
	var want wanted
	var ipFams []Family
	for _, ip := range req.IPs {
		ip, err := normAddr(ip)
		if err != nil {
			return nil, want, err
		}
		f := familyOf(ip)
		if prev, dup := want.get(f); dup {
			return nil, want, errorf(ErrInvalid, "two %s addresses requested, %s and %s", f, prev, ip)
		}
		want.set(ip)
		ipFams = append(ipFams, f)
	}
	fams := req.Families
	switch {
	case len(fams) == 0 && len(ipFams) > 0:
		fams = ipFams
	case len(fams) == 0:
		fams = []Family{IPv4}
	}
	var seen [2]bool
	for _, f := range fams {
		i, ok := famIndex(f)
		if !ok {
			return nil, want, errorf(ErrInvalid, "unknown address family %d", int(f))
		}
		if seen[i] {
			return nil, want, errorf(ErrInvalid, "family %s listed twice", f)
		}
		seen[i] = true
	}
	for _, ip := range want {
		if i, _ := famIndex(familyOf(ip)); ip.IsValid() && !seen[i] {
			return nil, want, errorf(ErrFamily, "requested address %s is %s but only %s is wanted", ip, familyOf(ip), famNames(fams))
		}
	}
	return fams, want, nil
}

func famNames(fams []Family) string {
	names := make([]string, len(fams))
	for i, f := range fams {
		names[i] = f.String()
	}
	return strings.Join(names, "+")
}
