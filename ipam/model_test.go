package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"go4.org/netipx"
)

// refAlloc is a brute-force model of the allocator's contract: it keeps only
// Service → assignment and finds everything else by scanning every address
// of every pool. Small pools only.
type refAlloc struct {
	pools []Pool
	svcs  map[string]refSvc
}

type refSvc struct {
	svc  Service
	pool string
	ips  []netip.Addr
}

func (m *refAlloc) poolFor(ip netip.Addr) (Pool, bool) {
	for _, p := range m.pools {
		for _, r := range p.Ranges {
			if r.Contains(ip) && !(p.AvoidBuggyIPs && isBuggy(ip)) {
				return p, true
			}
		}
	}
	return Pool{}, false
}

func (m *refAlloc) poolNamed(name string) (Pool, bool) {
	for _, p := range m.pools {
		if p.Name == name {
			return p, true
		}
	}
	return Pool{}, false
}

// canUse: every other holder of ip must share it with svc.
func (m *refAlloc) canUse(ip netip.Addr, svc Service) bool {
	for key, o := range m.svcs {
		if key == svc.Key || !slices.Contains(o.ips, ip) {
			continue
		}
		if o.svc.SharingKey == "" || svc.SharingKey == "" || o.svc.SharingKey != svc.SharingKey || o.svc.BackendKey != svc.BackendKey {
			return false
		}
		for _, p := range o.svc.Ports {
			if slices.Contains(svc.Ports, p) {
				return false
			}
		}
	}
	return true
}

// addresses lists the pool's allocatable addresses of family f in order.
func (m *refAlloc) addresses(p Pool, f Family) []netip.Addr {
	var out []netip.Addr
	for _, r := range p.Ranges {
		if familyOf(r.From()) != f {
			continue
		}
		for ip := r.From(); ; ip = ip.Next() {
			if !(p.AvoidBuggyIPs && isBuggy(ip)) {
				out = append(out, ip)
			}
			if ip == r.To() {
				break
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func (m *refAlloc) has(p Pool, f Family) bool {
	return slices.ContainsFunc(p.Ranges, func(r netipx.IPRange) bool { return familyOf(r.From()) == f })
}

func (m *refAlloc) allocate(svc Service, req Request) (Assignment, error) {
	fams, want, err := normRequest(req) // input validation is not what is modelled
	if err != nil {
		return Assignment{}, err
	}
	if req.Pool != "" {
		if _, ok := m.poolNamed(req.Pool); !ok {
			return Assignment{}, ErrNoSuchPool
		}
	}
	cur, hasCur := m.svcs[svc.Key]
	if hasCur && (req.Pool == "" || req.Pool == cur.pool) && len(cur.ips) == len(fams) {
		same := true
		for _, f := range fams {
			i := slices.IndexFunc(cur.ips, func(ip netip.Addr) bool { return familyOf(ip) == f })
			if w, requested := want.get(f); i < 0 || (requested && w != cur.ips[i]) {
				same = false
			}
		}
		if same {
			for _, ip := range cur.ips {
				if !m.canUse(ip, svc) {
					return Assignment{}, ErrInUse
				}
			}
			m.svcs[svc.Key] = refSvc{svc: svc, pool: cur.pool, ips: cur.ips}
			return Assignment{Pool: cur.pool, IPs: slices.Clone(cur.ips)}, nil
		}
	}
	var candidates []Pool
	switch {
	case want.any():
		var p Pool
		for i, f := range []Family{IPv4, IPv6} {
			ip, ok := want.get(f)
			if !ok {
				continue
			}
			q, ok := m.poolFor(ip)
			if !ok || (req.Pool != "" && q.Name != req.Pool) || (i == 1 && p.Name != "" && p.Name != q.Name) {
				return Assignment{}, ErrNotInPool
			}
			p = q
		}
		candidates = []Pool{p}
	case req.Pool != "":
		p, _ := m.poolNamed(req.Pool)
		candidates = []Pool{p}
	default:
		for _, p := range m.pools {
			if p.AutoAssign && hasCur && p.Name == cur.pool {
				candidates = append(candidates, p)
			}
		}
		for _, p := range m.pools {
			if p.AutoAssign && !(hasCur && p.Name == cur.pool) {
				candidates = append(candidates, p)
			}
		}
		if len(candidates) == 0 {
			return Assignment{}, ErrNoSuchPool
		}
	}
	var errs []error
	for _, p := range candidates {
		ips, err := m.plan(p, svc, fams, want, cur, hasCur)
		if err == nil {
			m.svcs[svc.Key] = refSvc{svc: svc, pool: p.Name, ips: ips}
			return Assignment{Pool: p.Name, IPs: slices.Clone(ips)}, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return Assignment{}, errs[0]
	}
	if slices.Contains(errs, ErrPoolExhausted) {
		return Assignment{}, ErrPoolExhausted
	}
	return Assignment{}, ErrFamily
}

func (m *refAlloc) plan(p Pool, svc Service, fams []Family, want wanted, cur refSvc, hasCur bool) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range fams {
		if !m.has(p, f) {
			return nil, ErrFamily
		}
		if ip, ok := want.get(f); ok {
			if !m.canUse(ip, svc) {
				return nil, ErrInUse
			}
			out = append(out, ip)
			continue
		}
		if hasCur && cur.pool == p.Name {
			if i := slices.IndexFunc(cur.ips, func(ip netip.Addr) bool { return familyOf(ip) == f }); i >= 0 && m.canUse(cur.ips[i], svc) {
				out = append(out, cur.ips[i])
				continue
			}
		}
		found := false
		for _, ip := range m.addresses(p, f) {
			if m.canUse(ip, svc) {
				out, found = append(out, ip), true
				break
			}
		}
		if !found {
			return nil, ErrPoolExhausted
		}
	}
	return out, nil
}

func (m *refAlloc) assign(svc Service, ips []netip.Addr) (Assignment, error) {
	var p Pool
	for i, ip := range ips {
		q, ok := m.poolFor(ip)
		if !ok || (i > 0 && q.Name != p.Name) {
			return Assignment{}, ErrNotInPool
		}
		p = q
	}
	for _, ip := range ips {
		if !m.canUse(ip, svc) {
			return Assignment{}, ErrInUse
		}
	}
	m.svcs[svc.Key] = refSvc{svc: svc, pool: p.Name, ips: slices.Clone(ips)}
	return Assignment{Pool: p.Name, IPs: slices.Clone(ips)}, nil
}

// setPools applies pools unless an assignment would lose an address; then
// it changes nothing and returns the keys that would have lost one.
func (m *refAlloc) setPools(pools []Pool) []string {
	prev := m.pools
	m.pools = pools
	var refused []string
	homes := map[string]string{}
	for key, s := range m.svcs {
		var p Pool
		ok := true
		for i, ip := range s.ips {
			q, in := m.poolFor(ip)
			if !in || (i > 0 && q.Name != p.Name) {
				ok = false
				break
			}
			p = q
		}
		if !ok {
			refused = append(refused, key)
			continue
		}
		homes[key] = p.Name
	}
	if len(refused) > 0 {
		m.pools = prev
		slices.Sort(refused)
		return refused
	}
	for key, s := range m.svcs {
		s.pool = homes[key]
		m.svcs[key] = s
	}
	return nil
}

func (m *refAlloc) users(ip netip.Addr) []string {
	var out []string
	for key, s := range m.svcs {
		if slices.Contains(s.ips, ip) {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out
}

func (m *refAlloc) inUse(name string) int {
	seen := map[netip.Addr]bool{}
	for _, s := range m.svcs {
		if s.pool == name {
			for _, ip := range s.ips {
				seen[ip] = true
			}
		}
	}
	return len(seen)
}

// errKind maps an error to the sentinel it matches.
func errKind(err error) error {
	for _, k := range []error{ErrNoSuchPool, ErrPoolExhausted, ErrNotInPool, ErrInUse, ErrFamily, ErrInvalid} {
		if errors.Is(err, k) {
			return k
		}
	}
	return err
}

// chooser supplies the random choices of a model run: math/rand in the
// test, the fuzzer's bytes in the fuzz target.
type chooser interface{ IntN(n int) int }

type byteChooser struct{ b []byte }

func (c *byteChooser) IntN(n int) int {
	if len(c.b) == 0 {
		return 0
	}
	v := int(c.b[0])
	c.b = c.b[1:]
	return v % n
}

// modelConfigs are the pool sets a model run switches between.
func modelConfigs(t testing.TB) [][]Pool {
	t.Helper()
	return [][]Pool{
		{
			mkPool(t, "a", true, true, "10.0.0.252-10.0.1.3", "fd00::-fd00::5"),
			mkPool(t, "b", false, false, "10.0.2.0/30"),
			mkPool(t, "c", true, false, "10.0.3.0/30", "fd00:1::/126"),
		},
		{ // a shrinks and stops avoiding buggy IPs, b becomes auto-assign, c loses IPv6
			mkPool(t, "a", true, false, "10.0.0.254-10.0.1.1", "fd00::2-fd00::7"),
			mkPool(t, "b", true, false, "10.0.2.0/30"),
			mkPool(t, "c", true, false, "10.0.3.0/30"),
		},
		{ // one manual pool takes everything, plus a tiny auto-assign one
			mkPool(t, "c", false, true, "10.0.0.0-10.0.3.255", "fd00::-fd00::7", "fd00:1::/126"),
			mkPool(t, "a", true, true, "10.0.4.0-10.0.4.3", "fd00:2::/127"),
		},
	}
}

var (
	modelCandidates = addrs("10.0.4.1", "10.0.0.252", "10.0.0.255", "10.0.1.0", "10.0.1.2", "10.0.2.1", "10.0.3.3", "10.0.3.200",
		"10.9.9.9", "fd00::1", "fd00::7", "fd00:1::2", "fd00:9::")
	modelFamilies = [][]Family{nil, {IPv4}, {IPv6}, {IPv4, IPv6}, {IPv6, IPv4}}
	modelPorts    = []Port{tcp80, tcp443, udp53}
)

// runModel applies steps random operations to an Allocator and to the model
// and fails at the first difference in results or state.
func runModel(t *testing.T, r chooser, steps int, outcomes map[string]int) {
	t.Helper()
	configs := modelConfigs(t)
	a := newAlloc(t, configs[0]...)
	m := &refAlloc{pools: configs[0], svcs: map[string]refSvc{}}
	randSvc := func() Service {
		s := Service{Key: fmt.Sprintf("ns/s%d", r.IntN(12))}
		s.SharingKey = []string{"", "k1", "k2", "k1"}[r.IntN(4)]
		s.BackendKey = []string{"", "", "app=x"}[r.IntN(3)]
		for _, p := range modelPorts {
			if r.IntN(3) == 0 {
				s.Ports = append(s.Ports, p)
			}
		}
		return s
	}
	for step := range steps {
		var op string
		switch n := r.IntN(100); {
		case n < 60:
			s := randSvc()
			req := Request{Pool: []string{"", "", "", "a", "b", "c", "zz"}[r.IntN(7)], Families: modelFamilies[r.IntN(len(modelFamilies))]}
			if r.IntN(4) == 0 {
				req.IPs = []netip.Addr{modelCandidates[r.IntN(len(modelCandidates))]}
				if req.Families == nil && r.IntN(2) == 0 {
					req.Families = []Family{IPv4, IPv6}
				}
			}
			op = fmt.Sprintf("Allocate(%+v, %+v)", s, req)
			got, err := a.Allocate(s, req)
			want, werr := m.allocate(s, req)
			if errKind(err) != errKind(werr) || !equalAssignment(got, want) {
				t.Fatalf("step %d %s = %v, %v; model %v, %v", step, op, got, err, want, werr)
			}
			outcomes[outcome(err, got)]++
			if err == nil && len(a.Users(got.IPs[0])) > 1 {
				outcomes["ok shared"]++
			}
		case n < 70:
			s := randSvc()
			ips := []netip.Addr{modelCandidates[r.IntN(len(modelCandidates))]}
			if r.IntN(3) == 0 {
				ips = append(ips, modelCandidates[r.IntN(len(modelCandidates))])
			}
			if len(ips) == 2 && familyOf(ips[0]) == familyOf(ips[1]) {
				ips = ips[:1]
			}
			op = fmt.Sprintf("Assign(%+v, %v)", s, ips)
			got, err := a.Assign(s, ips)
			want, werr := m.assign(s, ips)
			if errKind(err) != errKind(werr) || !equalAssignment(got, want) {
				t.Fatalf("step %d %s = %v, %v; model %v, %v", step, op, got, err, want, werr)
			}
		case n < 95:
			key := fmt.Sprintf("ns/s%d", r.IntN(12))
			op = "Release(" + key + ")"
			a.Release(key)
			delete(m.svcs, key)
		default:
			cfg := configs[r.IntN(len(configs))]
			op = fmt.Sprintf("SetPools(%v)", cfg)
			err := a.SetPools(cfg)
			var got []string
			if rerr := (*ReleaseError)(nil); errors.As(err, &rerr) {
				for _, s := range rerr.Services {
					got = append(got, s.Key)
				}
				outcomes["SetPools refused"]++
			} else if err != nil {
				t.Fatalf("step %d %s: %v", step, op, err)
			}
			if want := m.setPools(cfg); !slices.Equal(got, want) {
				t.Fatalf("step %d %s refused for %v, model %v", step, op, got, want)
			}
		}
		checkModel(t, a, m, modelCandidates, fmt.Sprintf("step %d after %s", step, op))
		checkInvariants(t, a, fmt.Sprintf("step %d after %s", step, op))
	}
}

// TestAgainstModel runs a few thousand random operations against the model.
func TestAgainstModel(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			outcomes := map[string]int{}
			runModel(t, rand.New(rand.NewPCG(seed, 42)), 700, outcomes)
			t.Logf("outcomes: %v", outcomes)
			for _, k := range []string{"ok single", "ok dual", "ok shared", ErrInUse.Error(), ErrNotInPool.Error()} {
				if outcomes[k] == 0 {
					t.Errorf("no %q outcome: the run does not exercise enough", k)
				}
			}
		})
	}
}

// FuzzAgainstModel drives the same comparison from fuzzer bytes.
func FuzzAgainstModel(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0\xd0\xe0\xf0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &byteChooser{b: data}
		runModel(t, c, len(data)/3+1, map[string]int{})
	})
}

func outcome(err error, got Assignment) string {
	if err != nil {
		return errKind(err).Error()
	}
	if len(got.IPs) == 2 {
		return "ok dual"
	}
	return "ok single"
}

func equalAssignment(a, b Assignment) bool {
	return a.Pool == b.Pool && slices.Equal(a.IPs, b.IPs)
}

func checkModel(t *testing.T, a *Allocator, m *refAlloc, candidates []netip.Addr, where string) {
	t.Helper()
	for i := range 12 {
		key := fmt.Sprintf("ns/s%d", i)
		got, ok := a.Get(key)
		want, wok := m.svcs[key]
		if ok != wok || (ok && !equalAssignment(got, Assignment{Pool: want.pool, IPs: want.ips})) {
			t.Fatalf("%s: Get(%s) = %v %v, model %v %v", where, key, got, ok, want, wok)
		}
	}
	for _, ip := range candidates {
		if got, want := a.Users(ip), m.users(ip); !slices.Equal(got, want) {
			t.Fatalf("%s: Users(%s) = %v, model %v", where, ip, got, want)
		}
	}
	for _, st := range a.Stats() {
		if want := m.inUse(st.Name); st.InUse != want {
			t.Fatalf("%s: pool %s in use %d, model %d", where, st.Name, st.InUse, want)
		}
	}
}
