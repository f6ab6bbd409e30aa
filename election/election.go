package election

import (
	"bytes"
	"crypto/sha256"
	"net/netip"
	"slices"
)

// Owner returns the candidate that announces ip, or "" when there are no
// candidates. The order of candidates does not matter; duplicates are
// harmless. Cost: one sha256 per candidate, O(len(candidates)), no sorting
// and no heap allocation.
func Owner(ip netip.Addr, candidates []string) string {
	if len(candidates) == 0 {
		return ""
	}
	var suffix [64]byte // "#" + longest IPv6 text form (with 4in6 tail) fits
	tail := appendSuffix(suffix[:0], ip)

	var (
		best     string
		bestHash [sha256.Size]byte
		buf      [320]byte // a node name is at most 253 bytes (DNS subdomain)
	)
	for i, node := range candidates {
		h := nodeHash(buf[:0], node, tail)
		if i == 0 || bytes.Compare(h[:], bestHash[:]) < 0 {
			best, bestHash = node, h
		}
	}
	return best
}

// ServiceOwner returns the candidate that announces every address of one Service on layer 2,
// or "" when there are no candidates or no addresses. ingress lists the Service's addresses in
// the order of its .status.loadBalancer.ingress as written (not sorted): the owner is
// Owner(ingress[0], candidates), MetalLB's rule, so both addresses of a dual-stack Service are
// answered from the same node, and a single-stack Service gets exactly the per-IP pick. Cost:
// that of one [Owner] call.
func ServiceOwner(ingress []netip.Addr, candidates []string) string {
	if len(ingress) == 0 {
		return ""
	}
	return Owner(ingress[0], candidates)
}

// Ranked is one candidate with the hash that ranks it: the smaller the hash
// (compared as bytes), the stronger the claim on the IP.
type Ranked struct {
	Node string
	Hash [32]byte
}

// Explain returns every candidate with its hash, winner first and the
// runner-ups in the order they would take over. It is meant for the status
// command ("who announces and who is next"), not for the hot path: it sorts
// and allocates.
func Explain(ip netip.Addr, candidates []string) []Ranked {
	tail := appendSuffix(nil, ip)
	out := make([]Ranked, 0, len(candidates))
	var buf [320]byte
	for _, node := range candidates {
		out = append(out, Ranked{Node: node, Hash: nodeHash(buf[:0], node, tail)})
	}
	slices.SortStableFunc(out, func(a, b Ranked) int {
		if c := bytes.Compare(a.Hash[:], b.Hash[:]); c != 0 {
			return c
		}
		return cmpString(a.Node, b.Node)
	})
	return out
}

// appendSuffix appends "#" and the IP's text form as MetalLB computes it from
// a net.IP: an IPv4-mapped IPv6 address prints as dotted IPv4 there, and a
// net.IP has no zone, so both are normalised away here.
func appendSuffix(b []byte, ip netip.Addr) []byte {
	b = append(b, '#')
	return ip.WithZone("").Unmap().AppendTo(b)
}

// nodeHash hashes node+tail, using buf as scratch space when it is large
// enough so that the common case stays off the heap.
func nodeHash(buf []byte, node string, tail []byte) [sha256.Size]byte {
	buf = append(buf, node...)
	buf = append(buf, tail...)
	return sha256.Sum256(buf)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
