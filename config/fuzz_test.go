package config

import (
	"bytes"
	"cmp"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var fuzzSeeds = []string{
	"",
	"address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 172.18.255.200-172.18.255.250\n",
	"address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/25, 'fd00::/120']}\n- {name: b, protocol: layer2, addresses: [10.0.0.128-10.0.0.255]}\n",
	"address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/24]}\n- {name: b, protocol: layer2, addresses: [10.0.0.9-10.0.0.12]}\n",
	"bgp-communities: {ne: '65535:65281'}\naddress-pools:\n- name: b\n  protocol: bgp\n  addresses: [10.0.0.1-10.0.0.10, '2001:db8::/64']\n  bgp-advertisements:\n  - {aggregation-length: 30, aggregation-length-v6: 64, localpref: 5, communities: [ne, '1:2', ne]}\n",
	"peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, hold-time: 3s, keepalive-time: 1s, router-id: 1.1.1.1, source-address: 10.0.0.2, bfd-profile: f}\nbfd-profiles:\n- {name: f, receive-interval: 10, minimum-ttl: 1}\n",
	"peers:\n- peer-address: 'fd00::1'\n  peer-asn: 1\n  my-asn: 1\n  node-selectors:\n  - match-labels: {a: b}\n    match-expressions: [{key: c, operator: NotIn, values: [d]}]\n",
	"address-pools:\n- name: p\n  protocol: bgp\n  addresses: ['::/0']\n  bgp-advertisements: [{aggregation-length-v6: 0}]\n",
	"address-pools: [{name: x, Protocol: bgp}]",
	"peers: [{hold-time: 2s}]",
	"- 1\n- 2\n",
	"address-pools:\n- name: a\n  name: b\n",
	"peers:\n- &p {peer-address: 10.0.0.1, peer-asn: 0x10, my-asn: 0123, password: 0123}\n- <<: *p\n  peer-port: 1_179\n",
	"a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n",
	"peers: &a [*a]\n",
	"{a,b,c}", "[:,:,:]", "- - - a\n", "? a\n: b\n", "[a: b, c: d]", "a:\n  b:\n    c:\n",
	"address-pools:\n- {name: \"a\\tb\", protocol: layer2, addresses: ['0.0.0.0/0', 127.0.0.1/32]}\n",
	"address-pools:\n- name: b\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements: [{communities: ['1:2', '1:2']}, {}, {}]\n",
}

// allocBudget is what Parse may allocate for a document of n bytes: the YAML tree costs
// up to about 450 bytes per input byte for the densest documents, and the node bounds cap
// the total below 128 MiB (TestBoundedWork).
func allocBudget(n int) uint64 { return 4<<20 + 600*uint64(n) }

// FuzzParse checks that Parse never panics and that whatever it accepts satisfies the
// guarantees the rest of ironlb relies on.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var cfg *Config
		var err error
		// The work is bounded by the input: what Parse allocates (an upper bound of the
		// memory it holds, and of its time, which is linear in it) stays within budget.
		if n := allocated(func() { cfg, err = Parse(data) }); n > allocBudget(len(data)) {
			t.Fatalf("Parse of %d bytes allocated %d bytes, budget %d", len(data), n, allocBudget(len(data)))
		}
		// nodeBound really bounds the nodes the parser builds.
		var doc yaml.Node
		if len(data) <= MaxDocumentSize && yaml.Unmarshal(data, &doc) == nil && len(doc.Content) > 0 {
			e := expansion{}
			if n := e.written(doc.Content[0]).nodes; n > int64(nodeBound(data)) {
				t.Fatalf("document has %d nodes, more than its bound %d", n, nodeBound(data))
			}
		}
		// Expansion limits only ever refuse documents with aliases.
		if errors.Is(err, ErrTooLarge) && strings.Contains(err.Error(), "expands") && !bytes.Contains(data, []byte("*")) {
			t.Fatalf("document without aliases refused as expanding: %v", err)
		}
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned both a config and error %v", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		again, err := Parse(data)
		if err != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("re-parse differs: %v\n%s\n%s", err, dump(cfg), dump(again))
		}
		checkInvariants(t, cfg)
	})
}

func checkInvariants(t *testing.T, cfg *Config) {
	t.Helper()
	if cfg.BFDProfiles == nil {
		t.Fatal("BFDProfiles is nil")
	}
	names := map[string]bool{}
	type placed struct{ pool, idx int }
	var all []placed
	for i, p := range cfg.Pools {
		if p.Name == "" || names[p.Name] {
			t.Fatalf("pool %d: empty or duplicate name %q", i, p.Name)
		}
		names[p.Name] = true
		if len(p.Ranges) == 0 {
			t.Fatalf("pool %q has no ranges", p.Name)
		}
		var cidrs = p.CIDRs[:0:0]
		for k, r := range p.Ranges {
			if !r.IsValid() || r.From().Is4In6() || r.From().Zone() != "" {
				t.Fatalf("pool %q range %d %v invalid", p.Name, k, r)
			}
			cidrs = append(cidrs, r.Prefixes()...)
			for _, o := range all {
				if cfg.Pools[o.pool].Ranges[o.idx].Overlaps(r) {
					t.Fatalf("pool %q range %v overlaps pool %q range %v", p.Name, r, cfg.Pools[o.pool].Name, cfg.Pools[o.pool].Ranges[o.idx])
				}
			}
			all = append(all, placed{i, k})
			if !p.Contains(r.From()) || !p.Contains(r.To()) || cfg.PoolFor(r.To()) != p {
				t.Fatalf("pool %q does not contain its own range %v", p.Name, r)
			}
		}
		if !slices.Equal(cidrs, p.CIDRs) {
			t.Fatalf("pool %q CIDRs %v are not its ranges' prefixes %v", p.Name, p.CIDRs, cidrs)
		}
		if cfg.PoolByName(p.Name) != p {
			t.Fatalf("PoolByName(%q) is not the pool", p.Name)
		}
		switch p.Protocol {
		case Layer2:
			if p.BGPAdvertisements != nil {
				t.Fatalf("layer2 pool %q has advertisements", p.Name)
			}
		case BGP:
			if len(p.BGPAdvertisements) == 0 {
				t.Fatalf("bgp pool %q has no advertisement", p.Name)
			}
			for _, ad := range p.BGPAdvertisements {
				if ad.AggregationLength < 0 || ad.AggregationLength > 32 || ad.AggregationLengthV6 < 0 || ad.AggregationLengthV6 > 128 {
					t.Fatalf("pool %q: aggregation lengths out of range: %+v", p.Name, ad)
				}
				for _, r := range p.Ranges {
					agg := ad.AggregationLength
					if r.From().Is6() {
						agg = ad.AggregationLengthV6
					}
					if shortest := shortestPrefix(r.Prefixes()); agg < shortest {
						t.Fatalf("pool %q: aggregation /%d shorter than range %v's widest prefix /%d", p.Name, agg, r, shortest)
					}
				}
				if !slices.IsSortedFunc(ad.Communities, func(a, b Community) int { return cmp.Compare(a.Uint32(), b.Uint32()) }) ||
					len(slices.Compact(slices.Clone(ad.Communities))) != len(ad.Communities) {
					t.Fatalf("pool %q: communities not sorted and unique: %v", p.Name, ad.Communities)
				}
			}
		default:
			t.Fatalf("pool %q: protocol %q", p.Name, p.Protocol)
		}
	}
	for i, p := range cfg.Peers {
		if p.MyASN == 0 || p.ASN == 0 || !p.Addr.IsValid() || p.Port == 0 {
			t.Fatalf("peer %d incomplete: %+v", i, p)
		}
		if p.HoldTime < 3*time.Second || p.HoldTime%time.Second != 0 || p.KeepaliveTime <= 0 || p.KeepaliveTime > p.HoldTime {
			t.Fatalf("peer %d timers: hold %v keepalive %v", i, p.HoldTime, p.KeepaliveTime)
		}
		if p.RouterID.IsValid() && !p.RouterID.Is4() {
			t.Fatalf("peer %d router id %v", i, p.RouterID)
		}
		if p.BFDProfile != "" {
			t.Fatalf("peer %d has BFD profile %q, which Parse refuses", i, p.BFDProfile)
		}
		for j := range i {
			if reflect.DeepEqual(cfg.Peers[j], p) || peerKey(cfg.Peers[j]) == peerKey(p) {
				t.Fatalf("peers %d and %d are the same session", j, i)
			}
		}
	}
	for name, b := range cfg.BFDProfiles {
		if b.Name != name || b.ReceiveInterval < 10 || b.TransmitInterval > 60000 || b.DetectMultiplier < 2 || b.MinimumTTL == 0 || b.MinimumTTL > 254 {
			t.Fatalf("BFD profile %q out of range: %+v", name, b)
		}
	}
}
