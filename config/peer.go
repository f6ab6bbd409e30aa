package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

func parsePeer(rp rawPeer, p path) (*Peer, error) {
	if rp.MyASN == 0 {
		return nil, p.errorf(ErrMissing, "my-asn: missing (the local AS number, 1-4294967295)")
	}
	if rp.ASN == 0 {
		return nil, p.errorf(ErrMissing, "peer-asn: missing (the peer's AS number, 1-4294967295)")
	}
	if rp.ASN == rp.MyASN && rp.EBGPMultiHop {
		return nil, p.errorf(ErrInvalid, "ebgp-multihop true: not allowed for an iBGP peer (peer-asn equals my-asn %d)", rp.MyASN)
	}
	if rp.Addr == "" {
		return nil, p.errorf(ErrMissing, "peer-address: missing")
	}
	addr, err := parseAddr(rp.Addr)
	if err != nil {
		return nil, p.errorf(ErrInvalid, "peer-address %q: %v", rp.Addr, err)
	}
	peer := &Peer{
		MyASN:        rp.MyASN,
		ASN:          rp.ASN,
		Addr:         addr,
		Port:         179,
		HoldTime:     90 * time.Second,
		Password:     rp.Password,
		EBGPMultiHop: rp.EBGPMultiHop,
	}
	if rp.BFDProfile != "" {
		// MetalLB's native BGP speaker refuses it too; only its FRR mode has BFD.
		return nil, p.errorf(ErrUnsupported, "bfd-profile %q: not supported: ironlb's BGP speaker (GoBGP) has no BFD; remove bfd-profile from the peer", rp.BFDProfile)
	}
	if rp.Port != 0 {
		peer.Port = rp.Port
	}
	if rp.HoldTime != "" {
		d, err := time.ParseDuration(rp.HoldTime)
		if err != nil {
			return nil, p.errorf(ErrInvalid, "hold-time %q: not a duration such as \"90s\"", rp.HoldTime)
		}
		// BGP carries whole seconds; MetalLB truncates and then applies RFC 4271's rule.
		d = d.Truncate(time.Second)
		if d == 0 {
			// RFC 4271 lets a speaker offer 0 (no keepalives, no hold timer), and MetalLB's
			// native speaker does; GoBGP replaces a configured 0 by its default of 90s, so
			// ironlb cannot offer it. Refuse it rather than run another hold time.
			return nil, p.errorf(ErrUnsupported, "hold-time %q: 0 (no keepalives) is not supported: ironlb's BGP speaker (GoBGP) always offers a hold time; use at least 3s", rp.HoldTime)
		}
		if d < 3*time.Second {
			return nil, p.errorf(ErrInvalid, "hold-time %q: must be at least 3s", rp.HoldTime)
		}
		peer.HoldTime = d
	}
	peer.KeepaliveTime = peer.HoldTime / 3
	if rp.KeepaliveTime != "" {
		d, err := time.ParseDuration(rp.KeepaliveTime)
		if err != nil {
			return nil, p.errorf(ErrInvalid, "keepalive-time %q: not a duration such as \"30s\"", rp.KeepaliveTime)
		}
		if d < 0 {
			return nil, p.errorf(ErrInvalid, "keepalive-time %q: must not be negative", rp.KeepaliveTime)
		}
		// Whole seconds on the wire; MetalLB truncates before comparing with the hold time.
		d = d.Truncate(time.Second)
		if d == 0 {
			// GoBGP replaces a keepalive interval of 0 by a third of the hold time.
			return nil, p.errorf(ErrUnsupported, "keepalive-time %q: 0 (no keepalives) is not supported: ironlb's BGP speaker (GoBGP) would send them every hold-time/3; leave keepalive-time out for that", rp.KeepaliveTime)
		}
		peer.KeepaliveTime = d
	}
	if peer.KeepaliveTime > peer.HoldTime {
		return nil, p.errorf(ErrInvalid, "keepalive-time %q: must not be greater than the hold time (%s)", rp.KeepaliveTime, peer.HoldTime)
	}
	if rp.RouterID != "" {
		id, err := parseAddr(rp.RouterID)
		if err != nil {
			return nil, p.errorf(ErrInvalid, "router-id %q: %v", rp.RouterID, err)
		}
		if !id.Is4() {
			return nil, p.errorf(ErrInvalid, "router-id %q: a BGP router ID is 32 bits, give an IPv4 address", rp.RouterID)
		}
		peer.RouterID = id
	}
	if rp.SrcAddr != "" {
		src, err := parseAddr(rp.SrcAddr)
		if err != nil {
			return nil, p.errorf(ErrInvalid, "source-address %q: %v", rp.SrcAddr, err)
		}
		peer.SrcAddr = src
	}
	for i, rs := range rp.NodeSelectors {
		s, err := parseNodeSelector(rs, p.with("node-selectors[%d]", i))
		if err != nil {
			return nil, err
		}
		// An empty selector selects every node (MetalLB turns it into labels.Everything).
		peer.NodeSelectors = append(peer.NodeSelectors, s)
	}
	return peer, nil
}

// peerKey identifies a peer's session settings for MetalLB's duplicate-peer rule: two
// entries with the same key are a mistake. Node selectors compare as MetalLB compares its
// parsed label selectors: an empty list is the same as a list of one empty selector
// (both select every node), requirements compare in key order and values as sets; the
// order of the selectors themselves counts.
func peerKey(p *Peer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d|%d|%s|%s|%d|%d|%d|%s|%q|%t|", p.MyASN, p.ASN, p.Addr, p.SrcAddr, p.Port,
		p.HoldTime, p.KeepaliveTime, p.RouterID, p.Password, p.EBGPMultiHop)
	sels := p.NodeSelectors
	if len(sels) == 0 {
		sels = []NodeSelector{{}}
	}
	for _, s := range sels {
		b.WriteString("{")
		for _, r := range canonicalRequirements(s) {
			fmt.Fprintf(&b, "%q %s %q;", r.Key, r.Operator, r.Values)
		}
		b.WriteString("}")
	}
	return b.String()
}

// canonicalRequirements returns the selector as one sorted list of requirements, the
// match-labels as "=" requirements, each requirement's values sorted and deduplicated.
func canonicalRequirements(s NodeSelector) []SelectorRequirement {
	var out []SelectorRequirement
	for k, v := range s.MatchLabels {
		out = append(out, SelectorRequirement{Key: k, Operator: "=", Values: []string{v}})
	}
	for _, r := range s.MatchExpressions {
		vals := slices.Clone(r.Values)
		slices.Sort(vals)
		out = append(out, SelectorRequirement{Key: r.Key, Operator: r.Operator, Values: slices.Compact(vals)})
	}
	slices.SortFunc(out, func(a, b SelectorRequirement) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		if c := strings.Compare(a.Operator, b.Operator); c != 0 {
			return c
		}
		return slices.Compare(a.Values, b.Values)
	})
	return out
}

// String identifies the peer in logs: "10.0.0.1:179 (AS 64512)".
func (p *Peer) String() string {
	return fmt.Sprintf("%s (AS %d)", netip.AddrPortFrom(p.Addr, p.Port), p.ASN)
}
