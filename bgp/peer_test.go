package bgp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestPeerNormalize(t *testing.T) {
	rid := netip.MustParseAddr("192.0.2.1")
	base := Peer{Addr: netip.MustParseAddr("192.0.2.254"), ASN: 64500, MyASN: 64501}
	tests := []struct {
		name    string
		mod     func(*Peer)
		wantErr string // substring; empty means valid
		check   func(*testing.T, Peer)
	}{
		{name: "defaults", check: func(t *testing.T, p Peer) {
			if p.Port != 179 || p.RouterID != rid {
				t.Errorf("port %d router ID %s, want 179 and %s", p.Port, p.RouterID, rid)
			}
		}},
		{name: "own router ID kept", mod: func(p *Peer) { p.RouterID = netip.MustParseAddr("10.1.1.1") }, check: func(t *testing.T, p Peer) {
			if p.RouterID != netip.MustParseAddr("10.1.1.1") {
				t.Errorf("router ID %s", p.RouterID)
			}
		}},
		{name: "mapped address unmapped", mod: func(p *Peer) { p.Addr = netip.MustParseAddr("::ffff:192.0.2.254") }, check: func(t *testing.T, p Peer) {
			if !p.Addr.Is4() {
				t.Errorf("address %s not unmapped", p.Addr)
			}
		}},
		{name: "missing address", mod: func(p *Peer) { p.Addr = netip.Addr{} }, wantErr: "address"},
		{name: "zero peer ASN", mod: func(p *Peer) { p.ASN = 0 }, wantErr: "peer ASN"},
		{name: "zero my ASN", mod: func(p *Peer) { p.MyASN = 0 }, wantErr: "my ASN"},
		{name: "source family mismatch", mod: func(p *Peer) { p.SrcAddr = netip.MustParseAddr("2001:db8::1") }, wantErr: "source address"},
		{name: "IPv6 router ID", mod: func(p *Peer) { p.RouterID = netip.MustParseAddr("2001:db8::1") }, wantErr: "router ID"},
		{name: "hold time too short", mod: func(p *Peer) { p.HoldTime = 2 * time.Second }, wantErr: "hold time"},
		{name: "keepalive above hold", mod: func(p *Peer) { p.HoldTime = 9 * time.Second; p.KeepaliveTime = 10 * time.Second }, wantErr: "keepalive"},
		{name: "password too long", mod: func(p *Peer) { p.Password = strings.Repeat("x", 81) }, wantErr: "password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := base
			if tc.mod != nil {
				tc.mod(&p)
			}
			got, err := p.normalize(rid)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalidPeer) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("normalize() error = %v, want ErrInvalidPeer mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("normalize() error = %v", err)
			}
			tc.check(t, got)
		})
	}
}

func TestPeerNoRouterID(t *testing.T) {
	_, err := Peer{Addr: netip.MustParseAddr("192.0.2.254"), ASN: 1, MyASN: 2}.normalize(netip.Addr{})
	if !errors.Is(err, ErrInvalidPeer) {
		t.Fatalf("error = %v, want ErrInvalidPeer", err)
	}
}

func TestAPIPeer(t *testing.T) {
	p, err := Peer{
		Addr: netip.MustParseAddr("2001:db8::1"), ASN: 64500, MyASN: 64501, Port: 1179,
		SrcAddr: netip.MustParseAddr("2001:db8::2"), HoldTime: 30 * time.Second,
		Password: "pw", EBGPMultiHop: true,
	}.normalize(netip.MustParseAddr("192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	ap := p.apiPeer(5 * time.Second)
	if ap.Conf.LocalAsn != 64501 || ap.Conf.PeerAsn != 64500 || ap.Conf.AuthPassword != "pw" {
		t.Errorf("conf = %v", ap.Conf)
	}
	if ap.Timers.Config.HoldTime != 30 || ap.Timers.Config.KeepaliveInterval != 10 || ap.Timers.Config.ConnectRetry != 5 {
		t.Errorf("timers = %v", ap.Timers.Config)
	}
	if ap.Transport.RemotePort != 1179 || ap.Transport.LocalAddress != "2001:db8::2" {
		t.Errorf("transport = %v", ap.Transport)
	}
	if !ap.EbgpMultihop.Enabled || ap.EbgpMultihop.MultihopTtl != 255 {
		t.Errorf("multihop = %v", ap.EbgpMultihop)
	}
	if len(ap.AfiSafis) != 1 || ap.AfiSafis[0].Config.Family.Afi.String() != "AFI_IP6" {
		t.Errorf("afi-safis = %v, want only ipv6-unicast", ap.AfiSafis)
	}
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{name: "zero options", opts: Options{ListenPort: -1}, ok: true},
		{name: "IPv6 router ID", opts: Options{RouterID: netip.MustParseAddr("2001:db8::1")}},
		{name: "bad port", opts: Options{ListenPort: 70000}},
		{name: "negative retry", opts: Options{ConnectRetry: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if (err == nil) != tc.ok {
				t.Fatalf("New() error = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("error %v is not ErrInvalidOptions", err)
			}
		})
	}
}
