// Package ipam allocates addresses for LoadBalancer Services from configured
// pools, with the semantics of MetalLB v0.12's allocator: requested addresses,
// named pools, auto-assign: false pools, avoid-buggy-ips, and address sharing
// between Services that carry the same sharing key, use disjoint port/protocol
// pairs and have equal backend keys.
//
// Unlike MetalLB, which scans a pool address by address, the Allocator keeps
// explicit state whose size grows with what is allocated, never with the size
// of a pool: a map of addresses in use, and per pool and address family a
// B-tree of free blocks ordered by address. The lowest free address (MetalLB's
// predictable choice) is the first block's first address, found in O(log n);
// claiming or releasing an address splits or merges blocks in O(log n). Shared
// addresses are indexed by (sharing key, backend key), so finding the lowest
// address a Service may share looks only at addresses already carrying its key.
//
// The package is pure: it imports nothing from Kubernetes and takes and
// returns net/netip types.
package ipam
