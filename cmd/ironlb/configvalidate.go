package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/ironlb/ironlb/config"
)

const configValidateUsage = `Usage: ironlb config validate [-f FILE] [-key KEY]

Checks a MetalLB v0.12 configuration exactly as the controller and speaker load it.
FILE is either a whole ConfigMap manifest (the configuration is read from data[KEY]) or
the bare configuration content. FILE "-", the default, reads standard input.

On success prints OK, then one line per address pool (protocol, number of addresses the
allocator can hand out, as MetalLB counts them, and the addresses) and one per BGP peer,
and exits 0. A manifest without KEY holds an empty configuration, as in MetalLB. Otherwise prints why to standard error and exits 1
(2 for a usage error).

Flags:
`

// runConfigValidate implements "ironlb config validate".
func runConfigValidate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "-", `file to check: a ConfigMap manifest or the bare config; "-" reads stdin`)
	key := fs.String("key", "config", "ConfigMap data key holding the configuration")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), configValidateUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ironlb config validate: unexpected argument %q (give the file with -f)\n", fs.Arg(0))
		return 2
	}

	data, err := readInput(*file, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "ironlb config validate: %v\n", err)
		return 1
	}
	cfg, err := config.ParseConfigMap(data, *key)
	if err != nil {
		fmt.Fprintf(stderr, "ironlb config validate: %s: invalid configuration: %v\n", displayName(*file), err)
		return 1
	}
	fmt.Fprintln(stdout, "OK")
	for _, p := range cfg.Pools {
		fmt.Fprintln(stdout, describePool(p))
	}
	for _, p := range cfg.Peers {
		fmt.Fprintln(stdout, describePeer(p))
	}
	return 0
}

func readInput(file string, stdin io.Reader) ([]byte, error) {
	if file == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return data, nil
	}
	return os.ReadFile(file) // its error names the file
}

func displayName(file string) string {
	if file == "-" {
		return "<stdin>"
	}
	return file
}

// describePool renders a pool on one line, for example
// `pool "default": layer2, 51 addresses: 172.18.255.200-172.18.255.250`.
func describePool(p *config.Pool) string {
	var b strings.Builder
	// The usable count, as MetalLB's pool-size metric counts it.
	fmt.Fprintf(&b, "pool %q: %s, %s addresses", p.Name, p.Protocol, p.UsableSize())
	if p.AvoidBuggyIPs {
		fmt.Fprintf(&b, " (of %s, avoiding .0/.255)", p.Size())
	}
	if !p.AutoAssign {
		b.WriteString(", auto-assign off")
	}
	ranges := make([]string, len(p.Ranges))
	for i, r := range p.Ranges {
		ranges[i] = r.String()
	}
	fmt.Fprintf(&b, ": %s", strings.Join(ranges, " "))
	for i, ad := range p.BGPAdvertisements {
		fmt.Fprintf(&b, "; advertisement %d: /%d, /%d", i, ad.AggregationLength, ad.AggregationLengthV6)
		if ad.LocalPref != 0 {
			fmt.Fprintf(&b, ", localpref %d", ad.LocalPref)
		}
		if len(ad.Communities) > 0 {
			cs := make([]string, len(ad.Communities))
			for j, c := range ad.Communities {
				cs[j] = c.String()
			}
			fmt.Fprintf(&b, ", communities %s", strings.Join(cs, " "))
		}
	}
	return b.String()
}

// describePeer renders a peer on one line, for example
// `peer 10.0.0.1:179: peer-asn 64501, my-asn 64500, hold-time 1m30s, keepalive-time 30s, all nodes`.
func describePeer(p *config.Peer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "peer %s: peer-asn %d, my-asn %d, hold-time %s, keepalive-time %s",
		netip.AddrPortFrom(p.Addr, p.Port), p.ASN, p.MyASN, p.HoldTime, p.KeepaliveTime)
	if p.SrcAddr.IsValid() {
		fmt.Fprintf(&b, ", source %s", p.SrcAddr)
	}
	if p.RouterID.IsValid() {
		fmt.Fprintf(&b, ", router-id %s", p.RouterID)
	}
	if p.EBGPMultiHop {
		b.WriteString(", ebgp-multihop")
	}
	if p.Password != "" {
		b.WriteString(", password set")
	}
	if len(p.NodeSelectors) == 0 {
		b.WriteString(", all nodes")
	} else {
		fmt.Fprintf(&b, ", nodes matching %d selector(s)", len(p.NodeSelectors))
	}
	return b.String()
}
