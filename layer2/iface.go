package layer2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// allNodes is the destination of unsolicited Neighbor Advertisements.
var allNodes = netip.MustParseAddr("ff02::1")

// readRetryDelay spaces out reads after an error that did not close the
// socket (ENETDOWN while a link is down, for example).
const readRetryDelay = 50 * time.Millisecond

// iface is one served interface with its ARP and NDP sockets (either may be
// nil). Fields other than closed are guarded by Announcer.mu.
type iface struct {
	name   string
	index  int
	mac    net.HardwareAddr
	arp    *arp.Client
	ndp    *ndp.Conn
	groups map[netip.Addr]int // solicited-node group -> owned IPs in it
	// naOut sends Neighbor Advertisements with the target as source
	// address, as the kernel does for its own addresses (some tools,
	// ndisc6 for one, ignore an answer from another source). Nil if it
	// could not be opened: the ndp socket's link-local source is used.
	naOut  *ipv6.PacketConn
	ucast  *packet.Conn // unicast Neighbor Solicitations; may be nil
	closed chan struct{}
	log    *slog.Logger
}

// candidate is an interface found by a scan, with what can be opened on it.
type candidate struct {
	ifi      net.Interface
	hasIPv4  bool
	hasLinkL bool // an IPv6 link-local address, needed by ndp.Listen
}

// candidates lists the interfaces to serve.
func (a *Announcer) candidates() (map[string]candidate, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	out := map[string]candidate{}
	for _, ifi := range all {
		if len(a.opts.Interfaces) > 0 && !slices.Contains(a.opts.Interfaces, ifi.Name) {
			continue
		}
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 || len(ifi.HardwareAddr) != 6 {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			a.log.Debug("listing interface addresses", "interface", ifi.Name, "error", err)
			continue
		}
		c := candidate{ifi: ifi}
		any6 := false
		for _, ad := range addrs {
			ipn, ok := ad.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			switch {
			case ip.Is4():
				c.hasIPv4 = true
			case ip.IsLinkLocalUnicast():
				c.hasLinkL, any6 = true, true
			default:
				any6 = true
			}
		}
		if !c.hasIPv4 && !any6 {
			continue
		}
		out[ifi.Name] = c
	}
	return out, nil
}

// scan reconciles the served interfaces with the system's.
func (a *Announcer) scan() {
	want, err := a.candidates()
	if err != nil {
		a.log.Warn("scanning interfaces", "error", err)
		return
	}
	for _, name := range a.opts.Interfaces {
		if _, ok := want[name]; !ok {
			a.log.Debug("configured interface not usable yet", "interface", name)
		}
	}

	// Drop interfaces that vanished or changed identity.
	a.mu.Lock()
	for name, ifc := range a.ifaces {
		c, ok := want[name]
		if !ok || c.ifi.Index != ifc.index || !bytes.Equal(c.ifi.HardwareAddr, ifc.mac) {
			a.log.Info("no longer serving interface", "interface", name)
			ifc.close()
			delete(a.ifaces, name)
		}
	}
	clear(a.ourMACs)
	for _, ifc := range a.ifaces {
		a.ourMACs[ifc.mac.String()] = true
	}
	type need struct{ arp, ndp bool }
	todo := map[string]need{}
	for name, c := range want {
		ifc := a.ifaces[name]
		n := need{arp: c.hasIPv4, ndp: c.hasLinkL}
		if ifc != nil {
			n.arp = n.arp && ifc.arp == nil
			n.ndp = n.ndp && ifc.ndp == nil
		}
		if n.arp || n.ndp {
			todo[name] = n
		}
	}
	a.mu.Unlock()

	// Open sockets without holding the lock; only this goroutine scans.
	for name, n := range todo {
		c := want[name]
		var socks sockets
		if n.arp {
			if socks.arp, err = arp.Dial(&c.ifi); err != nil {
				a.log.Warn("opening ARP socket", "interface", name, "error", err)
				socks.arp = nil
			}
		}
		if n.ndp {
			a.openNDP(&c.ifi, &socks)
		}
		if socks.arp == nil && socks.ndp == nil {
			continue
		}
		a.install(c.ifi, socks)
	}
}

// sockets are the sockets opened on one interface by one scan.
type sockets struct {
	arp   *arp.Client
	ndp   *ndp.Conn
	naOut *ipv6.PacketConn
	ucast *packet.Conn
}

func (s sockets) close() {
	if s.arp != nil {
		_ = s.arp.Close()
	}
	if s.ndp != nil {
		_ = s.ndp.Close() // also leaves every joined group
	}
	if s.naOut != nil {
		_ = s.naOut.Close()
	}
	if s.ucast != nil {
		_ = s.ucast.Close()
	}
}

// openNDP opens the NDP sockets of ifi into s; only s.ndp is essential.
func (a *Announcer) openNDP(ifi *net.Interface, s *sockets) {
	// Fails while the link-local address is tentative (DAD); the next
	// scan retries.
	nc, ll, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		a.log.Warn("opening NDP socket", "interface", ifi.Name, "error", err)
		return
	}
	s.ndp = nc
	if s.naOut, err = listenNASender(ll); err != nil {
		a.log.Warn("opening NDP sending socket; advertisements will come from the link-local address",
			"interface", ifi.Name, "error", err)
		s.naOut = nil
	}
	if s.ucast, err = listenUnicastNS(ifi); err != nil {
		a.log.Warn("opening socket for unicast solicitations; clients' unicast probes will go unanswered",
			"interface", ifi.Name, "error", err)
		s.ucast = nil
	}
}

// install adds freshly opened sockets to the interface named ifi.Name and
// starts their readers.
func (a *Announcer) install(ifi net.Interface, socks sockets) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		socks.close()
		return
	}
	ifc := a.ifaces[ifi.Name]
	if ifc == nil {
		ifc = &iface{
			name:   ifi.Name,
			index:  ifi.Index,
			mac:    slices.Clone(ifi.HardwareAddr),
			groups: map[netip.Addr]int{},
			closed: make(chan struct{}),
			log:    a.log.With("interface", ifi.Name),
		}
		a.ifaces[ifi.Name] = ifc
		a.ourMACs[ifc.mac.String()] = true
		a.log.Info("serving interface", "interface", ifi.Name, "mac", ifc.mac.String())
	}
	if ac := socks.arp; ac != nil {
		ifc.arp = ac
		a.readers.Add(1)
		go func() {
			defer a.readers.Done()
			a.readARP(ifc, ac)
		}()
	}
	if nc := socks.ndp; nc != nil {
		ifc.ndp = nc
		ifc.naOut = socks.naOut
		for ip := range a.owned {
			ifc.watch(ip)
		}
		a.readers.Add(1)
		go func() {
			defer a.readers.Done()
			a.readNDP(ifc, nc)
		}()
		if uc := socks.ucast; uc != nil {
			ifc.ucast = uc
			a.readers.Add(1)
			go func() {
				defer a.readers.Done()
				a.readUnicastNS(ifc, uc)
			}()
		}
	}
}

// close closes the interface's sockets, which ends its readers. Called with
// Announcer.mu held.
func (ifc *iface) close() {
	select {
	case <-ifc.closed:
		return
	default:
	}
	close(ifc.closed)
	sockets{arp: ifc.arp, ndp: ifc.ndp, naOut: ifc.naOut, ucast: ifc.ucast}.close()
}

// watch joins the solicited-node group of an owned IPv6 address so that its
// Neighbor Solicitations reach this host. Called with Announcer.mu held.
func (ifc *iface) watch(ip netip.Addr) {
	if ifc.ndp == nil || !ip.Is6() {
		return
	}
	group, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		ifc.log.Warn("computing solicited-node group", "ip", ip, "error", err)
		return
	}
	if ifc.groups[group] == 0 {
		if err := ifc.ndp.JoinGroup(group); err != nil {
			ifc.log.Warn("joining solicited-node group", "ip", ip, "group", group, "error", err)
			return
		}
	}
	ifc.groups[group]++
}

// unwatch undoes watch. Called with Announcer.mu held.
func (ifc *iface) unwatch(ip netip.Addr) {
	if ifc.ndp == nil || !ip.Is6() {
		return
	}
	group, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil || ifc.groups[group] == 0 {
		return
	}
	ifc.groups[group]--
	if ifc.groups[group] == 0 {
		delete(ifc.groups, group)
		if err := ifc.ndp.LeaveGroup(group); err != nil {
			ifc.log.Warn("leaving solicited-node group", "ip", ip, "group", group, "error", err)
		}
	}
}

// gratuitous announces ip on this interface. Called with Announcer.mu held.
func (ifc *iface) gratuitous(ip netip.Addr, m *Metrics) error {
	if ip.Is4() {
		if ifc.arp == nil {
			return nil
		}
		// Both a request and a reply, each with sender = target = ip:
		// some hosts only update their cache from one of the two.
		for _, op := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
			p, err := arp.NewPacket(op, ifc.mac, ip, ethernet.Broadcast, ip)
			if err != nil {
				return fmt.Errorf("building gratuitous ARP %v for %s: %w", op, ip, err)
			}
			if err := ifc.arp.WriteTo(p, ethernet.Broadcast); err != nil {
				return fmt.Errorf("writing gratuitous ARP %v for %s: %w", op, ip, err)
			}
			m.gratuitousSent(ip)
		}
		return nil
	}
	if ifc.ndp == nil {
		return nil
	}
	if err := ifc.advertise(allNodes, ip, false); err != nil {
		return fmt.Errorf("writing unsolicited NA for %s: %w", ip, err)
	}
	m.gratuitousSent(ip)
	return nil
}

// advertise sends a Neighbor Advertisement for target to dst. Override is
// always set: the owner of a LoadBalancer IP must replace stale entries.
func (ifc *iface) advertise(dst, target netip.Addr, solicited bool) error {
	na := &ndp.NeighborAdvertisement{
		Solicited:     solicited,
		Override:      true,
		TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      ifc.mac,
		}},
	}
	if ifc.naOut != nil {
		b, err := ndp.MarshalMessage(na)
		if err != nil {
			return fmt.Errorf("building advertisement for %s: %w", target, err)
		}
		cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: target.AsSlice(), IfIndex: ifc.index}
		_, err = ifc.naOut.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: ifc.name})
		return err
	}
	return ifc.ndp.WriteTo(na, nil, dst)
}

// probe asks who answers for ip on this interface without claiming it: an
// ARP probe (sender 0.0.0.0, RFC 5227, so nobody's cache learns anything)
// or a Neighbor Solicitation. The answer shows up as a claim by the other
// MAC. Called with Announcer.mu held.
func (ifc *iface) probe(ip netip.Addr) error {
	if ip.Is4() {
		if ifc.arp == nil {
			return nil
		}
		p, err := arp.NewPacket(arp.OperationRequest, ifc.mac, netip.IPv4Unspecified(), ethernet.Broadcast, ip)
		if err != nil {
			return fmt.Errorf("building ARP probe for %s: %w", ip, err)
		}
		return ifc.arp.WriteTo(p, ethernet.Broadcast)
	}
	if ifc.ndp == nil {
		return nil
	}
	group, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return err
	}
	ns := &ndp.NeighborSolicitation{
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifc.mac}},
	}
	return ifc.ndp.WriteTo(ns, nil, group)
}

// readFailed decides what a reader does after err: false when the socket
// is closed (the reader ends). A frame that does not parse costs nothing
// more than being read: only errors of the socket itself (a net.OpError,
// ENETDOWN while the link is down for one) make the reader wait, so that
// it does not spin.
func (ifc *iface) readFailed(what string, err error) bool {
	if ifc.isClosed(err) {
		return false
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		ifc.log.Debug("skipping malformed frame", "protocol", what, "error", err)
		return true
	}
	ifc.log.Debug("reading", "protocol", what, "error", err)
	return ifc.wait()
}

// wait sleeps after a read error; it reports false when the interface was
// closed meanwhile.
func (ifc *iface) wait() bool {
	select {
	case <-ifc.closed:
		return false
	case <-time.After(readRetryDelay):
		return true
	}
}

func (ifc *iface) isClosed(err error) bool {
	select {
	case <-ifc.closed:
		return true
	default:
		return errors.Is(err, net.ErrClosed)
	}
}

// readARP answers ARP requests and watches for conflicting claims until the
// socket is closed.
func (a *Announcer) readARP(ifc *iface, c *arp.Client) {
	for {
		p, eth, err := c.Read()
		if err != nil {
			if !ifc.readFailed("ARP", err) {
				return
			}
			continue
		}
		a.handleARP(ifc, c, p, eth)
	}
}

func (a *Announcer) handleARP(ifc *iface, c *arp.Client, p *arp.Packet, eth *ethernet.Frame) {
	a.mu.RLock()
	if a.ourMACs[p.SenderHardwareAddr.String()] {
		a.mu.RUnlock()
		return // our own packets, seen as outgoing by the packet socket
	}
	conflict := a.isClaimedLocked(p.SenderIP)
	if p.Operation == arp.OperationRequest && p.SenderIP != p.TargetIP && a.isOwnedLocked(p.TargetIP) &&
		(bytes.Equal(eth.Destination, ethernet.Broadcast) || bytes.Equal(eth.Destination, ifc.mac)) {
		a.metrics.requestReceived(p.TargetIP)
		if err := c.Reply(p, ifc.mac, p.TargetIP); err != nil {
			ifc.log.Warn("sending ARP reply", "ip", p.TargetIP, "to", p.SenderIP, "error", err)
		} else {
			a.metrics.responseSent(p.TargetIP)
			ifc.log.Debug("answered ARP request", "ip", p.TargetIP, "from", p.SenderIP, "fromMAC", p.SenderHardwareAddr.String())
		}
	}
	a.mu.RUnlock()
	if conflict {
		a.duplicate(p.SenderIP, p.SenderHardwareAddr, ifc.name)
	}
}

// readNDP answers Neighbor Solicitations and watches Neighbor
// Advertisements until the socket is closed.
func (a *Announcer) readNDP(ifc *iface, c *ndp.Conn) {
	for {
		msg, _, src, err := c.ReadFrom()
		if err != nil {
			if !ifc.readFailed("NDP", err) {
				return
			}
			continue
		}
		switch m := msg.(type) {
		case *ndp.NeighborSolicitation:
			a.handleNS(ifc, m, src)
		case *ndp.NeighborAdvertisement:
			a.handleNA(ifc, m)
		}
	}
}

func (a *Announcer) handleNS(ifc *iface, ns *ndp.NeighborSolicitation, src netip.Addr) {
	target := normalize(ns.TargetAddress)
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.isOwnedLocked(target) || ifc.ndp == nil {
		return
	}
	a.metrics.requestReceived(target)
	var err error
	if src.IsUnspecified() {
		// Duplicate Address Detection by someone else: defend the
		// address to all nodes (RFC 4861, 7.2.4).
		err = ifc.advertise(allNodes, target, false)
	} else {
		err = ifc.advertise(src, target, true)
	}
	if err != nil {
		ifc.log.Warn("sending Neighbor Advertisement", "ip", target, "to", src, "error", err)
		return
	}
	a.metrics.responseSent(target)
	ifc.log.Debug("answered Neighbor Solicitation", "ip", target, "from", src)
}

func (a *Announcer) handleNA(ifc *iface, na *ndp.NeighborAdvertisement) {
	target := normalize(na.TargetAddress)
	var mac net.HardwareAddr
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			mac = lla.Addr
		}
	}
	if mac == nil {
		return // nothing tells whose advertisement this is
	}
	a.mu.RLock()
	conflict := a.isClaimedLocked(target) && !a.ourMACs[mac.String()]
	a.mu.RUnlock()
	if conflict {
		a.duplicate(target, mac, ifc.name)
	}
}

// listenNASender opens a raw ICMPv6 socket bound to the interface of the
// link-local address ll, allowed to send from addresses that are not
// configured on the host (IPV6_FREEBIND), and receiving nothing.
func listenNASender(ll netip.Addr) (*ipv6.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("setting IPV6_FREEBIND: %w", serr)
		}
		return nil
	}}
	c, err := lc.ListenPacket(context.Background(), "ip6:ipv6-icmp", ll.String())
	if err != nil {
		return nil, err
	}
	pc := ipv6.NewPacketConn(c)
	var block ipv6.ICMPFilter
	block.SetAll(true)
	for _, f := range []func() error{
		func() error { return pc.SetChecksum(true, 2) }, // ICMPv6 checksum offset
		func() error { return pc.SetHopLimit(ndp.HopLimit) },
		func() error { return pc.SetMulticastHopLimit(ndp.HopLimit) },
		func() error { return pc.SetICMPFilter(&block) },
	} {
		if err := f(); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	return pc, nil
}
