// Package bgp announces Service IPs to BGP routers.
//
// A Speaker embeds a GoBGP server and is driven by two desired-state calls:
// SetPeers gives the routers to peer with and SetAdvertisements the prefixes
// to announce to all of them. Each call computes the difference with what is
// in effect and changes only that, so a configuration reload never resets a
// session whose parameters did not change and never re-sends unchanged
// routes. Routes carry the speaker's own session address as next hop, IPv4
// prefixes go to IPv4 peers and IPv6 prefixes to IPv6 peers (MP-BGP), and
// LOCAL_PREF is only sent on iBGP sessions, and always there (0 when the
// advertisement sets none), as MetalLB's native speaker does.
//
// Build turns Service IPs and a pool's bgp-advertisements into the
// Advertisements to set, applying aggregation lengths, local preference and
// communities. The package knows nothing about Kubernetes: the speaker's
// reconcile loop computes the desired sets and feeds them in.
package bgp
