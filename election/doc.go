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
// The election is per Service, not per address: the hash key is the Service's first ingress
// IP (the first address of .status.loadBalancer.ingress as written), and the winner announces
// all of the Service's addresses ([ServiceOwner]). A dual-stack Service is therefore answered
// from one node on both families, exactly as MetalLB does; for a single-stack Service the key
// is its only address, so nothing changes from the per-IP pick. [Owner], [Explain] and
// [Reelect] take that key as their ip argument.
//
// Rendezvous hashing gives the two properties failover needs: when a node
// leaves, only the IPs it owned move (each to its own runner-up), and when a
// node joins, only the IPs it now wins move to it.
//
// The package imports nothing from Kubernetes: the speaker glue turns Nodes,
// EndpointSlices and memberlist state into [Node] values.
package election
