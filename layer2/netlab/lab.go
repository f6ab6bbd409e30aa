package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Subnets used inside every lab; each lab has its own switch namespace, so
// labs running at the same time do not see each other.
var (
	Prefix4 = netip.MustParsePrefix("192.168.77.0/24")
	Prefix6 = netip.MustParsePrefix("fd00:77::/64")
)

// Host is one namespace attached to the lab's bridge.
type Host struct {
	Name string           // short role name: "node0", "client"
	NS   string           // network namespace name
	If   string           // interface name inside NS
	Port string           // the veth peer's name in the switch namespace
	MAC  net.HardwareAddr // MAC of If
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// Lab is a bridge in its own namespace with hosts attached.
type Lab struct {
	ID     string // unique per lab, part of every namespace name
	Switch string // the switch namespace
	Nodes  []*Host
	Client *Host

	namespaces []string
}

// New builds a lab with n node namespaces and one client namespace. Node i
// gets 192.168.77.(11+i) and fd00:77::(11+i), MAC 02:77:00:00:00:(11+i); the
// client gets .2 / ::2, MAC 02:77:00:00:00:02. On error, whatever was built is
// removed.
func New(ctx context.Context, n int) (lab *Lab, err error) {
	if n < 1 || n > 200 {
		return nil, fmt.Errorf("netlab: %d nodes: want 1 to 200", n)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("netlab: iproute2 is needed: %w", err)
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("netlab: random id: %w", err)
	}
	l := &Lab{ID: fmt.Sprintf("il2-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))}
	defer func() {
		if err != nil {
			_ = l.Close()
		}
	}()

	l.Switch = l.ID + "-sw"
	if err := l.addNS(ctx, l.Switch); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"link", "add", "br0", "type", "bridge", "forward_delay", "0", "mcast_snooping", "0"},
		{"link", "set", "br0", "up"},
	} {
		if _, err := IP(ctx, l.Switch, args...); err != nil {
			return nil, err
		}
	}
	for i := range n {
		h := &Host{
			Name: fmt.Sprintf("node%d", i),
			NS:   fmt.Sprintf("%s-n%d", l.ID, i),
			If:   "eth0",
			Port: fmt.Sprintf("p%d", i),
			MAC:  net.HardwareAddr{0x02, 0x77, 0, 0, 0, byte(11 + i)},
			IPv4: addrAt(Prefix4, 11+i),
			IPv6: addrAt(Prefix6, 11+i),
		}
		if err := l.attach(ctx, h); err != nil {
			return nil, err
		}
		l.Nodes = append(l.Nodes, h)
	}
	l.Client = &Host{
		Name: "client",
		NS:   l.ID + "-cl",
		If:   "eth0",
		Port: "pc",
		MAC:  net.HardwareAddr{0x02, 0x77, 0, 0, 0, 2},
		IPv4: addrAt(Prefix4, 2),
		IPv6: addrAt(Prefix6, 2),
	}
	if err := l.attach(ctx, l.Client); err != nil {
		return nil, err
	}
	return l, nil
}

// Addr4 returns the address of Prefix4 with last as its final byte.
func Addr4(last int) netip.Addr { return addrAt(Prefix4, last) }

// Addr6 returns the address of Prefix6 with last as its final byte.
func Addr6(last int) netip.Addr { return addrAt(Prefix6, last) }

func addrAt(p netip.Prefix, last int) netip.Addr {
	b := p.Addr().AsSlice()
	b[len(b)-1] = byte(last)
	a, _ := netip.AddrFromSlice(b)
	return a
}

func (l *Lab) addNS(ctx context.Context, ns string) error {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("netlab: ip netns add %s: %v: %s", ns, err, strings.TrimSpace(string(out)))
	}
	l.namespaces = append(l.namespaces, ns)
	if _, err := IP(ctx, ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	// No Duplicate Address Detection: addresses are usable (and ndp can
	// bind the link-local one) as soon as the link is up.
	_, err := Exec(ctx, ns, "sysctl", "-qw",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return err
}

func (l *Lab) attach(ctx context.Context, h *Host) error {
	if err := l.addNS(ctx, h.NS); err != nil {
		return err
	}
	steps := []struct {
		ns   string
		args []string
	}{
		{l.Switch, []string{"link", "add", h.Port, "type", "veth", "peer", "name", h.If, "netns", h.NS}},
		{l.Switch, []string{"link", "set", h.Port, "master", "br0", "up"}},
		{h.NS, []string{"link", "set", h.If, "address", h.MAC.String()}},
		{h.NS, []string{"addr", "add", netip.PrefixFrom(h.IPv4, Prefix4.Bits()).String(), "dev", h.If}},
		{h.NS, []string{"addr", "add", netip.PrefixFrom(h.IPv6, Prefix6.Bits()).String(), "dev", h.If, "nodad"}},
		{h.NS, []string{"link", "set", h.If, "up"}},
	}
	for _, s := range steps {
		if _, err := IP(ctx, s.ns, s.args...); err != nil {
			return err
		}
	}
	return nil
}

// Close deletes every namespace of the lab (and with them their veths).
// Processes still running inside keep a namespace's interfaces alive: stop
// them first.
func (l *Lab) Close() error {
	var errs []error
	for i := len(l.namespaces) - 1; i >= 0; i-- {
		ns := l.namespaces[i]
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("netlab: ip netns del %s: %v: %s", ns, err, strings.TrimSpace(string(out))))
		}
	}
	l.namespaces = nil
	return errors.Join(errs...)
}

// IP runs `ip -n ns args...` and returns its output.
func IP(ctx context.Context, ns string, args ...string) (string, error) {
	return run(ctx, "ip", append([]string{"-n", ns}, args...)...)
}

// Exec runs a command inside ns (`ip netns exec`) and returns its output.
func Exec(ctx context.Context, ns string, name string, args ...string) (string, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netlab: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Neighbor returns the MAC of ip in the neighbor table of h (nil if there is
// no entry with a link-layer address) and the entry's state.
func (h *Host) Neighbor(ctx context.Context, ip netip.Addr) (net.HardwareAddr, string, error) {
	out, err := IP(ctx, h.NS, "neigh", "show", ip.String(), "dev", h.If)
	if err != nil {
		return nil, "", err
	}
	f := strings.Fields(out)
	var mac net.HardwareAddr
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			if mac, err = net.ParseMAC(f[i+1]); err != nil {
				return nil, "", fmt.Errorf("netlab: parsing neighbor entry %q: %w", out, err)
			}
		}
	}
	state := ""
	if len(f) > 0 {
		state = f[len(f)-1]
	}
	return mac, state, nil
}
