// Package layer2 announces LoadBalancer IPs on the local link: it answers ARP
// requests (IPv4) and Neighbor Solicitations (IPv6) for the addresses this
// node currently owns, announces a takeover at once with gratuitous ARP and
// unsolicited Neighbor Advertisements (repeated on a short schedule for
// clients that missed the first one), and watches the link for another MAC
// claiming an owned address (split brain).
//
// The package knows nothing about Kubernetes: the caller decides which IPs
// this node owns and passes the whole desired set to [Announcer.SetOwned].
// Ownership checks and sends happen under one lock, so once SetOwned or
// [Announcer.Stop] returns, no reply or gratuitous packet is sent any more for
// an address that was withdrawn.
//
// As MetalLB does, the owner answers on every interface it serves. Per
// interface it uses an ARP packet socket (github.com/mdlayher/arp) and an
// ndp socket bound to the link-local address (github.com/mdlayher/ndp), which
// joins the solicited-node group of every owned IPv6 address. Two additions
// make IPv6 behave like an address the kernel owns: advertisements are sent
// with the target itself as source (a raw socket with IPV6_FREEBIND; strict
// tools such as ndisc6 ignore answers from another source), and unicast
// solicitations — which clients send to confirm a stale entry, and which the
// kernel drops because the address is not configured — are read from a
// packet socket and answered, so clients' entries do not fail.
//
// # Hostile or broken input
//
// A frame that does not parse is skipped at once (only errors of the socket
// itself make a reader pause), so a flood of malformed ARP frames does not
// hold back real requests. A claim by another MAC on an owned address costs
// O(1) whatever the number of MACs: it is counted, and reported (log and
// OnDuplicate) at most every 10 s per address.
//
// # Split brain ([Options.ResolveConflicts])
//
// Two nodes that cannot hear each other's membership traffic may both own an
// address. Each sees the other's gratuitous announcements and decides alone,
// with the same rule: [ConflictWinner], the lower SHA-256 of (address, MAC),
// keeps it. The winner announces again at once, so that the loser hears it
// too; the loser stops answering for the address, probes every second (ARP
// probe from 0.0.0.0, or a Neighbor Solicitation) whether the winner still
// answers, and takes the address back when the winner has been silent for
// 3.5 s, or at once on [Announcer.Reannounce] (the speaker calls it when a
// member rejoins, which ends the split; for 2 s after it nothing is yielded,
// since the two sides learn of each other a moment apart). A host on the link that is not an
// ironlb speaker and answers for the address takes part in the same way: if
// it wins the tie-break, the speaker yields while it answers (it would win
// the clients' caches anyway). The speaker lets layer2 yield only while it
// misses a speaker in memberlist ([Options.MayYield]): when it sees them all,
// a claim is a moment of overlap the election settles, and yielding would
// leave the address dark until the yield times out. When it starts to miss
// one it calls [Announcer.Assert], so that the other side of a split hears
// its claims even after its own takeover announcements are over.
package layer2
