package config

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"go4.org/netipx"
)

func rng(s string) netipx.IPRange { return netipx.MustParseIPRange(s) }

func pfxs(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// defaultAds is MetalLB's advertisement for a bgp pool that configures none.
func defaultAds() []*BGPAdvertisement {
	return []*BGPAdvertisement{{AggregationLength: 32, AggregationLengthV6: 128}}
}

// stdBFD returns a profile with FRR's defaults.
func stdBFD(name string) *BFDProfile {
	return &BFDProfile{Name: name, ReceiveInterval: 300, TransmitInterval: 300, DetectMultiplier: 3, EchoInterval: 50, MinimumTTL: 254}
}

// peer returns a peer with MetalLB's defaults, changed by opts.
func peer(address string, myASN, asn uint32, opts ...func(*Peer)) *Peer {
	p := &Peer{MyASN: myASN, ASN: asn, Addr: addr(address), Port: 179, HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second}
	for _, o := range opts {
		o(p)
	}
	return p
}

func noBFD() map[string]*BFDProfile { return map[string]*BFDProfile{} }

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Config
	}{
		{
			name: "empty document",
			in:   "",
			want: &Config{BFDProfiles: noBFD()},
		},
		{
			name: "comments and empty sections only",
			in:   "# nothing yet\npeers: []\naddress-pools: null\nbgp-communities: {}\n",
			want: &Config{BFDProfiles: noBFD()},
		},
		{
			name: "walkthrough layer2 range",
			in: `
address-pools:
- name: default
  protocol: layer2
  addresses:
  - 172.18.255.200-172.18.255.250
`,
			want: &Config{BFDProfiles: noBFD(), Pools: []*Pool{{
				Name: "default", Protocol: Layer2, AutoAssign: true,
				Ranges: []netipx.IPRange{rng("172.18.255.200-172.18.255.250")},
				CIDRs:  pfxs("172.18.255.200/29", "172.18.255.208/28", "172.18.255.224/28", "172.18.255.240/29", "172.18.255.248/31", "172.18.255.250/32"),
			}}},
		},
		{
			name: "cidr with host bits is masked, ipv6 cidr and range, spaces around range ends",
			in: `
address-pools:
- name: mixed
  protocol: layer2
  addresses: ["10.0.0.5/24", "fd00:1::/120", "fd00:2::1 - fd00:2::3", "192.168.1.7/32"]
`,
			want: &Config{BFDProfiles: noBFD(), Pools: []*Pool{{
				Name: "mixed", Protocol: Layer2, AutoAssign: true,
				Ranges: []netipx.IPRange{rng("10.0.0.0-10.0.0.255"), rng("fd00:1::-fd00:1::ff"), rng("fd00:2::1-fd00:2::3"), rng("192.168.1.7-192.168.1.7")},
				CIDRs:  pfxs("10.0.0.0/24", "fd00:1::/120", "fd00:2::1/128", "fd00:2::2/127", "192.168.1.7/32"),
			}}},
		},
		{
			name: "ipv4-mapped range ends are ipv4",
			in:   "address-pools:\n- name: m\n  protocol: layer2\n  addresses: ['::ffff:10.1.0.1-::ffff:10.1.0.2']\n",
			want: &Config{BFDProfiles: noBFD(), Pools: []*Pool{{
				Name: "m", Protocol: Layer2, AutoAssign: true,
				Ranges: []netipx.IPRange{rng("10.1.0.1-10.1.0.2")},
				CIDRs:  pfxs("10.1.0.1/32", "10.1.0.2/32"),
			}}},
		},
		{
			name: "auto-assign false (YAML 1.1 'no'), avoid-buggy-ips, adjacent pools",
			in: `
address-pools:
- name: a
  protocol: layer2
  auto-assign: no
  avoid-buggy-ips: true
  addresses: [10.0.0.0/25]
- name: b
  protocol: layer2
  addresses: [10.0.0.128-10.0.0.255]
`,
			want: &Config{BFDProfiles: noBFD(), Pools: []*Pool{
				{Name: "a", Protocol: Layer2, AutoAssign: false, AvoidBuggyIPs: true, Ranges: []netipx.IPRange{rng("10.0.0.0-10.0.0.127")}, CIDRs: pfxs("10.0.0.0/25")},
				{Name: "b", Protocol: Layer2, AutoAssign: true, Ranges: []netipx.IPRange{rng("10.0.0.128-10.0.0.255")}, CIDRs: pfxs("10.0.0.128/25")},
			}},
		},
		{
			name: "bgp pool gets the default advertisement",
			in:   "address-pools:\n- name: b\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n",
			want: &Config{BFDProfiles: noBFD(), Pools: []*Pool{{
				Name: "b", Protocol: BGP, AutoAssign: true,
				Ranges: []netipx.IPRange{rng("198.51.100.0-198.51.100.255")}, CIDRs: pfxs("198.51.100.0/24"),
				BGPAdvertisements: defaultAds(),
			}}},
		},
		{
			name: "advertisements with aggregation, localpref, named and literal communities",
			in: `
bgp-communities:
  no-export: "65535:65281"
  unused: "1:1"
address-pools:
- name: b
  protocol: bgp
  addresses: [198.51.100.0/24, "2001:db8::/64"]
  bgp-advertisements:
  - aggregation-length: 24
    aggregation-length-v6: 64
    localpref: 100
    communities: [no-export, "64512:7", "0:5", "65535:65281"]
  - {}
`,
			want: &Config{BFDProfiles: noBFD(), Pools: []*Pool{{
				Name: "b", Protocol: BGP, AutoAssign: true,
				Ranges: []netipx.IPRange{rng("198.51.100.0-198.51.100.255"), rng("2001:db8::-2001:db8::ffff:ffff:ffff:ffff")},
				CIDRs:  pfxs("198.51.100.0/24", "2001:db8::/64"),
				BGPAdvertisements: []*BGPAdvertisement{
					{AggregationLength: 24, AggregationLengthV6: 64, LocalPref: 100, Communities: []Community{{0, 5}, {64512, 7}, {65535, 65281}}},
					{AggregationLength: 32, AggregationLengthV6: 128},
				},
			}}},
		},
		{
			name: "range aggregation only needs the range's widest prefix",
			// 10.0.0.1-10.0.0.10 = .1/32 .2/31 .4/30 .8/31 .10/32: /30 is the widest.
			in: "address-pools:\n- name: r\n  protocol: bgp\n  addresses: [10.0.0.1-10.0.0.10]\n  bgp-advertisements: [{aggregation-length: 30}]\n",
			want: &Config{BFDProfiles: noBFD(), Pools: []*Pool{{
				Name: "r", Protocol: BGP, AutoAssign: true,
				Ranges:            []netipx.IPRange{rng("10.0.0.1-10.0.0.10")},
				CIDRs:             pfxs("10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30", "10.0.0.8/31", "10.0.0.10/32"),
				BGPAdvertisements: []*BGPAdvertisement{{AggregationLength: 30, AggregationLengthV6: 128}},
			}}},
		},
		{
			name: "ipv4 aggregation-length is not checked against an ipv6-only pool",
			in:   "address-pools:\n- name: six\n  protocol: bgp\n  addresses: ['2001:db8::/120']\n  bgp-advertisements: [{aggregation-length: 8, aggregation-length-v6: 120}]\n",
			want: &Config{BFDProfiles: noBFD(), Pools: []*Pool{{
				Name: "six", Protocol: BGP, AutoAssign: true,
				Ranges:            []netipx.IPRange{rng("2001:db8::-2001:db8::ff")},
				CIDRs:             pfxs("2001:db8::/120"),
				BGPAdvertisements: []*BGPAdvertisement{{AggregationLength: 8, AggregationLengthV6: 120}},
			}}},
		},
		{
			name: "minimal peer gets MetalLB's defaults",
			in:   "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64501\n  my-asn: 64500\n",
			want: &Config{BFDProfiles: noBFD(), Peers: []*Peer{peer("10.0.0.1", 64500, 64501)}},
		},
		{
			name: "full peer",
			in: `
bfd-profiles:
- name: fast
  receive-interval: 50
  transmit-interval: 60
  detect-multiplier: 5
  echo-interval: 20
  echo-mode: true
  passive-mode: true
  minimum-ttl: 10
- name: plain
peers:
- peer-address: "2001:db8::1"
  peer-asn: 64501
  my-asn: 64500
  source-address: "2001:db8::2"
  peer-port: 1179
  hold-time: 9s
  keepalive-time: 2s
  router-id: 10.10.10.10
  password: 12345
  ebgp-multihop: true
  node-selectors:
  - match-labels:
      kubernetes.io/hostname: kind-worker
    match-expressions:
    - {key: rack, operator: In, values: [a, b]}
    - {key: example.com/spare, operator: DoesNotExist}
  - {}
`,
			want: &Config{
				BFDProfiles: map[string]*BFDProfile{
					"fast":  {Name: "fast", ReceiveInterval: 50, TransmitInterval: 60, DetectMultiplier: 5, EchoInterval: 20, EchoMode: true, PassiveMode: true, MinimumTTL: 10},
					"plain": stdBFD("plain"),
				},
				Peers: []*Peer{peer("2001:db8::1", 64500, 64501, func(p *Peer) {
					p.SrcAddr = addr("2001:db8::2")
					p.Port = 1179
					p.HoldTime = 9 * time.Second
					p.KeepaliveTime = 2 * time.Second
					p.RouterID = addr("10.10.10.10")
					p.Password = "12345"
					p.EBGPMultiHop = true
					p.NodeSelectors = []NodeSelector{
						{
							MatchLabels: map[string]string{"kubernetes.io/hostname": "kind-worker"},
							MatchExpressions: []SelectorRequirement{
								{Key: "rack", Operator: OpIn, Values: []string{"a", "b"}},
								{Key: "example.com/spare", Operator: OpDoesNotExist},
							},
						},
						{},
					}
				})},
			},
		},
		{
			name: "hold-time and keepalive-time truncated to seconds",
			in: `
peers:
- {peer-address: 10.0.0.2, peer-asn: 1, my-asn: 2, hold-time: 3.7s}
- {peer-address: 10.0.0.3, peer-asn: 1, my-asn: 2, hold-time: 30s, keepalive-time: 30s}
- {peer-address: 10.0.0.4, peer-asn: 1, my-asn: 2, hold-time: 9s, keepalive-time: 9900ms}
`,
			want: &Config{BFDProfiles: noBFD(), Peers: []*Peer{
				peer("10.0.0.2", 2, 1, func(p *Peer) { p.HoldTime, p.KeepaliveTime = 3*time.Second, time.Second }),
				peer("10.0.0.3", 2, 1, func(p *Peer) { p.HoldTime, p.KeepaliveTime = 30*time.Second, 30*time.Second }),
				// Truncated before the comparison with the hold time, as MetalLB does.
				peer("10.0.0.4", 2, 1, func(p *Peer) { p.HoldTime, p.KeepaliveTime = 9*time.Second, 9*time.Second }),
			}},
		},
		{
			// MetalLB compares advertisements as written: these differ, and announce alike.
			name: "advertisements that differ only as written are accepted, as MetalLB does",
			in: "bgp-communities: {ne: '65535:65281'}\naddress-pools:\n- name: b\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n" +
				"  bgp-advertisements: [{}, {aggregation-length: 32}, {communities: []}, {communities: [ne, '65535:65281', '007:8', '7:8']}]\n",
			want: &Config{BFDProfiles: noBFD(), Pools: []*Pool{{
				Name: "b", Protocol: BGP, AutoAssign: true,
				Ranges: []netipx.IPRange{rng("10.0.0.0-10.0.0.255")}, CIDRs: pfxs("10.0.0.0/24"),
				BGPAdvertisements: []*BGPAdvertisement{
					{AggregationLength: 32, AggregationLengthV6: 128},
					{AggregationLength: 32, AggregationLengthV6: 128},
					{AggregationLength: 32, AggregationLengthV6: 128},
					{AggregationLength: 32, AggregationLengthV6: 128, Communities: []Community{{7, 8}, {65535, 65281}}},
				},
			}}},
		},
		{
			// An empty selector next to another: MetalLB's selector lists differ, so do ours.
			name: "peers whose selector lists differ are two sessions",
			in:   "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2}\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, node-selectors: [{}, {match-labels: {a: b}}]}\n",
			want: &Config{BFDProfiles: noBFD(), Peers: []*Peer{
				peer("10.0.0.1", 2, 1),
				peer("10.0.0.1", 2, 1, func(p *Peer) {
					p.NodeSelectors = []NodeSelector{{}, {MatchLabels: map[string]string{"a": "b"}}}
				}),
			}},
		},
		{
			name: "addresses next to the special blocks are fine",
			in:   "address-pools:\n- {name: p, protocol: layer2, addresses: [0.0.0.1-0.0.0.9, 126.255.255.0/24, 128.0.0.0/24, 223.255.255.255/32, 255.255.255.254/32, '::2/128', 'fe7f::/16', 'fec0::/10']}\n",
			want: &Config{BFDProfiles: noBFD(), Pools: []*Pool{{
				Name: "p", Protocol: Layer2, AutoAssign: true,
				Ranges: []netipx.IPRange{rng("0.0.0.1-0.0.0.9"), rng("126.255.255.0-126.255.255.255"), rng("128.0.0.0-128.0.0.255"),
					rng("223.255.255.255-223.255.255.255"), rng("255.255.255.254-255.255.255.254"), rng("::2-::2"),
					rng("fe7f::-fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), rng("fec0::-feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
				CIDRs: pfxs("0.0.0.1/32", "0.0.0.2/31", "0.0.0.4/30", "0.0.0.8/31", "126.255.255.0/24", "128.0.0.0/24", "223.255.255.255/32", "255.255.255.254/32",
					"::2/128", "fe7f::/16", "fec0::/10"),
			}}},
		},
		{
			name: "same router on two ports is two sessions",
			in:   "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2}\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, peer-port: 1179}\n",
			want: &Config{BFDProfiles: noBFD(), Peers: []*Peer{
				peer("10.0.0.1", 2, 1),
				peer("10.0.0.1", 2, 1, func(p *Peer) { p.Port = 1179 }),
			}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse: unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse mismatch\n got: %s\nwant: %s", dump(got), dump(tc.want))
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	const l2 = "address-pools:\n- name: p\n  protocol: layer2\n  addresses: "
	const bgp = "address-pools:\n- name: p\n  protocol: bgp\n  addresses: "
	const peerOK = "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64501\n  my-asn: 64500\n"
	tests := []struct {
		name string
		in   string
		kind error
		want string
	}{
		// Decoding.
		{"malformed yaml", "address-pools: [", ErrSyntax, "could not parse YAML"},
		{"document is a list", "- a\n- b\n", ErrType, "the document must be a mapping"},
		{"unknown top-level field", "adress-pools: []\n", ErrUnknownField, `unknown field "adress-pools"`},
		{"keys are case-sensitive", "address-pools:\n- Name: p\n", ErrUnknownField, `address-pools[0]: unknown field "Name"`},
		{"unknown pool field", l2 + "[10.0.0.0/24]\n  colour: blue\n", ErrUnknownField, `address-pools[0] "p": unknown field "colour"`},
		{"unknown advertisement field", bgp + "[10.0.0.0/24]\n  bgp-advertisements: [{aggregation-lenght: 24}]\n", ErrUnknownField, `address-pools[0] "p": bgp-advertisements[0]: unknown field "aggregation-lenght"`},
		{"unknown peer field", peerOK + "  hold: 3s\n", ErrUnknownField, `peers[0]: unknown field "hold"`},
		{"duplicate key", l2 + "[10.0.0.0/24]\n  name: q\n", ErrSyntax, `key "name" already set`},
		{"addresses not a list", l2 + "10.0.0.0/24\n", ErrType, `address-pools[0] "p": addresses "10.0.0.0/24": must be a list`},
		{"peer-asn not a number", "peers:\n- {peer-asn: abc}\n", ErrType, `peers[0]: peer-asn "abc": must be an integer from 0 to 4294967295`},
		{"my-asn negative", "peers:\n- {my-asn: -1}\n", ErrType, `peers[0]: my-asn -1: must be an integer`},
		{"peer-port too big", "peers:\n- {peer-port: 70000}\n", ErrType, `peers[0]: peer-port 70000: must be an integer from 0 to 65535`},
		{"aggregation-length not integral", bgp + "[10.0.0.0/24]\n  bgp-advertisements: [{aggregation-length: 24.5}]\n", ErrType, "aggregation-length 24.5: must be an integer"},
		{"auto-assign not a bool", l2 + "[10.0.0.0/24]\n  auto-assign: maybe\n", ErrType, `auto-assign "maybe": must be true or false`},

		// Pools.
		{"missing pool name", "address-pools:\n- protocol: layer2\n  addresses: [10.0.0.0/24]\n", ErrMissing, "address-pools[0]: name: missing"},
		{"missing protocol", "address-pools:\n- name: p\n  addresses: [10.0.0.0/24]\n", ErrMissing, `address-pools[0] "p": protocol: missing`},
		{"unknown protocol", "address-pools:\n- name: p\n  protocol: ospf\n  addresses: [10.0.0.0/24]\n", ErrInvalid, `address-pools[0] "p": protocol "ospf": unknown`},
		{"no addresses", "address-pools:\n- name: p\n  protocol: layer2\n", ErrMissing, `address-pools[0] "p": addresses: missing`},
		{"empty address list", l2 + "[]\n", ErrMissing, `addresses: missing`},
		{"prefix too long", l2 + "[10.0.0.0/33]\n", ErrInvalid, `address-pools[0] "p": addresses[0] "10.0.0.0/33": not a CIDR or an address range`},
		{"bare address", l2 + "[10.0.0.1]\n", ErrInvalid, `addresses[0] "10.0.0.1": not a CIDR`},
		{"ipv4-mapped prefix", l2 + "['::ffff:10.0.0.0/120']\n", ErrInvalid, "IPv4-mapped IPv6 prefix"},
		{"bad range start", l2 + "[10.0.0-10.0.0.9]\n", ErrInvalid, `addresses[0] "10.0.0-10.0.0.9": invalid range start "10.0.0"`},
		{"bad range end", l2 + "[10.0.0.1-]\n", ErrInvalid, `invalid range end ""`},
		{"three-part range", l2 + "[10.0.0.1-10.0.0.5-10.0.0.9]\n", ErrInvalid, `invalid range end "10.0.0.5-10.0.0.9"`},
		{"range start after end", "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.1.0.0/24]\n- name: blue\n  protocol: layer2\n  addresses: [10.0.0.9-10.0.0.1]\n", ErrInvalid,
			`address-pools[1] "blue": addresses[0] "10.0.0.9-10.0.0.1": range start is after end`},
		{"range mixes families", l2 + "['10.0.0.1-fd00::1']\n", ErrInvalid, "range mixes IPv4 and IPv6"},
		{"range with zone", l2 + "['fe80::1%eth0-fe80::9']\n", ErrInvalid, "zones are not allowed"},
		{"duplicate pool name", "address-pools:\n- {name: p, protocol: layer2, addresses: [10.0.0.0/24]}\n- {name: p, protocol: layer2, addresses: [10.0.1.0/24]}\n", ErrDuplicate,
			`address-pools[1] "p": name "p": already used by address-pools[0]`},
		{"overlap between pools", `
address-pools:
- {name: a, protocol: layer2, addresses: [10.1.0.0/24, 10.0.0.128/25]}
- {name: b, protocol: layer2, addresses: [10.2.0.0/24]}
- {name: c, protocol: layer2, addresses: [10.0.0.0/24]}
`, ErrOverlap, `address-pools[2] "c": addresses[0] "10.0.0.0/24" overlaps with address-pools[0] "a" addresses[1] "10.0.0.128/25"`},
		{"overlap inside one pool", l2 + "[10.0.0.1-10.0.0.5, 10.0.0.5-10.0.0.9]\n", ErrOverlap,
			`address-pools[0] "p": addresses[1] "10.0.0.5-10.0.0.9" overlaps with address-pools[0] "p" addresses[0] "10.0.0.1-10.0.0.5"`},
		{"overlap range with cidr", "address-pools:\n- {name: a, protocol: bgp, addresses: [172.18.255.200-172.18.255.250]}\n- {name: b, protocol: layer2, addresses: [172.18.255.248/30]}\n", ErrOverlap,
			`address-pools[1] "b": addresses[0] "172.18.255.248/30" overlaps with address-pools[0] "a" addresses[0] "172.18.255.200-172.18.255.250"`},
		{"overlap ipv6", "address-pools:\n- {name: a, protocol: layer2, addresses: ['fd00::/64']}\n- {name: b, protocol: layer2, addresses: ['fd00::ffff-fd00:0:0:1::1']}\n", ErrOverlap,
			`address-pools[1] "b": addresses[0] "fd00::ffff-fd00:0:0:1::1" overlaps with address-pools[0] "a" addresses[0] "fd00::/64"`},
		{"advertisements in a layer2 pool", l2 + "[10.0.0.0/24]\n  bgp-advertisements: [{}]\n", ErrInvalid, `address-pools[0] "p": bgp-advertisements: only allowed in a bgp pool`},

		// Addresses that can never be a Service's (ironlb only; MetalLB accepts them).
		{"everything v4", l2 + "[0.0.0.0/0]\n", ErrInvalid, `address-pools[0] "p": addresses[0] "0.0.0.0/0": includes 0.0.0.0/32 (the unspecified address), where no Service can be reached`},
		{"everything v6", l2 + "['::/0']\n", ErrInvalid, `addresses[0] "::/0": includes ::/128 (the unspecified address)`},
		{"unspecified v4", l2 + "[0.0.0.0/32]\n", ErrInvalid, `includes 0.0.0.0/32 (the unspecified address)`},
		{"range from unspecified", l2 + "[0.0.0.0-0.0.0.9]\n", ErrInvalid, `addresses[0] "0.0.0.0-0.0.0.9": includes 0.0.0.0/32`},
		{"loopback v4", l2 + "[127.0.0.1/32]\n", ErrInvalid, `includes 127.0.0.0/8 (loopback addresses)`},
		{"range touching loopback", l2 + "[126.255.255.250-127.0.0.0]\n", ErrInvalid, `includes 127.0.0.0/8 (loopback addresses)`},
		{"loopback v6", l2 + "['::1/128']\n", ErrInvalid, `includes ::1/128 (the loopback address)`},
		{"link-local v4", l2 + "[169.254.10.0/24]\n", ErrInvalid, `includes 169.254.0.0/16 (link-local addresses)`},
		{"link-local v6", l2 + "['fe80::1-fe80::9']\n", ErrInvalid, `includes fe80::/10 (link-local addresses)`},
		{"multicast v4", l2 + "[239.1.1.0/24]\n", ErrInvalid, `includes 224.0.0.0/4 (multicast addresses)`},
		{"range into multicast", l2 + "[223.255.255.0-224.0.0.5]\n", ErrInvalid, `includes 224.0.0.0/4 (multicast addresses)`},
		{"multicast v6", l2 + "['ff02::/64']\n", ErrInvalid, `includes ff00::/8 (multicast addresses)`},
		{"limited broadcast", l2 + "[255.255.255.255/32]\n", ErrInvalid, `includes 255.255.255.255/32 (the limited broadcast address)`},
		{"ipv4-mapped v6 space", l2 + "['::fffe:0:0/95']\n", ErrInvalid, `includes ::ffff:0.0.0.0/96 (IPv4-mapped addresses`},
		{"special range in a later entry", l2 + "[10.0.0.0/24, 127.0.0.0/8]\n", ErrInvalid, `address-pools[0] "p": addresses[1] "127.0.0.0/8": includes 127.0.0.0/8`},

		// Names (ironlb only: MetalLB accepts control characters).
		{"newline in pool name", "address-pools:\n- {name: \"a\\nb\", protocol: layer2, addresses: [10.0.0.0/24]}\n", ErrInvalid, `address-pools[0] "a\nb": name "a\nb": control character U+000A at byte 1`},
		{"escape in pool name", "address-pools:\n- {name: \"\\e[31mred\", protocol: layer2, addresses: [10.0.0.0/24]}\n", ErrInvalid, `control character U+001B at byte 0`},
		{"tab in community name", "bgp-communities: {\"a\\tb\": '1:2'}\n", ErrInvalid, `bgp-communities "a\tb": invalid name: control character U+0009`},
		{"C1 control in bfd profile name", "bfd-profiles:\n- name: \"x\\u0085\"\n", ErrInvalid, `bfd-profiles[0] "x\u0085": name "x\u0085": control character U+0085`},
		{"invalid utf-8 in the document", "address-pools:\n- {name: \xff, protocol: layer2, addresses: [10.0.0.0/24]}\n", ErrSyntax, `could not parse YAML`},

		// Advertisements.
		{"aggregation-length above 32", bgp + "[10.0.0.0/24]\n  bgp-advertisements: [{aggregation-length: 33}]\n", ErrInvalid,
			`address-pools[0] "p": bgp-advertisements[0]: aggregation-length 33: must be from 0 to 32`},
		{"aggregation-length above 32 in an ipv6 pool", bgp + "['fd00::/64']\n  bgp-advertisements: [{aggregation-length: 64}]\n", ErrInvalid, "aggregation-length 64: must be from 0 to 32"},
		{"aggregation-length negative", bgp + "['fd00::/64']\n  bgp-advertisements: [{aggregation-length: -1}]\n", ErrInvalid, "aggregation-length -1: must be from 0 to 32"},
		{"aggregation-length-v6 above 128", bgp + "['fd00::/64']\n  bgp-advertisements: [{aggregation-length-v6: 129}]\n", ErrInvalid, "aggregation-length-v6 129: must be from 0 to 128"},
		{"aggregation-length shorter than cidr", bgp + "[10.0.0.0/28, 10.0.1.0/24]\n  bgp-advertisements: [{aggregation-length: 26}]\n", ErrInvalid,
			`address-pools[0] "p": bgp-advertisements[0]: aggregation-length 26: shorter than prefix length /28 of addresses[0] "10.0.0.0/28"`},
		{"aggregation-length-v6 shorter than cidr", bgp + "[10.0.0.0/24, 'fd00::/120']\n  bgp-advertisements: [{aggregation-length: 24, aggregation-length-v6: 64}]\n", ErrInvalid,
			`aggregation-length-v6 64: shorter than prefix length /120 of addresses[1] "fd00::/120"`},
		{"default aggregation-length-v6 fine, v4 too short", bgp + "['fd00::/120', 10.0.0.0/24]\n  bgp-advertisements: [{aggregation-length: 16}]\n", ErrInvalid,
			`aggregation-length 16: shorter than prefix length /24 of addresses[1] "10.0.0.0/24"`},
		{"aggregation-length shorter than every prefix of a range", bgp + "[10.0.0.1-10.0.0.10]\n  bgp-advertisements: [{aggregation-length: 29}]\n", ErrInvalid,
			`aggregation-length 29: shorter than prefix length /30 of addresses[0] "10.0.0.1-10.0.0.10"`},
		{"bad community literal", bgp + "[10.0.0.0/24]\n  bgp-advertisements: [{communities: ['1:2:3']}]\n", ErrInvalid,
			`address-pools[0] "p": bgp-advertisements[0]: communities[0] "1:2:3": neither a bgp-communities name nor a community`},
		{"unknown community name", bgp + "[10.0.0.0/24]\n  bgp-advertisements: [{communities: ['0:1', no-export]}]\n", ErrInvalid, `communities[1] "no-export": neither`},
		{"community half too big", bgp + "[10.0.0.0/24]\n  bgp-advertisements: [{communities: ['65536:1']}]\n", ErrInvalid, `first half "65536" is not a number from 0 to 65535`},
		// MetalLB v0.12.1 refuses these too.
		{"identical advertisements", bgp + "[10.0.0.0/24]\n  bgp-advertisements:\n  - {aggregation-length: 32, communities: ['1:1']}\n  - {localpref: 5}\n  - {aggregation-length: 32, communities: ['1:1']}\n", ErrDuplicate,
			`address-pools[0] "p": bgp-advertisements[2]: same as bgp-advertisements[0]`},
		{"two empty advertisements", bgp + "[10.0.0.0/24]\n  bgp-advertisements: [{}, {}]\n", ErrDuplicate, `bgp-advertisements[1]: same as bgp-advertisements[0]`},
		{"identical through numbers written differently", bgp + "[10.0.0.0/24]\n  bgp-advertisements: [{localpref: 16}, {localpref: 0x10}]\n", ErrDuplicate, `bgp-advertisements[1]: same as bgp-advertisements[0]`},
		{"community listed twice", bgp + "[10.0.0.0/24]\n  bgp-advertisements: [{communities: ['1:2', '3:4', '1:2']}]\n", ErrDuplicate,
			`address-pools[0] "p": bgp-advertisements[0]: communities[2] "1:2": already listed as communities[0]`},
		{"community name listed twice", "bgp-communities: {ne: '65535:65281'}\n" + bgp + "[10.0.0.0/24]\n  bgp-advertisements: [{communities: [ne, ne]}]\n", ErrDuplicate, `communities[1] "ne": already listed as communities[0]`},
		{"bad bgp-communities value", "bgp-communities:\n  x: '1:99999'\n", ErrInvalid, `bgp-communities "x": value "1:99999": second half "99999"`},
		{"bgp-communities value not a string", "bgp-communities:\n  x: [1]\n", ErrType, `bgp-communities "x" (a list): must be a string`},

		// Peers.
		{"missing my-asn", "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1}\n", ErrMissing, "peers[0]: my-asn: missing"},
		{"missing peer-asn", "peers:\n- {peer-address: 10.0.0.1, my-asn: 1}\n", ErrMissing, "peers[0]: peer-asn: missing"},
		{"missing peer-address", "peers:\n- {peer-asn: 1, my-asn: 2}\n", ErrMissing, "peers[0]: peer-address: missing"},
		{"bad peer-address", "peers:\n- {peer-asn: 1, my-asn: 2, peer-address: 10.0.0.256}\n", ErrInvalid, `peers[0]: peer-address "10.0.0.256"`},
		{"hold-time below 3s", peerOK + "  hold-time: 2s\n", ErrInvalid, `peers[0]: hold-time "2s": must be at least 3s`},
		{"hold-time 2.9s truncates to 2s", peerOK + "  hold-time: 2900ms\n", ErrInvalid, `hold-time "2900ms": must be at least 3s`},
		{"hold-time negative", peerOK + "  hold-time: -10s\n", ErrInvalid, `hold-time "-10s": must be at least 3s`},
		// GoBGP cannot offer a zero hold time (it substitutes 90s); MetalLB's native speaker can.
		{"hold-time 0 unsupported", peerOK + "  hold-time: 0s\n", ErrUnsupported, `peers[0]: hold-time "0s": 0 (no keepalives) is not supported`},
		{"hold-time 0 without unit", peerOK + "  hold-time: 0\n", ErrUnsupported, `hold-time "0": 0 (no keepalives) is not supported`},
		{"hold-time below 1s truncates to 0", peerOK + "  hold-time: 500ms\n", ErrUnsupported, `hold-time "500ms": 0 (no keepalives) is not supported`},
		{"hold-time without unit", peerOK + "  hold-time: 90\n", ErrInvalid, `hold-time "90": not a duration`},
		{"keepalive above hold", peerOK + "  hold-time: 9s\n  keepalive-time: 10s\n", ErrInvalid, `peers[0]: keepalive-time "10s": must not be greater than the hold time (9s)`},
		{"keepalive above default hold", peerOK + "  keepalive-time: 91s\n", ErrInvalid, `keepalive-time "91s": must not be greater than the hold time (1m30s)`},
		{"keepalive with hold 0", peerOK + "  hold-time: 0s\n  keepalive-time: 1s\n", ErrUnsupported, `hold-time "0s": 0 (no keepalives) is not supported`},
		{"keepalive 0 unsupported", peerOK + "  keepalive-time: 0s\n", ErrUnsupported, `peers[0]: keepalive-time "0s": 0 (no keepalives) is not supported`},
		{"keepalive below 1s truncates to 0", peerOK + "  keepalive-time: 999ms\n", ErrUnsupported, `keepalive-time "999ms": 0 (no keepalives) is not supported`},
		{"keepalive negative", peerOK + "  keepalive-time: -1s\n", ErrInvalid, `keepalive-time "-1s": must not be negative`},
		{"keepalive garbage", peerOK + "  keepalive-time: soon\n", ErrInvalid, `keepalive-time "soon": not a duration`},
		{"bad router-id", peerOK + "  router-id: 1.2.3\n", ErrInvalid, `peers[0]: router-id "1.2.3"`},
		{"ipv6 router-id", peerOK + "  router-id: 'fd00::1'\n", ErrInvalid, `router-id "fd00::1": a BGP router ID is 32 bits`},
		{"bad source-address", peerOK + "  source-address: here\n", ErrInvalid, `peers[0]: source-address "here"`},
		{"ebgp-multihop on ibgp", "peers:\n- {peer-address: 10.0.0.1, peer-asn: 7, my-asn: 7, ebgp-multihop: true}\n", ErrInvalid, "peers[0]: ebgp-multihop true: not allowed for an iBGP peer"},
		{"duplicate peer", peerOK + "- peer-address: 10.0.0.1\n  peer-asn: 64501\n  my-asn: 64500\n", ErrDuplicate, `peers[1]: peer-address "10.0.0.1": same session as peers[0]`},
		// MetalLB turns no selector and an empty one alike into "every node".
		{"duplicate peer but for an empty selector", peerOK + "- peer-address: 10.0.0.1\n  peer-asn: 64501\n  my-asn: 64500\n  node-selectors: [{}]\n", ErrDuplicate, `peers[1]: peer-address "10.0.0.1": same session as peers[0]`},
		{"duplicate peer, selector written two ways", "peers:\n" +
			"- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {a: b, c: d}, match-expressions: [{key: e, operator: In, values: [y, x, x]}]}]}\n" +
			"- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-expressions: [{key: e, operator: In, values: [x, y]}], match-labels: {c: d, a: b}}]}\n",
			ErrDuplicate, `peers[1]: peer-address "10.0.0.1": same session as peers[0]`},
		{"duplicate peer through an ipv4-mapped address", peerOK + "- {peer-address: '::ffff:10.0.0.1', peer-asn: 64501, my-asn: 64500}\n", ErrDuplicate, `same session as peers[0]`},
		// No BFD in GoBGP; MetalLB's native speaker refuses it too.
		{"bfd-profile unsupported", "bfd-profiles: [{name: fast}]\n" + peerOK + "  bfd-profile: fast\n", ErrUnsupported, `peers[0]: bfd-profile "fast": not supported: ironlb's BGP speaker (GoBGP) has no BFD`},
		{"unknown bfd-profile unsupported too", peerOK + "  bfd-profile: fast\n", ErrUnsupported, `peers[0]: bfd-profile "fast": not supported`},

		// Node selectors.
		{"unknown operator", peerOK + "  node-selectors: [{match-expressions: [{key: a, operator: Equals, values: [b]}]}]\n", ErrInvalid,
			`peers[0]: node-selectors[0]: match-expressions[0]: operator "Equals": unknown`},
		{"missing operator", peerOK + "  node-selectors: [{match-expressions: [{key: a}]}]\n", ErrMissing, "operator: missing"},
		{"In without values", peerOK + "  node-selectors: [{match-expressions: [{key: a, operator: In}]}]\n", ErrInvalid, "values: must not be empty for operator In"},
		{"Exists with values", peerOK + "  node-selectors: [{match-expressions: [{key: a, operator: Exists, values: [x]}]}]\n", ErrInvalid, "values: must be empty for operator Exists"},
		{"bad expression key", peerOK + "  node-selectors: [{match-expressions: [{key: -a, operator: Exists}]}]\n", ErrInvalid, `match-expressions[0]: key "-a": name part must be`},
		{"bad expression value", peerOK + "  node-selectors: [{match-expressions: [{key: a, operator: NotIn, values: [ok, 'not ok']}]}]\n", ErrInvalid, `values[1] "not ok"`},
		{"bad match-labels key", peerOK + "  node-selectors: [{match-labels: {a/b/c: x}}]\n", ErrInvalid, `node-selectors[0]: match-labels "a/b/c": invalid label key: at most one '/'`},
		{"uppercase key prefix", peerOK + "  node-selectors: [{match-labels: {Example.com/x: y}}]\n", ErrInvalid, `prefix "Example.com" must be a lowercase DNS subdomain`},
		{"bad match-labels value", peerOK + "  node-selectors: [{match-labels: {zone: '-x'}}]\n", ErrInvalid, `match-labels "zone": invalid label value "-x"`},
		{"label value too long", peerOK + "  node-selectors: [{match-labels: {zone: " + strings.Repeat("a", 64) + "}}]\n", ErrInvalid, "must be at most 63 characters"},

		// BFD profiles.
		{"bfd profile without name", "bfd-profiles:\n- {receive-interval: 100}\n", ErrMissing, "bfd-profiles[0]: name: missing"},
		{"duplicate bfd profile", "bfd-profiles:\n- name: a\n- name: a\n", ErrDuplicate, `bfd-profiles[1] "a": name "a": a BFD profile with this name is already defined`},
		{"receive-interval too small", "bfd-profiles:\n- {name: a, receive-interval: 9}\n", ErrInvalid, `bfd-profiles[0] "a": receive-interval 9: must be from 10 to 60000`},
		{"transmit-interval too big", "bfd-profiles:\n- {name: a, transmit-interval: 60001}\n", ErrInvalid, "transmit-interval 60001: must be from 10 to 60000"},
		{"detect-multiplier too small", "bfd-profiles:\n- {name: a, detect-multiplier: 1}\n", ErrInvalid, "detect-multiplier 1: must be from 2 to 255"},
		{"echo-interval too small", "bfd-profiles:\n- {name: a, echo-interval: 0}\n", ErrInvalid, "echo-interval 0: must be from 10 to 60000"},
		{"minimum-ttl too big", "bfd-profiles:\n- {name: a, minimum-ttl: 255}\n", ErrInvalid, "minimum-ttl 255: must be from 1 to 254"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse accepted the document, want error containing %q; got %s", tc.want, dump(cfg))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %q is not %v", err, tc.kind)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %T is not a *config.Error", err)
			}
		})
	}
}

func TestLookups(t *testing.T) {
	cfg, err := Parse([]byte(`
address-pools:
- {name: four, protocol: layer2, addresses: [10.0.0.0/30, 10.0.1.5-10.0.1.6]}
- {name: six, protocol: bgp, addresses: ['fd00::/64']}
- {name: whole, protocol: bgp, addresses: ['::/0']}
`))
	if err == nil {
		t.Fatal("'::/0' overlaps 'fd00::/64', want error")
	}
	cfg, err = Parse([]byte(`
address-pools:
- {name: four, protocol: layer2, addresses: [10.0.0.0/30, 10.0.1.5-10.0.1.6]}
- {name: six, protocol: bgp, addresses: ['fd00::/64']}
`))
	if err != nil {
		t.Fatal(err)
	}
	poolFor := []struct {
		ip   string
		want string // "" = none
	}{
		{"10.0.0.0", "four"}, {"10.0.0.3", "four"}, {"10.0.0.4", ""},
		{"10.0.1.4", ""}, {"10.0.1.5", "four"}, {"10.0.1.6", "four"}, {"10.0.1.7", ""},
		{"::ffff:10.0.0.2", "four"},
		{"fd00::", "six"}, {"fd00::ffff:ffff:ffff:ffff", "six"}, {"fd00:0:0:1::", ""},
	}
	for _, tc := range poolFor {
		t.Run("PoolFor "+tc.ip, func(t *testing.T) {
			got := cfg.PoolFor(addr(tc.ip))
			switch {
			case tc.want == "" && got != nil:
				t.Errorf("PoolFor(%s) = %q, want none", tc.ip, got.Name)
			case tc.want != "" && (got == nil || got.Name != tc.want):
				t.Errorf("PoolFor(%s) = %v, want %q", tc.ip, got, tc.want)
			}
		})
	}
	if p := cfg.PoolByName("six"); p == nil || p.Protocol != BGP {
		t.Errorf("PoolByName(six) = %v", p)
	}
	if p := cfg.PoolByName("seven"); p != nil {
		t.Errorf("PoolByName(seven) = %v, want nil", p)
	}
	if got := cfg.PoolByName("four").Size().String(); got != "6" {
		t.Errorf("four.Size() = %s, want 6", got)
	}
	if got := cfg.PoolByName("six").Size().String(); got != "18446744073709551616" {
		t.Errorf("six.Size() = %s, want 2^64", got)
	}
}

func TestUsableSize(t *testing.T) {
	tests := []struct {
		name      string
		addresses string
		avoid     bool
		size      string
		usable    string
	}{
		{"a /24", "[10.0.0.0/24]", false, "256", "256"},
		{"a /24 avoiding buggy IPs, as MetalLB counts it", "[10.0.0.0/24]", true, "256", "254"},
		{"a /16 avoiding buggy IPs", "[10.1.0.0/16]", true, "65536", "65024"},
		{"a /25 holds one .0", "[10.0.0.0/25]", true, "128", "127"},
		{"an upper /25 holds one .255", "[10.0.0.128/25]", true, "128", "127"},
		{"a range across a boundary", "[10.0.0.250-10.0.1.5]", true, "12", "10"},
		{"a range of one .0", "[10.0.1.0-10.0.1.0]", true, "1", "0"},
		{"a range of one .255", "[10.0.1.255/32]", true, "1", "0"},
		{"a range inside a /24", "[10.0.1.1-10.0.1.254]", true, "254", "254"},
		{"several entries", "[10.0.0.0/24, 10.0.2.255-10.0.3.0, 10.0.5.7/32]", true, "259", "255"},
		{"ipv6 is never skipped", "['fd00::/120', 'fd00:1::ff-fd00:1::100']", true, "258", "258"},
		{"top of ipv4", "[223.255.255.0/24]", true, "256", "254"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(fmt.Sprintf("address-pools:\n- {name: p, protocol: layer2, avoid-buggy-ips: %t, addresses: %s}\n", tc.avoid, tc.addresses)))
			if err != nil {
				t.Fatal(err)
			}
			p := cfg.Pools[0]
			if got := p.Size().String(); got != tc.size {
				t.Errorf("Size() = %s, want %s", got, tc.size)
			}
			if got := p.UsableSize().String(); got != tc.usable {
				t.Errorf("UsableSize() = %s, want %s", got, tc.usable)
			}
		})
	}
}

func TestCommunity(t *testing.T) {
	tests := []struct {
		in      string
		want    Community
		wantErr string
	}{
		{in: "0:0", want: Community{0, 0}},
		{in: "65535:65281", want: Community{65535, 65281}},
		{in: "007:8", want: Community{7, 8}},
		{in: "1", wantErr: "aa:nn"},
		{in: "1:2:3", wantErr: "aa:nn"},
		{in: "-1:2", wantErr: "first half"},
		{in: "1:+2", wantErr: "second half"},
		{in: ":2", wantErr: "first half"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCommunity(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseCommunity(%q) = %v, %v; want error with %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseCommunity(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
	c := Community{65535, 65281}
	if c.String() != "65535:65281" || c.Uint32() != 0xFFFFFF01 {
		t.Errorf("Community %v: String %q Uint32 %#x", c, c.String(), c.Uint32())
	}
}

func TestPeerString(t *testing.T) {
	tests := []struct {
		p    *Peer
		want string
	}{
		{peer("10.0.0.1", 1, 64501), "10.0.0.1:179 (AS 64501)"},
		{peer("fd00::1", 1, 7, func(p *Peer) { p.Port = 1179 }), "[fd00::1]:1179 (AS 7)"},
	}
	for _, tc := range tests {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
