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
package layer2
