package config

import (
	"fmt"
	"net/netip"
	"reflect"
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
		BFDProfile:   rp.BFDProfile,
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
		if d != 0 && d < 3*time.Second {
			return nil, p.errorf(ErrInvalid, "hold-time %q: must be 0 or at least 3s", rp.HoldTime)
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

// peersEqual is MetalLB's duplicate-peer rule: two entries that resolve to exactly the same
// session settings are a mistake.
func peersEqual(a, b *Peer) bool {
	return reflect.DeepEqual(a, b)
}

// String identifies the peer in logs: "10.0.0.1:179 (AS 64512)".
func (p *Peer) String() string {
	return fmt.Sprintf("%s (AS %d)", netip.AddrPortFrom(p.Addr, p.Port), p.ASN)
}
