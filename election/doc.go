// Package election decides which node announces a LoadBalancer IP on layer 2.
//
// Every speaker runs the same pure function over the same inputs (the IP and
// the set of eligible nodes), so all speakers agree on the owner without
// talking to each other. The owner is the candidate whose
// sha256(node + "#" + ip) is the smallest when compared as a big-endian byte
// string: the node MetalLB v0.12 puts first after sorting the candidates by
// that hash (bytes.Compare, ascending). ironlb reaches the same answer with a
// single linear pass (highest-random-weight / rendezvous hashing) instead of
// a sort, so recomputing every Service after a membership change costs
// O(services × nodes) hashes and no allocation.
//
// Rendezvous hashing gives the two properties failover needs: when a node
// leaves, only the IPs it owned move (each to its own runner-up), and when a
// node joins, only the IPs it now wins move to it.
//
// The package imports nothing from Kubernetes: the speaker glue turns Nodes,
// EndpointSlices and memberlist state into [Node] values.
package election
