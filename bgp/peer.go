package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// Errors returned by New, SetPeers and SetAdvertisements, matched with
// errors.Is.
var (
	ErrInvalidPeer          = errors.New("invalid BGP peer")
	ErrDuplicatePeer        = errors.New("duplicate BGP peer address")
	ErrInvalidOptions       = errors.New("invalid BGP speaker options")
	ErrClosed               = errors.New("BGP speaker shut down")
	ErrInvalidAdvertisement = errors.New("invalid BGP advertisement")
)

// Peer is one BGP router to peer with. Peers are identified by Addr.
type Peer struct {
	Addr       netip.Addr
	Port       uint16 // 0 means 179
	ASN, MyASN uint32
	// SrcAddr is the local address of the session (optional).
	SrcAddr netip.Addr
	// RouterID is the BGP identifier (IPv4) sent to this peer; the zero
	// value means Options.RouterID.
	RouterID netip.Addr
	// HoldTime 0 means GoBGP's default, 90s (GoBGP cannot negotiate a zero
	// hold time). KeepaliveTime 0 means HoldTime/3.
	HoldTime, KeepaliveTime time.Duration
	// Password enables TCP MD5 signatures (RFC 2385).
	Password string
	// EBGPMultiHop lets an eBGP session cross routers (TTL 255 instead of 1).
	EBGPMultiHop bool
}

func (p Peer) String() string {
	return fmt.Sprintf("%s:%d (AS %d, my AS %d)", p.Addr, p.Port, p.ASN, p.MyASN)
}

// normalize fills defaults and validates, so that two Peers describing the
// same session compare equal with ==.
func (p Peer) normalize(defaultRouterID netip.Addr) (Peer, error) {
	bad := func(field string, v any, why string) (Peer, error) {
		return Peer{}, fmt.Errorf("%w %s: %s %v: %s", ErrInvalidPeer, p.Addr, field, v, why)
	}
	if !p.Addr.IsValid() {
		return bad("address", p.Addr, "missing")
	}
	p.Addr = p.Addr.Unmap()
	if p.Addr.Zone() != "" {
		return bad("address", p.Addr, "zones (link-local peers) are not supported")
	}
	if p.Port == 0 {
		p.Port = 179
	}
	if p.ASN == 0 {
		return bad("peer ASN", p.ASN, "must not be 0")
	}
	if p.MyASN == 0 {
		return bad("my ASN", p.MyASN, "must not be 0")
	}
	if p.SrcAddr.IsValid() {
		p.SrcAddr = p.SrcAddr.Unmap()
		if p.SrcAddr.Is4() != p.Addr.Is4() {
			return bad("source address", p.SrcAddr, "address family differs from the peer's")
		}
	}
	if !p.RouterID.IsValid() {
		p.RouterID = defaultRouterID
	}
	p.RouterID = p.RouterID.Unmap()
	if !p.RouterID.Is4() {
		return bad("router ID", p.RouterID, "must be an IPv4 address (set it on the peer or in Options.RouterID)")
	}
	if p.HoldTime < 0 || (p.HoldTime > 0 && p.HoldTime < 3*time.Second) || p.HoldTime > 65535*time.Second {
		return bad("hold time", p.HoldTime, "must be 0 (default) or between 3s and 65535s")
	}
	if p.KeepaliveTime < 0 || (p.HoldTime > 0 && p.KeepaliveTime > p.HoldTime) {
		return bad("keepalive time", p.KeepaliveTime, "must be between 0 and the hold time")
	}
	if p.KeepaliveTime > 0 && p.KeepaliveTime < time.Second {
		return bad("keepalive time", p.KeepaliveTime, "must be at least 1s")
	}
	if len(p.Password) > 80 {
		// TCP_MD5SIG_MAXKEYLEN on Linux.
		return bad("password", fmt.Sprintf("(%d bytes)", len(p.Password)), "longer than 80 bytes")
	}
	return p, nil
}

func family(v4 bool) *api.Family {
	if v4 {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// apiPeer converts a normalized Peer into GoBGP's neighbor configuration.
func (p Peer) apiPeer(connectRetry time.Duration) *api.Peer {
	seconds := func(d time.Duration) uint64 { return uint64((d + time.Second - 1) / time.Second) }
	hold := p.HoldTime
	if hold == 0 {
		hold = 90 * time.Second
	}
	keepalive := p.KeepaliveTime
	if keepalive == 0 {
		keepalive = hold / 3
	}
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Addr.String(),
			PeerAsn:         p.ASN,
			LocalAsn:        p.MyASN,
			AuthPassword:    p.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      seconds(connectRetry),
			HoldTime:          seconds(hold),
			KeepaliveInterval: seconds(keepalive),
			// GoBGP waits this long after a session drops before trying
			// again (default 30s); a load balancer wants its routes back
			// sooner.
			IdleHoldTimeAfterReset: seconds(connectRetry),
		}},
		Transport: &api.Transport{
			RemotePort: uint32(p.Port),
		},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: family(p.Addr.Is4()), Enabled: true}}},
	}
	if p.SrcAddr.IsValid() {
		ap.Transport.LocalAddress = p.SrcAddr.String()
	}
	if p.EBGPMultiHop {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	return ap
}
