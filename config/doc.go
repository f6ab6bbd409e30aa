// Package config parses and validates the legacy MetalLB v0.12 configuration: the YAML held
// under the "config" key of the ConfigMap "config" in namespace metallb-system.
//
// Parsing is strict, as MetalLB's is: unknown keys, duplicate keys, values of the wrong type
// and every semantic mistake (overlapping pools, bad ranges, aggregation lengths shorter than
// a pool's prefixes, identical advertisements, invalid label selectors, ...) are rejected, so
// a broken ConfigMap never replaces a good configuration. The result uses net/netip types and
// has every MetalLB default filled in, so the rest of ironlb never sees raw strings.
//
// Every error names where the problem is, the field, the offending value and why, for
// example:
//
//	address-pools[1] "blue": addresses[0] "10.0.0.9-10.0.0.1": range start is after end
//
// and can be classified with errors.Is against the Err* sentinels.
//
// # Reading the YAML
//
// The document is read as MetalLB's yaml.v2 reads it: string fields keep the text as
// written (`password: 0123` is "0123", `name: 0x10` is "0x10"), booleans and numbers follow
// YAML 1.1 (`auto-assign: no`, `peer-asn: 0x10`), anchors, aliases and merge keys (`<<`)
// work, only the first document of a stream is read. A ConfigMap without the key is an empty
// configuration (FromData, ParseConfigMap), as in MetalLB.
//
// The work is bounded before anything is expanded: a document is at most MaxDocumentSize
// bytes and 200,000 YAML nodes (an upper bound computed from its characters before parsing),
// and its aliases may expand it at most 4 times (or to 16,384 nodes and 1 MiB, whichever is
// more; never beyond 200,000 nodes); an alias inside its own anchor is an error. Any input up
// to 1 MiB is parsed or refused with less than 128 MiB allocated, about 100 MiB and one
// second at worst (TestBoundedWork, BenchmarkParseAdversarial). Every later check is
// O(n log n).
//
// # Differences from MetalLB v0.12.1
//
// ironlb accepts and refuses what MetalLB v0.12.1 does, with its native BGP speaker (the
// default mode), except for these deliberate differences.
//
// Refused by ironlb, accepted by MetalLB:
//
//   - An address entry touching 0.0.0.0, ::, 127.0.0.0/8, ::1, 169.254.0.0/16, fe80::/10,
//     224.0.0.0/4, ff00::/8, 255.255.255.255 or ::ffff:0:0/96, so 0.0.0.0/0 and ::/0 too:
//     no Service can be reached there. The whole entry is refused, never trimmed.
//   - A range mixing IPv4 and IPv6 ends (MetalLB takes it as an entry holding no address),
//     and an IPv4-mapped IPv6 CIDR such as ::ffff:10.0.0.0/120 (write it as IPv4).
//   - Pool, BFD profile and bgp-communities names with control characters.
//   - A non-integral number where an integer is expected (MetalLB truncates 24.5 to 24).
//   - A negative aggregation-length (or -v6) in a pool holding only the other family.
//   - An IPv6 router-id: a BGP identifier is 32 bits.
//   - hold-time 0 and keepalive-time 0, which GoBGP cannot offer (it substitutes 90s and a
//     third of the hold time), and a negative keepalive-time.
//   - Documents beyond the size and expansion limits above (MetalLB's yaml.v2 has its own,
//     different, alias limit).
//
// Accepted by ironlb, refused by MetalLB's native speaker (its controller accepts them):
//
//   - keepalive-time, which GoBGP honours.
//   - IPv6 addresses in bgp pools, which ironlb announces over MP-BGP.
//   - A bfd-profiles section, validated as MetalLB validates it but unused: bfd-profile on
//     a peer is refused, as MetalLB's native speaker refuses it.
//
// Read differently: a !!binary string is kept as written (yaml.v2 decodes its base64).
//
// The rules both refuse include identical bgp-advertisements in a pool (compared as
// written: {} and {aggregation-length: 32} differ), a community written twice in one
// advertisement (a name and its value are merged), and two peers equal in every field,
// where no node-selectors and a single empty one are the same and selectors compare as
// label selectors (requirement order and repeated values do not count, selector order
// does).
//
// Pool.UsableSize counts addresses as MetalLB's pool-size metric does (a /24 with
// avoid-buggy-ips has 254), exactly, where MetalLB says 2^63-1 for a pool holding an IPv6
// CIDR of 2^62 addresses or more and -1 for an x.y.z.0/32 with avoid-buggy-ips.
package config
