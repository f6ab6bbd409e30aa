package config

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/google/btree"
	"go4.org/netipx"
)

// Parse decodes and validates a configuration: the content of the ConfigMap's config key.
// An empty document (or one holding only comments) is a valid, empty configuration, as in
// MetalLB. Errors are *Error values naming the field, the value and the reason.
//
// Validation follows MetalLB v0.12 (internal/config), in its order: BFD profiles, peers,
// communities, then pools one by one (each pool's own rules, then name uniqueness, then
// overlap with the entries before it). Its cost is bounded by the document's size: the
// decoding is limited before anything is expanded (see MaxDocumentSize), and every check
// is O(n log n) in the number of entries.
func Parse(data []byte) (*Config, error) {
	raw, err := decode(data)
	if err != nil {
		return nil, err
	}
	cfg := &Config{BFDProfiles: map[string]*BFDProfile{}}

	for i, rb := range raw.BFDProfiles {
		p := path{fmt.Sprintf("bfd-profiles[%d]", i)}
		if rb.Name != "" {
			p = path{fmt.Sprintf("bfd-profiles[%d] %q", i, shorten(rb.Name))}
		}
		b, err := parseBFDProfile(rb, p)
		if err != nil {
			return nil, err
		}
		if _, dup := cfg.BFDProfiles[b.Name]; dup {
			return nil, p.errorf(ErrDuplicate, "name %q: a BFD profile with this name is already defined", b.Name)
		}
		cfg.BFDProfiles[b.Name] = b
	}

	sessions := map[string]int{} // peerKey → index, for MetalLB's duplicate-peer rule
	for i, rp := range raw.Peers {
		p := path{fmt.Sprintf("peers[%d]", i)}
		peer, err := parsePeer(rp, p)
		if err != nil {
			return nil, err
		}
		key := peerKey(peer)
		if j, dup := sessions[key]; dup {
			return nil, p.errorf(ErrDuplicate, "peer-address %q: same session as peers[%d]", rp.Addr, j)
		}
		sessions[key] = i
		cfg.Peers = append(cfg.Peers, peer)
	}

	communities := map[string]Community{}
	for _, name := range sortedKeys(raw.BGPCommunities) {
		v := raw.BGPCommunities[name]
		p := path{fmt.Sprintf("bgp-communities %q", shorten(name))}
		if err := checkName(name); err != nil {
			return nil, p.errorf(ErrInvalid, "invalid name: %v", err)
		}
		c, err := ParseCommunity(v)
		if err != nil {
			return nil, p.errorf(ErrInvalid, "value %q: %v", v, err)
		}
		communities[name] = c
	}

	names := map[string]int{}
	seen := newEntrySet()
	var poolPaths []path // where each pool is, for overlap messages
	prefixes := 0
	for i, rp := range raw.Pools {
		p := path{fmt.Sprintf("address-pools[%d]", i)}
		if rp.Name != "" {
			p = path{fmt.Sprintf("address-pools[%d] %q", i, shorten(rp.Name))}
		}
		pool, entries, err := parsePool(rp, p, communities, &prefixes)
		if err != nil {
			return nil, err
		}
		if j, dup := names[pool.Name]; dup {
			return nil, p.errorf(ErrDuplicate, "name %q: already used by address-pools[%d]", pool.Name, j)
		}
		names[pool.Name] = i
		poolPaths = append(poolPaths, p)
		for k, e := range entries {
			if o, ok := seen.firstOverlap(e); ok {
				return nil, p.errorf(ErrOverlap, "addresses[%d] %q overlaps with %s addresses[%d] %q",
					k, e.text, poolPaths[o.pool].String(), o.index, o.text)
			}
			e.pool, e.index = i, k
			seen.add(e)
		}
		cfg.Pools = append(cfg.Pools, pool)
	}
	return cfg, nil
}

// entry is one parsed `addresses` item.
type entry struct {
	text     string
	rng      netipx.IPRange
	shortest int // the length of its widest prefix
	pool     int // index in address-pools
	index    int // in the pool's addresses
}

// entrySet holds address entries that never overlap one another, in document order and
// ordered by start address.
type entrySet struct {
	all     []entry
	byStart *btree.BTreeG[int] // indexes in all; -1 stands for pivot
	pivot   netip.Addr
}

func newEntrySet() *entrySet {
	s := &entrySet{}
	start := func(i int) netip.Addr {
		if i < 0 {
			return s.pivot
		}
		return s.all[i].rng.From()
	}
	s.byStart = btree.NewG(16, func(a, b int) bool {
		if c := start(a).Compare(start(b)); c != 0 {
			return c < 0
		}
		// Entries never share a start; the pivot sorts after an entry starting where it
		// does, so that walking down from it includes that entry.
		return a >= 0 && b < 0
	})
	return s
}

// add inserts e, which must not overlap an entry of s. O(log n).
func (s *entrySet) add(e entry) {
	s.all = append(s.all, e)
	s.byStart.ReplaceOrInsert(len(s.all) - 1)
}

// firstOverlap returns the entry written first that overlaps e. O(log n + overlapping
// entries).
func (s *entrySet) firstOverlap(e entry) (entry, bool) {
	first := -1
	// Sorted by start and disjoint, so walking down from the last entry starting at or
	// before e's end meets the overlapping ones first, and can stop at the first that
	// ends before e starts.
	s.pivot = e.rng.To()
	s.byStart.DescendLessOrEqual(-1, func(j int) bool {
		if s.all[j].rng.To().Less(e.rng.From()) {
			return false
		}
		if first < 0 || j < first {
			first = j
		}
		return true
	})
	if first < 0 {
		return entry{}, false
	}
	return s.all[first], true
}

// maxPrefixes bounds the CIDR prefixes the pools' entries split into (Pool.CIDRs): a range
// of IPv6 addresses can need 254 of them.
const maxPrefixes = 100_000

func parsePool(rp rawPool, p path, communities map[string]Community, prefixes *int) (*Pool, []entry, error) {
	if rp.Name == "" {
		return nil, nil, p.errorf(ErrMissing, "name: missing (every pool needs a unique name)")
	}
	if err := checkName(rp.Name); err != nil {
		return nil, nil, p.errorf(ErrInvalid, "name %q: %v", rp.Name, err)
	}
	pool := &Pool{
		Name:          rp.Name,
		Protocol:      Protocol(rp.Protocol),
		AutoAssign:    true,
		AvoidBuggyIPs: rp.AvoidBuggyIPs,
	}
	if rp.AutoAssign != nil {
		pool.AutoAssign = *rp.AutoAssign
	}
	if len(rp.Addresses) == 0 {
		return nil, nil, p.errorf(ErrMissing, "addresses: missing (a pool needs at least one CIDR or range)")
	}
	entries := make([]entry, 0, len(rp.Addresses))
	pool.Ranges = make([]netipx.IPRange, 0, len(rp.Addresses))
	for k, text := range rp.Addresses {
		rng, pfxs, err := parseAddresses(text)
		if err == nil {
			err = checkUsable(rng)
		}
		if err != nil {
			return nil, nil, p.with("addresses[%d] %q", k, text).errorf(ErrInvalid, "%v", err)
		}
		if *prefixes += len(pfxs); *prefixes > maxPrefixes {
			return nil, nil, p.with("addresses[%d] %q", k, text).errorf(ErrTooLarge,
				"the pools' addresses split into more than %d CIDR prefixes, more than ironlb keeps", maxPrefixes)
		}
		entries = append(entries, entry{text: text, rng: rng, shortest: shortestPrefix(pfxs)})
		pool.Ranges = append(pool.Ranges, rng)
		pool.CIDRs = append(pool.CIDRs, pfxs...)
	}

	switch pool.Protocol {
	case Layer2:
		if len(rp.BGPAdvertisements) > 0 {
			return nil, nil, p.errorf(ErrInvalid, "bgp-advertisements: only allowed in a bgp pool, this one is layer2")
		}
	case BGP:
		ads, err := parseAdvertisements(rp.BGPAdvertisements, entries, p, communities)
		if err != nil {
			return nil, nil, err
		}
		pool.BGPAdvertisements = ads
	case "":
		return nil, nil, p.errorf(ErrMissing, "protocol: missing (want %q or %q)", Layer2, BGP)
	default:
		return nil, nil, p.errorf(ErrInvalid, "protocol %q: unknown (want %q or %q)", rp.Protocol, Layer2, BGP)
	}
	return pool, entries, nil
}

// unusable are the address blocks no pool may touch: an address in them can never reach a
// Service, so a pool holding one only hands out dead addresses. A range that includes
// any of them (0.0.0.0/0, ::/0, 127.0.0.0/8, ...) is refused as a whole rather than
// trimmed, so that what the pool holds is always what is written.
var unusable = []struct {
	block netipx.IPRange
	what  string
}{
	{blockOf("0.0.0.0/32"), "the unspecified address"},
	{blockOf("127.0.0.0/8"), "loopback addresses"},
	{blockOf("169.254.0.0/16"), "link-local addresses"},
	{blockOf("224.0.0.0/4"), "multicast addresses"},
	{blockOf("255.255.255.255/32"), "the limited broadcast address"},
	{blockOf("::/128"), "the unspecified address"},
	{blockOf("::1/128"), "the loopback address"},
	{blockOf("::ffff:0:0/96"), "IPv4-mapped addresses (write IPv4 addresses as IPv4)"},
	{blockOf("fe80::/10"), "link-local addresses"},
	{blockOf("ff00::/8"), "multicast addresses"},
}

func blockOf(cidr string) netipx.IPRange { return netipx.RangeOfPrefix(netip.MustParsePrefix(cidr)) }

// checkUsable refuses a range that touches an unusable block. O(len(unusable)).
func checkUsable(r netipx.IPRange) error {
	for _, u := range unusable {
		if r.Overlaps(u.block) {
			b, _ := u.block.Prefix()
			return fmt.Errorf("includes %s (%s), where no Service can be reached", b, u.what)
		}
	}
	return nil
}

// checkName refuses names that would garble the logs, Events and metric labels they appear
// in: control characters (newlines, tabs, escapes, ...). The YAML parser has already
// refused invalid UTF-8.
func checkName(s string) error {
	for i, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %U at byte %d (names must be printable)", r, i)
		}
	}
	return nil
}

// parseAddresses parses one `addresses` item: a CIDR ("10.0.0.0/24"; host bits are
// ignored, as net.ParseCIDR does) or a range of two addresses of the same family
// ("10.0.0.1-10.0.0.9", spaces around the ends allowed).
func parseAddresses(s string) (netipx.IPRange, []netip.Prefix, error) {
	if !strings.Contains(s, "-") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netipx.IPRange{}, nil, fmt.Errorf("not a CIDR or an address range: %v", trimParseError("netip.ParsePrefix", s, err))
		}
		if pfx.Addr().Is4In6() {
			return netipx.IPRange{}, nil, fmt.Errorf("IPv4-mapped IPv6 prefix: write it as an IPv4 CIDR")
		}
		pfx = pfx.Masked()
		return netipx.RangeOfPrefix(pfx), []netip.Prefix{pfx}, nil
	}
	first, last, _ := strings.Cut(s, "-")
	from, err := parseAddr(strings.TrimSpace(first))
	if err != nil {
		return netipx.IPRange{}, nil, fmt.Errorf("invalid range start %q: %v", first, err)
	}
	to, err := parseAddr(strings.TrimSpace(last))
	if err != nil {
		return netipx.IPRange{}, nil, fmt.Errorf("invalid range end %q: %v", last, err)
	}
	if from.Is4() != to.Is4() {
		return netipx.IPRange{}, nil, fmt.Errorf("range mixes IPv4 and IPv6")
	}
	if from.Compare(to) > 0 {
		return netipx.IPRange{}, nil, fmt.Errorf("range start is after end")
	}
	rng := netipx.IPRangeFrom(from, to)
	return rng, rng.Prefixes(), nil
}

// parseAddr parses an IP address as net.ParseIP does (no zone; IPv4-mapped IPv6 is IPv4).
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, trimParseError("ParseAddr", s, err)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("zones are not allowed")
	}
	return a.Unmap(), nil
}

// trimParseError drops the "ParseXxx(input): " prefix of netip's errors, since ours quote
// the input already.
func trimParseError(fn, input string, err error) error {
	msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("%s(%q): ", fn, input))
	return errors.New(msg)
}

func parseAdvertisements(raws []rawBGPAdvertisment, entries []entry, pool path, communities map[string]Community) ([]*BGPAdvertisement, error) {
	if len(raws) == 0 {
		return []*BGPAdvertisement{{AggregationLength: 32, AggregationLengthV6: 128}}, nil
	}
	ads := make([]*BGPAdvertisement, 0, len(raws))
	written := map[string]int{} // adKey → index
	for i, ra := range raws {
		p := pool.with("bgp-advertisements[%d]", i)
		// As MetalLB: two advertisements written the same way are a mistake. Like MetalLB
		// it compares what is written, so {} and {aggregation-length: 32} differ.
		if j, dup := written[adKey(ra)]; dup {
			return nil, p.errorf(ErrDuplicate, "same as bgp-advertisements[%d] (each advertisement must differ)", j)
		}
		written[adKey(ra)] = i
		ad := &BGPAdvertisement{AggregationLength: 32, AggregationLengthV6: 128}
		if ra.AggregationLength != nil {
			ad.AggregationLength = *ra.AggregationLength
			// MetalLB checks the IPv4 length even in an IPv6-only pool.
			if ad.AggregationLength < 0 || ad.AggregationLength > 32 {
				return nil, p.errorf(ErrInvalid, "aggregation-length %d: must be from 0 to 32", ad.AggregationLength)
			}
		}
		if ra.AggregationLengthV6 != nil {
			ad.AggregationLengthV6 = *ra.AggregationLengthV6
			if ad.AggregationLengthV6 < 0 || ad.AggregationLengthV6 > 128 {
				return nil, p.errorf(ErrInvalid, "aggregation-length-v6 %d: must be from 0 to 128", ad.AggregationLengthV6)
			}
		}
		// As MetalLB: aggregating to a prefix shorter than the entry's own would announce
		// addresses outside the pool. For a range, only its widest prefix must fit, the
		// narrower edge prefixes are then announced as part of a wider route.
		for k, e := range entries {
			field, length := "aggregation-length", ad.AggregationLength
			if e.rng.From().Is6() {
				field, length = "aggregation-length-v6", ad.AggregationLengthV6
			}
			if shortest := e.shortest; length < shortest {
				return nil, p.errorf(ErrInvalid, "%s %d: shorter than prefix length /%d of addresses[%d] %q",
					field, length, shortest, k, e.text)
			}
		}
		if ra.LocalPref != nil {
			ad.LocalPref = *ra.LocalPref
		}
		listed := map[string]int{}
		for j, name := range ra.Communities {
			// As MetalLB: the same text twice in one list is refused; a name and the
			// value it stands for are merged.
			if k, dup := listed[name]; dup {
				return nil, p.errorf(ErrDuplicate, "communities[%d] %q: already listed as communities[%d]", j, name, k)
			}
			listed[name] = j
			c, ok := communities[name]
			if !ok {
				var err error
				c, err = ParseCommunity(name)
				if err != nil {
					return nil, p.errorf(ErrInvalid, "communities[%d] %q: neither a bgp-communities name nor a community: %v", j, name, err)
				}
			}
			ad.Communities = append(ad.Communities, c)
		}
		slices.SortFunc(ad.Communities, func(a, b Community) int { return cmp.Compare(a.Uint32(), b.Uint32()) })
		ad.Communities = slices.Compact(ad.Communities)
		ads = append(ads, ad)
	}
	return ads, nil
}

// adKey identifies an advertisement as written, telling an absent field from one set to
// its default and an absent communities list from an empty one, as MetalLB's comparison
// of its raw advertisements does.
func adKey(ra rawBGPAdvertisment) string {
	var b strings.Builder
	for _, v := range []*int{ra.AggregationLength, ra.AggregationLengthV6} {
		if v == nil {
			b.WriteString("-|")
		} else {
			fmt.Fprintf(&b, "%d|", *v)
		}
	}
	if ra.LocalPref == nil {
		b.WriteString("-|")
	} else {
		fmt.Fprintf(&b, "%d|", *ra.LocalPref)
	}
	if ra.Communities != nil {
		b.WriteString("[")
		for _, c := range ra.Communities {
			fmt.Fprintf(&b, "%q,", c)
		}
	}
	return b.String()
}

func shortestPrefix(ps []netip.Prefix) int {
	shortest := 128
	for _, p := range ps {
		shortest = min(shortest, p.Bits())
	}
	return shortest
}

// Community is a standard BGP community (RFC 1997), written "aa:nn".
type Community struct{ High, Low uint16 }

// String returns the "aa:nn" form.
func (c Community) String() string { return fmt.Sprintf("%d:%d", c.High, c.Low) }

// Uint32 returns the community as carried on the wire.
func (c Community) Uint32() uint32 { return uint32(c.High)<<16 | uint32(c.Low) }

// ParseCommunity parses "aa:nn", each half a decimal number from 0 to 65535.
func ParseCommunity(s string) (Community, error) {
	hi, lo, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(lo, ":") {
		return Community{}, fmt.Errorf("want two numbers as \"aa:nn\"")
	}
	h, err := strconv.ParseUint(hi, 10, 16)
	if err != nil {
		return Community{}, fmt.Errorf("first half %q is not a number from 0 to 65535", hi)
	}
	l, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return Community{}, fmt.Errorf("second half %q is not a number from 0 to 65535", lo)
	}
	return Community{High: uint16(h), Low: uint16(l)}, nil
}

func parseBFDProfile(rb rawBFDProfile, p path) (*BFDProfile, error) {
	if rb.Name == "" {
		return nil, p.errorf(ErrMissing, "name: missing")
	}
	if err := checkName(rb.Name); err != nil {
		return nil, p.errorf(ErrInvalid, "name %q: %v", rb.Name, err)
	}
	b := &BFDProfile{Name: rb.Name}
	fields := []struct {
		name          string
		in            *uint32
		out           *uint32
		def, min, max uint32
	}{
		{"receive-interval", rb.ReceiveInterval, &b.ReceiveInterval, 300, 10, 60000},
		{"transmit-interval", rb.TransmitInterval, &b.TransmitInterval, 300, 10, 60000},
		{"detect-multiplier", rb.DetectMultiplier, &b.DetectMultiplier, 3, 2, 255},
		{"echo-interval", rb.EchoInterval, &b.EchoInterval, 50, 10, 60000},
		{"minimum-ttl", rb.MinimumTTL, &b.MinimumTTL, 254, 1, 254},
	}
	for _, f := range fields {
		*f.out = f.def
		if f.in == nil {
			continue
		}
		if *f.in < f.min || *f.in > f.max {
			return nil, p.errorf(ErrInvalid, "%s %d: must be from %d to %d", f.name, *f.in, f.min, f.max)
		}
		*f.out = *f.in
	}
	if rb.EchoMode != nil {
		b.EchoMode = *rb.EchoMode
	}
	if rb.PassiveMode != nil {
		b.PassiveMode = *rb.PassiveMode
	}
	return b, nil
}
