package election

import "slices"

// Node is what the election needs to know about one Kubernetes node.
type Node struct {
	Name string
	// Alive: the node's speaker is an alive member of memberlist.
	Alive bool
	// NetworkUnavailable: the Node has condition NetworkUnavailable=True.
	NetworkUnavailable bool
	// ExcludedByLabel: the Node carries
	// node.kubernetes.io/exclude-from-external-load-balancers and the
	// speakers honour it (the caller leaves it false under
	// --ignore-exclude-lb).
	ExcludedByLabel bool
	// HasReadyEndpoint: an endpoint of the Service that is ready, or still
	// serving while it terminates, runs on this node (only consulted for
	// externalTrafficPolicy: Local).
	HasReadyEndpoint bool
}

// Reasons a node is left out, as reported in the excluded map of
// [Candidates]. The first reason that applies wins, in this order.
const (
	ReasonEmptyName          = "node has no name"
	ReasonSpeakerNotAlive    = "speaker is not an alive memberlist member"
	ReasonNetworkUnavailable = "node has condition NetworkUnavailable"
	ReasonExcludedByLabel    = "node is labelled node.kubernetes.io/exclude-from-external-load-balancers"
	ReasonNoLocalEndpoint    = "externalTrafficPolicy is Local and the node has no ready or serving endpoint"
)

// Candidates returns the names of the nodes eligible to announce a Service
// (sorted, so logs and status output are stable) and, for every node left
// out, why. With localTrafficPolicy (externalTrafficPolicy: Local) only nodes
// with a ready endpoint of the Service are eligible. An empty names slice
// means nobody announces; excluded then says why for each node. O(n log n).
func Candidates(nodes []Node, localTrafficPolicy bool) (names []string, excluded map[string]string) {
	excluded = make(map[string]string)
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		reason := ""
		switch {
		case n.Name == "":
			reason = ReasonEmptyName
		case seen[n.Name]:
			// Keep the first verdict for the name; a duplicate entry is a
			// caller bug, and letting it override would hide the real reason.
			continue
		case !n.Alive:
			reason = ReasonSpeakerNotAlive
		case n.NetworkUnavailable:
			reason = ReasonNetworkUnavailable
		case n.ExcludedByLabel:
			reason = ReasonExcludedByLabel
		case localTrafficPolicy && !n.HasReadyEndpoint:
			reason = ReasonNoLocalEndpoint
		}
		seen[n.Name] = true
		if reason != "" {
			excluded[n.Name] = reason
			continue
		}
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return names, excluded
}
