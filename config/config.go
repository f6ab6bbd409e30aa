package config

import (
	"math/big"
	"net/netip"
	"time"

	"go4.org/netipx"
)

// Protocol is how the addresses of a pool are announced.
type Protocol string

// The protocols of MetalLB v0.12.
const (
	Layer2 Protocol = "layer2"
	BGP    Protocol = "bgp"
)

// Config is a parsed, validated configuration. Parse guarantees that no two pool address
// entries overlap, that no entry touches an address that can never be a Service's (see
// doc.go), and that pool names and BFD profile names are unique.
type Config struct {
	Pools       []*Pool                // document order
	Peers       []*Peer                // document order
	BFDProfiles map[string]*BFDProfile // by name; never nil
}

// Pool is an address pool.
type Pool struct {
	Name     string
	Protocol Protocol
	// Ranges holds one range per `addresses` entry, in document order; a CIDR entry becomes
	// the range it spans. IPv4-mapped IPv6 range ends are stored as IPv4.
	Ranges []netipx.IPRange
	// CIDRs holds the same addresses as Ranges as prefixes: each range split into the
	// fewest prefixes covering it exactly, entries in document order.
	CIDRs []netip.Prefix
	// AutoAssign is false when addresses may only be given on request (default true).
	AutoAssign bool
	// AvoidBuggyIPs asks the allocator to skip IPv4 addresses ending in .0 and .255.
	AvoidBuggyIPs bool
	// BGPAdvertisements are, for a bgp pool, the advertisements as configured or MetalLB's
	// single default one (no aggregation, no local preference, no communities); nil for
	// layer2 pools.
	BGPAdvertisements []*BGPAdvertisement
}

// BGPAdvertisement says how an address of a bgp pool is turned into a BGP route.
type BGPAdvertisement struct {
	AggregationLength   int    // IPv4 prefix length of the route (default 32)
	AggregationLengthV6 int    // IPv6 prefix length of the route (default 128)
	LocalPref           uint32 // LOCAL_PREF, sent to iBGP peers only (0 = unset)
	// Communities are resolved (names from bgp-communities), sorted and deduplicated;
	// nil when none.
	Communities []Community
}

// Peer is a BGP router to peer with.
type Peer struct {
	MyASN, ASN    uint32
	Addr          netip.Addr
	SrcAddr       netip.Addr    // zero Addr when unset
	Port          uint16        // default 179
	HoldTime      time.Duration // whole seconds; default 90s; at least 3s (0 is refused)
	KeepaliveTime time.Duration // default HoldTime/3, as MetalLB; never above HoldTime
	RouterID      netip.Addr    // IPv4; zero when unset (the speaker then picks one)
	Password      string        // TCP MD5 password; empty when unset
	EBGPMultiHop  bool
	// NodeSelectors restrict the nodes that peer; empty means every node.
	NodeSelectors []NodeSelector
	// BFDProfile is always empty: Parse refuses bfd-profile, as ironlb's BGP speaker has
	// no BFD. The field stays so that code written against it keeps compiling.
	BFDProfile string
}

// MatchesNode reports whether a node with these labels should peer: true when the peer has
// no selectors or any selector matches. O(selectors × requirements).
func (p *Peer) MatchesNode(labels map[string]string) bool {
	if len(p.NodeSelectors) == 0 {
		return true
	}
	for _, s := range p.NodeSelectors {
		if s.Matches(labels) {
			return true
		}
	}
	return false
}

// BFDProfile is a named set of BFD session parameters, with FRR's defaults filled in for
// fields left unset. Intervals are in milliseconds.
type BFDProfile struct {
	Name             string
	ReceiveInterval  uint32 // 10-60000, default 300
	TransmitInterval uint32 // 10-60000, default 300
	DetectMultiplier uint32 // 2-255, default 3
	EchoInterval     uint32 // 10-60000, default 50
	MinimumTTL       uint32 // 1-254, default 254
	EchoMode         bool
	PassiveMode      bool
}

// PoolByName returns the pool called name, or nil. O(pools).
func (c *Config) PoolByName(name string) *Pool {
	for _, p := range c.Pools {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// PoolFor returns the pool whose addresses contain ip, or nil; an IPv4-mapped IPv6 address
// is looked up as IPv4. Pools never overlap, so the answer is unique. O(total entries).
func (c *Config) PoolFor(ip netip.Addr) *Pool {
	ip = ip.Unmap()
	for _, p := range c.Pools {
		if p.Contains(ip) {
			return p
		}
	}
	return nil
}

// Contains reports whether ip is one of the pool's addresses. O(entries).
func (p *Pool) Contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, r := range p.Ranges {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}

// Size returns the number of addresses in the pool (all of them, including those
// AvoidBuggyIPs makes the allocator skip; see UsableSize). It is a big.Int because an IPv6 pool can hold
// 2^128 addresses.
func (p *Pool) Size() *big.Int {
	total := new(big.Int)
	for _, r := range p.Ranges {
		total.Add(total, rangeSize(r))
	}
	return total
}

// UsableSize returns the number of addresses the allocator can hand out, as MetalLB counts
// them for its pool-size metric: Size less, when AvoidBuggyIPs is set, the IPv4 addresses
// ending in .0 or .255 (a /24 has 254). O(entries).
func (p *Pool) UsableSize() *big.Int {
	total := p.Size()
	if !p.AvoidBuggyIPs {
		return total
	}
	for _, r := range p.Ranges {
		if r.From().Is4() {
			total.Sub(total, big.NewInt(buggyIPs(r)))
		}
	}
	return total
}

// buggyIPs counts the addresses of an IPv4 range ending in .0 or .255.
func buggyIPs(r netipx.IPRange) int64 {
	from, to := ipv4Int(r.From()), ipv4Int(r.To())
	// Multiples of 256 in [lo, hi].
	multiples := func(lo, hi int64) int64 { return hi>>8 - (lo+255)>>8 + 1 }
	return multiples(from, to) + multiples(from+1, to+1) // x.0, and x.255 as (x.255)+1
}

func ipv4Int(a netip.Addr) int64 {
	b := a.As4()
	return int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
}

func rangeSize(r netipx.IPRange) *big.Int {
	from, to := r.From().As16(), r.To().As16()
	n := new(big.Int).Sub(new(big.Int).SetBytes(to[:]), new(big.Int).SetBytes(from[:]))
	return n.Add(n, big.NewInt(1))
}
