package layer2

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

// ipv6Packet builds an IPv6 packet around an NDP message.
func ipv6Packet(t testing.TB, src, dst netip.Addr, hop byte, m ndp.Message) []byte {
	t.Helper()
	body, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(body))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:6], uint16(len(body)))
	b[6], b[7] = protoICMPv6, hop
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return append(b, body...)
}

func TestParseUnicastNS(t *testing.T) {
	client := netip.MustParseAddr("fd00:77::2")
	vip := netip.MustParseAddr("fd00:77::100")
	ns := &ndp.NeighborSolicitation{
		TargetAddress: vip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: net.HardwareAddr{2, 0, 0, 0, 0, 2}}},
	}
	na := &ndp.NeighborAdvertisement{TargetAddress: vip}
	valid := ipv6Packet(t, client, vip, 255, ns)
	tests := []struct {
		name   string
		pkt    []byte
		wantOK bool
	}{
		{"unicast solicitation", valid, true},
		{"forwarded (hop limit 254)", ipv6Packet(t, client, vip, 254, ns), false},
		{"from the unspecified address", ipv6Packet(t, netip.IPv6Unspecified(), vip, 255, ns), false},
		{"advertisement, not solicitation", ipv6Packet(t, client, vip, 255, na), false},
		{"truncated payload", valid[:len(valid)-8], false},
		{"truncated header", valid[:20], false},
		{"IPv4 version nibble", append([]byte{0x45}, valid[1:]...), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, got, ok := parseUnicastNS(tc.pkt)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			if src != client || got.TargetAddress != vip {
				t.Fatalf("got src %s target %s, want %s and %s", src, got.TargetAddress, client, vip)
			}
		})
	}
}

func FuzzParseUnicastNS(f *testing.F) {
	client := netip.MustParseAddr("fd00:77::2")
	vip := netip.MustParseAddr("fd00:77::100")
	f.Add(ipv6Packet(f, client, vip, 255, &ndp.NeighborSolicitation{TargetAddress: vip}))
	f.Add([]byte{0x60})
	f.Fuzz(func(t *testing.T, b []byte) {
		src, ns, ok := parseUnicastNS(b)
		if ok && (ns == nil || !src.IsValid()) {
			t.Fatalf("ok with src %v ns %v", src, ns)
		}
	})
}
