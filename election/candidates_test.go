package election

import (
	"maps"
	"slices"
	"testing"
)

func TestCandidates(t *testing.T) {
	healthy := func(name string) Node { return Node{Name: name, Alive: true, HasReadyEndpoint: true} }
	tests := []struct {
		name         string
		nodes        []Node
		local        bool
		wantNames    []string
		wantExcluded map[string]string
	}{
		{
			name:         "no nodes",
			wantExcluded: map[string]string{},
		},
		{
			name:         "all healthy, sorted output",
			nodes:        []Node{healthy("c"), healthy("a"), healthy("b")},
			wantNames:    []string{"a", "b", "c"},
			wantExcluded: map[string]string{},
		},
		{
			name: "each exclusion reason",
			nodes: []Node{
				healthy("ok"),
				{Name: "dead", HasReadyEndpoint: true},
				{Name: "netdown", Alive: true, NetworkUnavailable: true, HasReadyEndpoint: true},
				{Name: "labelled", Alive: true, ExcludedByLabel: true, HasReadyEndpoint: true},
				{Name: "noendpoint", Alive: true},
			},
			wantNames: []string{"noendpoint", "ok"},
			wantExcluded: map[string]string{
				"dead":     ReasonSpeakerNotAlive,
				"netdown":  ReasonNetworkUnavailable,
				"labelled": ReasonExcludedByLabel,
			},
		},
		{
			name: "local policy needs a ready endpoint",
			nodes: []Node{
				healthy("ok"),
				{Name: "noendpoint", Alive: true},
			},
			local:        true,
			wantNames:    []string{"ok"},
			wantExcluded: map[string]string{"noendpoint": ReasonNoLocalEndpoint},
		},
		{
			name: "first failing check is the reason",
			nodes: []Node{
				{Name: "x", NetworkUnavailable: true, ExcludedByLabel: true},
			},
			local:        true,
			wantExcluded: map[string]string{"x": ReasonSpeakerNotAlive},
		},
		{
			name: "nobody eligible",
			nodes: []Node{
				{Name: "a", Alive: true, ExcludedByLabel: true},
				{Name: "b"},
			},
			wantExcluded: map[string]string{"a": ReasonExcludedByLabel, "b": ReasonSpeakerNotAlive},
		},
		{
			name:         "empty name and duplicates",
			nodes:        []Node{{Name: "", Alive: true}, healthy("a"), {Name: "a"}},
			wantNames:    []string{"a"},
			wantExcluded: map[string]string{"": ReasonEmptyName},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names, excluded := Candidates(tc.nodes, tc.local)
			if !slices.Equal(names, tc.wantNames) {
				t.Errorf("names = %q, want %q", names, tc.wantNames)
			}
			if !maps.Equal(excluded, tc.wantExcluded) {
				t.Errorf("excluded = %q, want %q", excluded, tc.wantExcluded)
			}
		})
	}
}
