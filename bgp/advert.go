package bgp

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// Advertisement is one prefix announced to every peer of its address family.
type Advertisement struct {
	// Prefix is a /32 or /128 of a Service IP, or an aggregate covering it.
	Prefix netip.Prefix
	// LocalPref is sent to iBGP peers only, 0 included (unset), as MetalLB's
	// native speaker sends it.
	LocalPref uint32
	// Communities are standard communities, (asn<<16 | value).
	Communities []uint32
}

// AdvertisementSpec is one entry of a pool's bgp-advertisements, kept
// independent of the config package's types.
type AdvertisementSpec struct {
	// AggregationLength is the prefix length IPv4 Service IPs are masked
	// to; 0 means 32.
	AggregationLength int
	// AggregationLengthV6 is the same for IPv6; 0 means 128.
	AggregationLengthV6 int
	LocalPref           uint32
	Communities         []uint32
}

// Build turns Service IPs and a pool's advertisement specs into
// Advertisements: each IP is masked to each spec's aggregation length, so
// several Services in one aggregate give one prefix. Advertisements of the
// same prefix are merged (see SetAdvertisements). With no specs each IP is
// advertised alone, MetalLB's default for a bgp pool. The result is sorted
// by prefix. Invalid IPs and out-of-range lengths are skipped (the config
// package validates lengths). Cost: O(n·m·log(n·m)) for n IPs and m specs.
func Build(ips []netip.Addr, specs []AdvertisementSpec) []Advertisement {
	if len(specs) == 0 {
		specs = []AdvertisementSpec{{}}
	}
	var ads []Advertisement
	for _, ip := range ips {
		if !ip.IsValid() {
			continue
		}
		ip = ip.Unmap()
		for _, spec := range specs {
			bits := spec.AggregationLength
			if ip.Is6() {
				bits = spec.AggregationLengthV6
			}
			if bits == 0 {
				bits = ip.BitLen()
			}
			p, err := ip.Prefix(bits)
			if err != nil {
				continue
			}
			ads = append(ads, Advertisement{
				Prefix:      p,
				LocalPref:   spec.LocalPref,
				Communities: slices.Clone(spec.Communities),
			})
		}
	}
	return mergeAdvertisements(ads)
}

// mergeAdvertisements masks, sorts and merges advertisements of the same
// prefix: the union of their communities and the highest local preference,
// so the result does not depend on input order (MetalLB lets the last one
// win, which depends on map order).
func mergeAdvertisements(ads []Advertisement) []Advertisement {
	byPrefix := make(map[netip.Prefix]Advertisement, len(ads))
	for _, ad := range ads {
		p := ad.Prefix.Masked()
		cur, ok := byPrefix[p]
		if !ok {
			byPrefix[p] = Advertisement{Prefix: p, LocalPref: ad.LocalPref, Communities: normCommunities(ad.Communities)}
			continue
		}
		cur.LocalPref = max(cur.LocalPref, ad.LocalPref)
		cur.Communities = normCommunities(append(cur.Communities, ad.Communities...))
		byPrefix[p] = cur
	}
	out := make([]Advertisement, 0, len(byPrefix))
	for _, ad := range byPrefix {
		out = append(out, ad)
	}
	slices.SortFunc(out, func(a, b Advertisement) int { return comparePrefix(a.Prefix, b.Prefix) })
	return out
}

func normCommunities(c []uint32) []uint32 {
	if len(c) == 0 {
		return nil
	}
	c = slices.Clone(c)
	slices.Sort(c)
	return slices.Compact(c)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

func sameAttributes(a, b Advertisement) bool {
	return a.LocalPref == b.LocalPref && slices.Equal(a.Communities, b.Communities)
}

// FormatCommunity renders a standard community as "aa:nn".
func FormatCommunity(c uint32) string {
	return fmt.Sprintf("%d:%d", c>>16, c&0xffff)
}
