// Package parityrows is the table of configurations on which ironlb's parser is compared with
// MetalLB v0.12.1's: config.TestMetalLBParity checks ironlb's column against config.Parse, and
// metallbparity.TestRealMetalLB checks MetalLB's column against the real MetalLB speaker. It is
// data only (no imports), so the config package's tests can use it and stay free of k8s.io.
package parityrows

// Row is one rule with a configuration that exercises it.
type Row struct {
	Rule    string
	In      string // the ConfigMap's config key
	MetalLB bool   // MetalLB v0.12.1's native speaker accepts it
	IronLB  bool   // ironlb accepts it; differs from MetalLB only as config/doc.go says
}

const (
	peer = "peers:\n- {peer-address: 10.0.0.1, peer-asn: 64501, my-asn: 64500"
	l2   = "address-pools:\n- {name: p, protocol: layer2, addresses: "
	bgp  = "address-pools:\n- {name: p, protocol: bgp, addresses: [10.0.0.0/24], bgp-advertisements: "
)

// Rows returns the table, a fresh copy each call. Every In is different, so applying the rows one
// after another as the same ConfigMap changes it at every step.
func Rows() []Row {
	return []Row{
		// Decoding (yaml.v2 UnmarshalStrict).
		{"empty document", "", true, true},
		{"malformed YAML", "peers: [", false, false},
		{"unknown field", "adress-pools: []\n", false, false},
		{"keys are case-sensitive", l2 + "[10.0.0.0/24], Protocol: bgp}\n", false, false},
		{"duplicate key", l2 + "[10.0.0.0/24], name: q}\n", false, false},
		{"a list as the document", "- a\n", false, false},
		{"quoted number for an integer", peer + ", peer-port: '179'}\n", false, false},
		{"string fields keep their text", peer + ", password: 0123}\n", true, true},
		{"YAML 1.1 booleans", l2 + "[10.0.0.0/24], auto-assign: no, avoid-buggy-ips: yes}\n", true, true},
		{"hex integers", peer + ", peer-port: 0xb3}\n", true, true},
		{"merge keys", "peers:\n- &a {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2}\n- {<<: *a, peer-port: 1179}\n", true, true},
		{"fractional integer (MetalLB truncates)", bgp + "[{aggregation-length: 24.5}]}\n", true, false},

		// Peers.
		{"walkthrough peer", peer + "}\n", true, true},
		{"missing my-asn", "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1}\n", false, false},
		{"missing peer-asn", "peers:\n- {peer-address: 10.0.0.1, my-asn: 1}\n", false, false},
		{"ebgp-multihop on iBGP", "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 1, ebgp-multihop: true}\n", false, false},
		{"ebgp-multihop on eBGP", peer + ", ebgp-multihop: true}\n", true, true},
		{"bad peer address", "peers:\n- {peer-address: 10.0.0.300, peer-asn: 1, my-asn: 2}\n", false, false},
		{"hold-time below 3s", peer + ", hold-time: 2s}\n", false, false},
		{"hold-time truncated", peer + ", hold-time: 3.9s}\n", true, true},
		{"hold-time not a duration", peer + ", hold-time: 90}\n", false, false},
		{"hold-time 0 (GoBGP cannot offer it)", peer + ", hold-time: 0s}\n", true, false},
		{"keepalive-time (native speaker refuses it; GoBGP honours it)", peer + ", keepalive-time: 10s}\n", false, true},
		{"keepalive above hold", peer + ", hold-time: 9s, keepalive-time: 10s}\n", false, false},
		{"bad router-id", peer + ", router-id: 1.2.3}\n", false, false},
		{"ipv6 router-id (a BGP identifier is 32 bits)", peer + ", router-id: 'fd00::1'}\n", true, false},
		{"bad source-address", peer + ", source-address: x}\n", false, false},
		{"bad selector operator", peer + ", node-selectors: [{match-expressions: [{key: a, operator: Equals, values: [b]}]}]}\n", false, false},
		{"In without values", peer + ", node-selectors: [{match-expressions: [{key: a, operator: In}]}]}\n", false, false},
		{"bad label value", peer + ", node-selectors: [{match-labels: {a: '-x'}}]}\n", false, false},
		{"identical peers", peer + "}\n" + "- {peer-address: 10.0.0.1, peer-asn: 64501, my-asn: 64500}\n", false, false},
		{"identical peers but for an empty selector", peer + "}\n" + "- {peer-address: 10.0.0.1, peer-asn: 64501, my-asn: 64500, node-selectors: [{}]}\n", false, false},
		{"identical selectors written in another order", peer + ", node-selectors: [{match-labels: {a: b, c: d}}]}\n" + "- {peer-address: 10.0.0.1, peer-asn: 64501, my-asn: 64500, node-selectors: [{match-labels: {c: d, a: b}}]}\n", false, false},
		{"peers on two ports", peer + "}\n" + "- {peer-address: 10.0.0.1, peer-asn: 64501, my-asn: 64500, peer-port: 1179}\n", true, true},
		{"selector lists that differ", peer + "}\n" + "- {peer-address: 10.0.0.1, peer-asn: 64501, my-asn: 64500, node-selectors: [{}, {match-labels: {a: b}}]}\n", true, true},
		{"bfd-profile on a peer (no BFD in the native speaker nor in GoBGP)", "bfd-profiles: [{name: f}]\n" + peer + ", bfd-profile: f}\n", false, false},
		{"bfd-profiles section alone (native speaker refuses it; ironlb ignores it)", "bfd-profiles: [{name: f}]\n", false, true},

		// Communities.
		{"bad bgp-communities value", "bgp-communities: {a: '1:70000'}\n", false, false},
		{"three-part community", bgp + "[{communities: ['1:2:3']}]}\n", false, false},
		{"unknown community name", bgp + "[{communities: [nope]}]}\n", false, false},
		{"community repeated in one advertisement", bgp + "[{communities: ['1:2', '1:2']}]}\n", false, false},
		{"community name and its value", "bgp-communities: {a: '1:2'}\n" + bgp + "[{communities: [a, '1:2']}]}\n", true, true},
		{"community written two ways", bgp + "[{communities: ['007:8', '7:8']}]}\n", true, true},

		// Pools.
		{"walkthrough pool", l2 + "[172.18.255.200-172.18.255.250]}\n", true, true},
		{"missing pool name", "address-pools:\n- {protocol: layer2, addresses: [10.0.0.0/24]}\n", false, false},
		{"no addresses", "address-pools:\n- {name: p, protocol: layer2}\n", false, false},
		{"missing protocol", "address-pools:\n- {name: p, addresses: [10.0.0.0/24]}\n", false, false},
		{"unknown protocol", "address-pools:\n- {name: p, protocol: ospf, addresses: [10.0.0.0/24]}\n", false, false},
		{"bad CIDR", l2 + "[10.0.0.0/33]}\n", false, false},
		{"CIDR with host bits", l2 + "[10.0.0.7/24]}\n", true, true},
		{"range start after end", l2 + "[10.0.0.9-10.0.0.1]}\n", false, false},
		{"range with spaces", l2 + "['10.0.0.1 - 10.0.0.9']}\n", true, true},
		{"range of IPv4-mapped ends", l2 + "['::ffff:10.0.0.1-::ffff:10.0.0.9']}\n", true, true},
		{"range mixing families", l2 + "['10.0.0.1-fd00::1']}\n", true, false},
		{"IPv4-mapped CIDR", l2 + "['::ffff:10.0.0.0/120']}\n", true, false},
		{"duplicate pool name", l2 + "[10.0.0.0/24]}\n- {name: p, protocol: layer2, addresses: [10.0.1.0/24]}\n", false, false},
		{"overlapping pools", l2 + "[10.0.0.0/24]}\n- {name: q, protocol: layer2, addresses: [10.0.0.128/25]}\n", false, false},
		{"adjacent pools", l2 + "[10.0.0.0/25]}\n- {name: q, protocol: layer2, addresses: [10.0.0.128/25]}\n", true, true},
		{"every address (no Service is reachable there)", l2 + "[0.0.0.0/0]}\n", true, false},
		{"loopback pool", l2 + "[127.0.0.0/24]}\n", true, false},
		{"control character in a name", "address-pools:\n- {name: \"a\\nb\", protocol: layer2, addresses: [10.0.0.0/24]}\n", true, false},
		{"ipv6 bgp pool (native speaker refuses it; ironlb announces it)", "address-pools:\n- {name: p, protocol: bgp, addresses: ['fd00::/120']}\n", false, true},

		// Advertisements.
		{"advertisements in a layer2 pool", l2 + "[10.0.0.0/24], bgp-advertisements: [{}]}\n", false, false},
		{"aggregation-length above 32", bgp + "[{aggregation-length: 33}]}\n", false, false},
		{"aggregation-length-v6 above 128", bgp + "[{aggregation-length-v6: 129}]}\n", false, false},
		{"aggregation shorter than a prefix", bgp + "[{aggregation-length: 23}]}\n", false, false},
		{"aggregation to the pool's prefix", bgp + "[{aggregation-length: 24}]}\n", true, true},
		{"negative aggregation-length-v6 in an IPv4 pool", bgp + "[{aggregation-length-v6: -1}]}\n", true, false},
		{"identical advertisements", bgp + "[{localpref: 5}, {localpref: 5}]}\n", false, false},
		{"advertisements differing only as written", bgp + "[{}, {aggregation-length: 32}]}\n", true, true},
	}
}
