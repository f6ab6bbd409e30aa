package layer2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
)

// Clients confirm a stale neighbor entry with a Neighbor Solicitation sent
// to the IP itself (unicast), not to its solicited-node group. The IP is not
// configured on this host, so the kernel drops such a packet before any
// ICMPv6 socket sees it; without an answer the client's entry fails and its
// traffic stalls for seconds until a new multicast resolution. A packet
// socket sees the frame before the IP layer does, so unicast solicitations
// are read there; multicast ones keep going through the ndp socket.

const (
	etherTypeIPv6  = 0x86dd
	ipv6HeaderLen  = 40
	protoICMPv6    = 58
	icmpv6TypeNS   = 135
	bpfAcceptBytes = 1 << 16
)

// unicastNSFilter keeps IPv6 packets without extension headers that carry a
// Neighbor Solicitation to a unicast destination.
var unicastNSFilter = mustAssemble([]bpf.Instruction{
	bpf.LoadAbsolute{Off: 6, Size: 1}, // next header
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 5},
	bpf.LoadAbsolute{Off: 24, Size: 1}, // first byte of the destination
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xff, SkipTrue: 3},
	bpf.LoadAbsolute{Off: ipv6HeaderLen, Size: 1}, // ICMPv6 type
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmpv6TypeNS, SkipTrue: 1},
	bpf.RetConstant{Val: bpfAcceptBytes},
	bpf.RetConstant{Val: 0},
})

func mustAssemble(prog []bpf.Instruction) []bpf.RawInstruction {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		panic(fmt.Sprintf("layer2: assembling BPF filter: %v", err))
	}
	return raw
}

// listenUnicastNS opens the packet socket for unicast solicitations.
func listenUnicastNS(ifi *net.Interface) (*packet.Conn, error) {
	return packet.Listen(ifi, packet.Datagram, etherTypeIPv6, &packet.Config{Filter: unicastNSFilter})
}

// parseUnicastNS returns the source and the solicitation carried by an IPv6
// packet, or ok=false if it is not a well-formed solicitation that may be
// answered (RFC 4861, 7.1.1: hop limit 255).
func parseUnicastNS(b []byte) (src netip.Addr, ns *ndp.NeighborSolicitation, ok bool) {
	if len(b) < ipv6HeaderLen || b[0]>>4 != 6 || b[6] != protoICMPv6 || b[7] != ndp.HopLimit {
		return netip.Addr{}, nil, false
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if len(b) < ipv6HeaderLen+plen {
		return netip.Addr{}, nil, false
	}
	src = netip.AddrFrom16([16]byte(b[8:24]))
	if src.IsUnspecified() || src.IsMulticast() {
		return netip.Addr{}, nil, false // a DAD probe is always multicast
	}
	msg, err := ndp.ParseMessage(b[ipv6HeaderLen : ipv6HeaderLen+plen])
	if err != nil {
		return netip.Addr{}, nil, false
	}
	ns, ok = msg.(*ndp.NeighborSolicitation)
	return src, ns, ok
}

// readUnicastNS answers unicast Neighbor Solicitations until the socket is
// closed.
func (a *Announcer) readUnicastNS(ifc *iface, c *packet.Conn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if ifc.isClosed(err) {
				return
			}
			ifc.log.Debug("reading unicast solicitations", "error", err)
			if !ifc.wait() {
				return
			}
			continue
		}
		if pa, isPacket := from.(*packet.Addr); isPacket && bytes.Equal(pa.HardwareAddr, ifc.mac) {
			continue // the host's own outgoing solicitations
		}
		src, ns, ok := parseUnicastNS(buf[:n])
		if !ok {
			continue
		}
		a.handleNS(ifc, ns, src.WithZone(ifc.name))
	}
}
