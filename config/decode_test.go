package config

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestScalarsKeepText: string fields hold the scalar text as written, as MetalLB's yaml.v2
// decoding gives it; going through JSON turned `password: 0123` into "83".
func TestScalarsKeepText(t *testing.T) {
	const peerWith = "peers:\n- peer-address: 10.0.0.1\n  peer-asn: 64501\n  my-asn: 64500\n  "
	password := func(c *Config) string { return c.Peers[0].Password }
	tests := []struct {
		name string
		in   string
		get  func(*Config) string
		want string
	}{
		{"octal-looking password", peerWith + "password: 0123\n", password, "0123"},
		{"exponent password", peerWith + "password: 1e3\n", password, "1e3"},
		{"yes password", peerWith + "password: yes\n", password, "yes"},
		{"hex password", peerWith + "password: 0x1F\n", password, "0x1F"},
		{"underscored password", peerWith + "password: 1_000\n", password, "1_000"},
		{"float password", peerWith + "password: 1.50\n", password, "1.50"},
		{"infinity password", peerWith + "password: .inf\n", password, ".inf"},
		{"date password", peerWith + "password: 2001-12-14\n", password, "2001-12-14"},
		{"sexagesimal password", peerWith + "password: 1:20\n", password, "1:20"},
		{"tagged password", peerWith + "password: !!str 0123\n", password, "0123"},
		{"quoted password", peerWith + "password: '0123'\n", password, "0123"},
		{"null password is unset", peerWith + "password: ~\n", password, ""},
		{"hex pool name", "address-pools:\n- {name: 0x10, protocol: layer2, addresses: [10.0.0.0/24]}\n",
			func(c *Config) string { return c.Pools[0].Name }, "0x10"},
		{"boolean pool name", "address-pools:\n- {name: no, protocol: layer2, addresses: [10.0.0.0/24]}\n",
			func(c *Config) string { return c.Pools[0].Name }, "no"},
		{"numeric label value", peerWith + "node-selectors: [{match-labels: {rack: 01}}]\n",
			func(c *Config) string { return c.Peers[0].NodeSelectors[0].MatchLabels["rack"] }, "01"},
		{"numeric expression value", peerWith + "node-selectors: [{match-expressions: [{key: rack, operator: In, values: [007, 1e3]}]}]\n",
			func(c *Config) string {
				return strings.Join(c.Peers[0].NodeSelectors[0].MatchExpressions[0].Values, ",")
			}, "007,1e3"},
		{"numeric label key", peerWith + "node-selectors: [{match-labels: {0x1: a}}]\n",
			func(c *Config) string { return fmt.Sprint(c.Peers[0].NodeSelectors[0].MatchLabels) }, "map[0x1:a]"},
		{"numeric community name", "bgp-communities: {0123: '1:2'}\naddress-pools:\n- {name: b, protocol: bgp, addresses: [10.0.0.0/24], bgp-advertisements: [{communities: ['0123']}]}\n",
			func(c *Config) string { return c.Pools[0].BGPAdvertisements[0].Communities[0].String() }, "1:2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := tc.get(cfg); got != tc.want {
				t.Errorf("got %q, want %q as written", got, tc.want)
			}
		})
	}
}

// TestScalarNumbers: numbers and booleans are read as MetalLB's yaml.v2 reads them (YAML
// 1.1), and are still validated.
func TestScalarNumbers(t *testing.T) {
	const pool = "address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  "
	tests := []struct {
		name    string
		in      string
		get     func(*Config) any
		want    any
		wantErr string
		kind    error
	}{
		{name: "hex asn", in: "peers:\n- {peer-address: 10.0.0.1, peer-asn: 0x10, my-asn: 1}\n", get: func(c *Config) any { return c.Peers[0].ASN }, want: uint32(16)},
		{name: "octal asn, as yaml.v2", in: "peers:\n- {peer-address: 10.0.0.1, peer-asn: 0123, my-asn: 1}\n", get: func(c *Config) any { return c.Peers[0].ASN }, want: uint32(83)},
		{name: "underscored port", in: "peers:\n- {peer-address: 10.0.0.1, peer-asn: 2, my-asn: 1, peer-port: 1_179}\n", get: func(c *Config) any { return c.Peers[0].Port }, want: uint16(1179)},
		{name: "exponent localpref", in: pool + "bgp-advertisements: [{localpref: 1e2}]\n", get: func(c *Config) any { return c.Pools[0].BGPAdvertisements[0].LocalPref }, want: uint32(100)},
		{name: "whole float length", in: pool + "bgp-advertisements: [{aggregation-length: 24.0}]\n", get: func(c *Config) any { return c.Pools[0].BGPAdvertisements[0].AggregationLength }, want: 24},
		{name: "tagged int", in: "peers:\n- {peer-address: 10.0.0.1, peer-asn: !!int 7, my-asn: 1}\n", get: func(c *Config) any { return c.Peers[0].ASN }, want: uint32(7)},
		{name: "yes", in: pool + "auto-assign: Yes\n", get: func(c *Config) any { return c.Pools[0].AutoAssign }, want: true},
		{name: "off", in: pool + "auto-assign: off\n", get: func(c *Config) any { return c.Pools[0].AutoAssign }, want: false},
		{name: "null bool keeps the default", in: pool + "auto-assign: ~\n", get: func(c *Config) any { return c.Pools[0].AutoAssign }, want: true},

		{name: "quoted number is text", in: "peers:\n- {peer-address: 10.0.0.1, peer-asn: '64500', my-asn: 1}\n", kind: ErrType, wantErr: `peers[0]: peer-asn "64500": must be an integer from 0 to 4294967295`},
		{name: "quoted bool is text", in: pool + "auto-assign: 'false'\n", kind: ErrType, wantErr: `auto-assign "false": must be true or false`},
		{name: "fractional number", in: pool + "bgp-advertisements: [{localpref: 1.5}]\n", kind: ErrType, wantErr: "localpref 1.5: must be an integer"},
		{name: "infinity", in: pool + "bgp-advertisements: [{localpref: .inf}]\n", kind: ErrType, wantErr: "localpref .inf: must be an integer"},
		{name: "too big", in: pool + "bgp-advertisements: [{localpref: 0x1_0000_0000}]\n", kind: ErrType, wantErr: "localpref 0x1_0000_0000: must be an integer from 0 to 4294967295"},
		{name: "underscores only", in: pool + "bgp-advertisements: [{localpref: _}]\n", kind: ErrType, wantErr: `localpref "_": must be an integer`},
		{name: "date", in: pool + "bgp-advertisements: [{localpref: 2001-12-14}]\n", kind: ErrType, wantErr: `localpref "2001-12-14": must be an integer`},
		{name: "list for a string", in: "peers:\n- {peer-address: [10.0.0.1]}\n", kind: ErrType, wantErr: "peers[0]: peer-address (a list): must be a string"},
		{name: "duration stays text", in: "peers:\n- {peer-address: 10.0.0.1, peer-asn: 2, my-asn: 1, hold-time: 90}\n", kind: ErrInvalid, wantErr: `hold-time "90": not a duration`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, tc.kind) {
					t.Fatalf("Parse error = %v, want %v containing %q", err, tc.kind, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := tc.get(cfg); got != tc.want {
				t.Errorf("got %v (%T), want %v (%T)", got, got, tc.want, tc.want)
			}
		})
	}
}

// TestYAMLStructure: anchors, merge keys and duplicate keys, decoded strictly.
func TestYAMLStructure(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		check   func(*Config) string // "" when fine
		wantErr string
		kind    error
	}{
		{
			name: "anchored selector shared by peers",
			in: `peers:
- {peer-address: 10.0.0.1, peer-asn: 2, my-asn: 1, node-selectors: &sel [{match-labels: {rack: a}}]}
- {peer-address: 10.0.0.2, peer-asn: 2, my-asn: 1, node-selectors: *sel}
`,
			check: func(c *Config) string {
				if c.Peers[1].NodeSelectors[0].MatchLabels["rack"] != "a" {
					return fmt.Sprint(c.Peers[1].NodeSelectors)
				}
				return ""
			},
		},
		{
			name: "merge key, written keys win",
			in: `peers:
- &base {peer-address: 10.0.0.1, peer-asn: 2, my-asn: 1, peer-port: 1179}
- <<: *base
  peer-address: 10.0.0.2
`,
			check: func(c *Config) string {
				if p := c.Peers[1]; p.Addr != addr("10.0.0.2") || p.Port != 1179 || p.ASN != 2 {
					return p.String()
				}
				return ""
			},
		},
		{
			name: "merge of a list of mappings, the first wins",
			in: `peers:
- &a {peer-address: 10.0.0.1, peer-asn: 2, my-asn: 1}
- &b {peer-address: 10.0.0.9, peer-asn: 3, my-asn: 1, peer-port: 1179}
- <<: [*b, *a]
  peer-address: 10.0.0.2
`,
			check: func(c *Config) string {
				if p := c.Peers[2]; p.ASN != 3 || p.Port != 1179 {
					return p.String()
				}
				return ""
			},
		},
		{name: "merge of a scalar", in: "peers:\n- <<: 1\n", kind: ErrType, wantErr: "a merge key (<<) takes a mapping"},
		{name: "quoted << is a key", in: "peers:\n- {'<<': 1}\n", kind: ErrUnknownField, wantErr: `unknown field "<<"`},
		{name: "duplicate key reports lines", in: "address-pools:\n- name: a\n  protocol: layer2\n  name: b\n", kind: ErrSyntax,
			wantErr: `address-pools[0] "a": key "name" already set (line 2, then again at line 4)`},
		{name: "duplicate label", in: "peers:\n- node-selectors: [{match-labels: {a: x, a: y}}]\n", kind: ErrSyntax, wantErr: `peers[0]: node-selectors[0]: match-labels: key "a" already set`},
		{name: "duplicate community name", in: "bgp-communities:\n  a: '1:1'\n  a: '1:2'\n", kind: ErrSyntax, wantErr: `bgp-communities: key "a" already set`},
		{name: "mapping as a key", in: "{[a]: b}\n", kind: ErrType, wantErr: "a mapping key must be a plain value"},
		{name: "unknown anchor", in: "peers: *nope\n", kind: ErrSyntax, wantErr: "could not parse YAML"},
		{name: "alias inside its own anchor", in: "peers: &a [*a]\n", kind: ErrSyntax, wantErr: "anchor &a contains an alias to itself"},
		{name: "mapping alias inside itself", in: "peers:\n- &a {node-selectors: [*a]}\n", kind: ErrSyntax, wantErr: "anchor &a contains an alias to itself"},
		{name: "scalar document", in: "hello\n", kind: ErrType, wantErr: "the document must be a mapping"},
		{name: "null document", in: "~\n", check: func(c *Config) string { return "" }},
		{name: "second document ignored, as yaml.v2", in: "peers: []\n---\nbogus: 1\n", check: func(c *Config) string { return "" }},
		{name: "huge value is cut in the error", in: "address-pools:\n- name: '" + strings.Repeat("x", 5000) + "'\n", kind: ErrMissing, wantErr: "…(4800 more bytes)\": addresses: missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, tc.kind) {
					t.Fatalf("Parse error = %v, want %v containing %q", err, tc.kind, tc.wantErr)
				}
				if len(err.Error()) > 1000 {
					t.Errorf("error is %d bytes long", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if msg := tc.check(cfg); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// TestNodeBound: the bound computed from the characters holds for the constructs that pack
// the most nodes into the fewest characters.
func TestNodeBound(t *testing.T) {
	for _, doc := range []string{
		"a", "{a,b,c,d}", "[? a, ? b]", "[a: b, c: d]", "- - - -\n", "-\n-\n-\n", "? a\n? b\n",
		"a:\n  b:\n    c:\n", "{? , ? }", "[[[[]]]]", "[{}, {}, {}]", "a: &x [b]\nc: *x\n",
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		e := expansion{}
		if got, bound := e.written(n.Content[0]).nodes, nodeBound([]byte(doc)); got > int64(bound) {
			t.Errorf("%q has %d nodes, more than its bound %d", doc, got, bound)
		}
	}
}

// allocated returns the bytes f allocates, all of them, freed or not: an upper bound of
// the memory it needs at any moment, whatever the garbage collector does.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// aliasBomb is issue 9's document: a 100 KB string anchored once and aliased 10,000 times
// (130 KB written, 1 GB expanded).
func aliasBomb() string {
	return "address-pools:\n- name: &a \"" + strings.Repeat("A", 100_000) + "\"\n  protocol: layer2\n  addresses: [" +
		strings.Repeat("*a, ", 9_999) + "*a]\n"
}

// laughs nests ten aliases per level, nine levels deep: 10^9 nodes from 300 bytes.
func laughs() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	return b.String()
}

func TestExpansionLimits(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantErr   string // "" when accepted
		maxAllocs uint64
	}{
		{"alias bomb", aliasBomb(), "document expands, through its YAML aliases, to more than 1048576 bytes of values", 16 << 20},
		{"billion laughs", laughs(), "document expands, through its YAML aliases, to more than 16384 nodes", 1 << 20},
		{"bomb in a manifest", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: &n \"" + strings.Repeat("n", 100_000) + "\", labels: {" +
			strings.Repeat("a: *n, ", 1) + "}}\ndata: {x: [" + strings.Repeat("*n, ", 9_999) + "*n]}\n", "document expands", 16 << 20},
		{"modest reuse is fine", strings.Repeat("# padding\n", 1) + "peers:\n" + func() string {
			var b strings.Builder
			b.WriteString("- {peer-address: 10.0.0.0, peer-asn: 2, my-asn: 1, node-selectors: &sel [{match-labels: {a: b, c: d}, match-expressions: [{key: e, operator: In, values: [f, g, h]}]}]}\n")
			for i := 1; i < 200; i++ {
				fmt.Fprintf(&b, "- {peer-address: 10.0.%d.%d, peer-asn: 2, my-asn: 1, node-selectors: *sel}\n", i/256, i%256)
			}
			return b.String()
		}(), "", 16 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = ParseConfigMap([]byte(tc.in), "config") })
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrTooLarge)):
				t.Fatalf("Parse error = %v, want ErrTooLarge containing %q", err, tc.wantErr)
			}
			if n > tc.maxAllocs {
				t.Errorf("parsing %d bytes allocated %d bytes, want at most %d", len(tc.in), n, tc.maxAllocs)
			}
		})
	}
}

// adversarial are documents of up to 1 MiB (a ConfigMap's limit) built to make the YAML
// parser or the validation work hard: some as dense as the node bound lets through (the
// parser then builds its largest trees), some past it (refused before parsing).
func adversarial() map[string]string {
	const size = 1 << 20
	starters := func(s string) int { return (nodeBound([]byte(s)) - 1) / 3 }
	// dense repeats unit for as long as the node bound lets the document through.
	dense := func(head, unit, tail string) string {
		n := ((maxNodes-1)/3 - starters(head+tail)) / max(starters(unit), 1)
		n = min(n, (size-len(head)-len(tail))/len(unit))
		return head + strings.Repeat(unit, n) + tail
	}
	// full repeats unit up to 1 MiB.
	full := func(head, unit, tail string) string {
		return head + strings.Repeat(unit, (size-len(head)-len(tail))/len(unit)) + tail
	}
	// lines adds lines for as long as the document stays within 1 MiB and the node bound.
	lines := func(head string, line func(i int) string) string {
		var b strings.Builder
		b.WriteString(head)
		bound := nodeBound([]byte(head))
		for i := 0; ; i++ {
			l := line(i)
			if b.Len()+len(l) > size || bound+3*starters(l) > maxNodes {
				return b.String()
			}
			b.WriteString(l)
			bound += 3 * starters(l)
		}
	}
	return map[string]string{
		"flow list of zeros":        dense("address-pools: [{name: p, protocol: layer2, addresses: [", "0,", "0]}]"),
		"flow mapping of nulls":     dense("bgp-communities: {", "a,", "a}"),
		"block list of nulls":       dense("address-pools:\n", "-\n", ""),
		"empty mappings":            dense("address-pools: [", "{},", "{}]"),
		"1 MiB flow list of zeros":  full("address-pools: [{name: p, protocol: layer2, addresses: [", "0,", "0]}]"),
		"1 MiB deep nesting":        full("", "[", ""),
		"10k deep nesting":          strings.Repeat("[", 9_999) + strings.Repeat("]", 9_999),
		"one huge string":           full("address-pools: [{name: '", "a", "'}]"),
		"many comments":             full("", "# a comment\n", "peers: []\n"),
		"aliases just under limit":  "a: &a [" + strings.Repeat("x,", 30_000) + "x]\npeers: [*a, *a]\n",
		"manifest around 1 MiB":     full("apiVersion: v1\nkind: ConfigMap\ndata:\n  config: |\n    address-pools:\n", "    - {name: p, protocol: layer2, addresses: [10.0.0.0/24]}\n", ""),
		"manifest of dense content": dense("apiVersion: v1\nkind: ConfigMap\ndata:\n  config: \"address-pools: [{name: p, protocol: layer2, addresses: [", "0,", "0]}]\"\n"),
		// Many valid entries: the overlap, name and duplicate checks must not be quadratic.
		"distinct keys": lines("bgp-communities:\n", func(i int) string { return fmt.Sprintf("  k%d: '1:2'\n", i) }),
		"many addresses": lines("address-pools:\n- name: p\n  protocol: layer2\n  addresses:\n",
			func(i int) string { return fmt.Sprintf("  - 10.%d.%d.%d/32\n", i>>16&255, i>>8&255, i&255) }),
		"many pools": lines("address-pools:\n",
			func(i int) string {
				return fmt.Sprintf("- name: p%d\n  protocol: layer2\n  addresses: [10.%d.%d.0/24]\n", i, i>>8&255, i&255)
			}),
		"many peers": lines("peers:\n",
			func(i int) string {
				return fmt.Sprintf("- peer-address: 10.%d.%d.1\n  peer-asn: 2\n  my-asn: 1\n", i>>8&255, i&255)
			}),
		"wide ipv6 ranges": lines("address-pools:\n- name: p\n  protocol: bgp\n  addresses:\n",
			func(i int) string {
				return fmt.Sprintf("  - 2001:%x::1 - 2001:%x:ffff:ffff:ffff:ffff:ffff:fffe\n", i, i)
			}),
	}
}

// TestBoundedWork: any document of about 1 MiB is parsed or refused with less than
// 128 MiB allocated in all (issue 9: < 128 MiB and < 2 s; BenchmarkParseAdversarial
// shows the time).
func TestBoundedWork(t *testing.T) {
	for name, doc := range adversarial() {
		t.Run(name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = ParseConfigMap([]byte(doc), "config") })
			t.Logf("%s: %d bytes, node bound %d: %.1f MiB allocated; %v", name, len(doc), nodeBound([]byte(doc)), float64(n)/(1<<20), shorten(fmt.Sprint(err)))
			if n > 128<<20 {
				t.Errorf("allocated %.1f MiB, want < 128 MiB", float64(n)/(1<<20))
			}
			var e *Error
			if err != nil && !errors.As(err, &e) {
				t.Errorf("error %T is not a *config.Error", err)
			}
		})
	}
}

func BenchmarkParseAdversarial(b *testing.B) {
	for name, doc := range adversarial() {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ParseConfigMap([]byte(doc), "config")
			}
		})
	}
	b.Run("alias bomb", func(b *testing.B) {
		doc := []byte(aliasBomb())
		b.ReportAllocs()
		for b.Loop() {
			_, _ = Parse(doc)
		}
	})
}
