package config

import "testing"

func TestNodeSelectorMatches(t *testing.T) {
	worker := map[string]string{"kubernetes.io/hostname": "kind-worker", "rack": "a", "zone": "z1"}
	tests := []struct {
		name string
		sel  NodeSelector
		want bool
	}{
		{"empty selects all", NodeSelector{}, true},
		{"match-labels hit", NodeSelector{MatchLabels: map[string]string{"rack": "a", "zone": "z1"}}, true},
		{"match-labels wrong value", NodeSelector{MatchLabels: map[string]string{"rack": "b"}}, false},
		{"match-labels absent key", NodeSelector{MatchLabels: map[string]string{"gpu": ""}}, false},
		{"In hit", NodeSelector{MatchExpressions: []SelectorRequirement{{Key: "rack", Operator: OpIn, Values: []string{"b", "a"}}}}, true},
		{"In miss", NodeSelector{MatchExpressions: []SelectorRequirement{{Key: "rack", Operator: OpIn, Values: []string{"b"}}}}, false},
		{"In absent key", NodeSelector{MatchExpressions: []SelectorRequirement{{Key: "gpu", Operator: OpIn, Values: []string{"b"}}}}, false},
		{"NotIn hit", NodeSelector{MatchExpressions: []SelectorRequirement{{Key: "rack", Operator: OpNotIn, Values: []string{"b"}}}}, true},
		{"NotIn miss", NodeSelector{MatchExpressions: []SelectorRequirement{{Key: "rack", Operator: OpNotIn, Values: []string{"a"}}}}, false},
		{"NotIn absent key matches", NodeSelector{MatchExpressions: []SelectorRequirement{{Key: "gpu", Operator: OpNotIn, Values: []string{"a"}}}}, true},
		{"Exists", NodeSelector{MatchExpressions: []SelectorRequirement{{Key: "zone", Operator: OpExists}}}, true},
		{"Exists absent", NodeSelector{MatchExpressions: []SelectorRequirement{{Key: "gpu", Operator: OpExists}}}, false},
		{"DoesNotExist", NodeSelector{MatchExpressions: []SelectorRequirement{{Key: "gpu", Operator: OpDoesNotExist}}}, true},
		{"DoesNotExist present", NodeSelector{MatchExpressions: []SelectorRequirement{{Key: "zone", Operator: OpDoesNotExist}}}, false},
		{"labels and expressions all must hold", NodeSelector{
			MatchLabels:      map[string]string{"rack": "a"},
			MatchExpressions: []SelectorRequirement{{Key: "zone", Operator: OpIn, Values: []string{"z2"}}},
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sel.Matches(worker); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPeerMatchesNode(t *testing.T) {
	cfg, err := Parse([]byte(`
peers:
- peer-address: 10.0.0.1
  peer-asn: 1
  my-asn: 2
- peer-address: 10.0.0.2
  peer-asn: 1
  my-asn: 2
  node-selectors:
  - match-labels: {rack: a}
  - match-expressions: [{key: kubernetes.io/hostname, operator: In, values: [kind-worker3]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	all, some := cfg.Peers[0], cfg.Peers[1]
	tests := []struct {
		labels    map[string]string
		wantSome  bool
		wantAllOK bool
	}{
		{map[string]string{"rack": "a"}, true, true},
		{map[string]string{"kubernetes.io/hostname": "kind-worker3"}, true, true},
		{map[string]string{"kubernetes.io/hostname": "kind-worker2", "rack": "b"}, false, true},
		{nil, false, true},
	}
	for _, tc := range tests {
		if got := some.MatchesNode(tc.labels); got != tc.wantSome {
			t.Errorf("selective peer MatchesNode(%v) = %v, want %v", tc.labels, got, tc.wantSome)
		}
		if got := all.MatchesNode(tc.labels); got != tc.wantAllOK {
			t.Errorf("unrestricted peer MatchesNode(%v) = %v, want %v", tc.labels, got, tc.wantAllOK)
		}
	}
}

func TestValidateLabelKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true}, {"kubernetes.io/hostname", true}, {"node.kubernetes.io/exclude-from-external-load-balancers", true},
		{"A_b.c-D", true}, {"", false}, {"/a", false}, {"a/", false}, {"a/b/c", false}, {"_a", false}, {"a_", false},
		{"x/" + string(make([]byte, 0)), false}, {"Upper.io/a", false}, {"a b", false},
		{string(repeat('a', 63)), true}, {string(repeat('a', 64)), false},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			if err := validateLabelKey(tc.key); (err == nil) != tc.ok {
				t.Errorf("validateLabelKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
			}
		})
	}
}

func repeat(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}
