// Package config parses and validates the legacy MetalLB v0.12 configuration: the YAML held
// under the "config" key of the ConfigMap "config" in namespace metallb-system.
//
// Parsing is strict, as MetalLB's is: unknown keys, duplicate keys, values of the wrong type
// and every semantic mistake (overlapping pools, bad ranges, aggregation lengths shorter than
// a pool's prefixes, unknown BFD profiles, invalid label selectors, ...) are rejected, so a
// broken ConfigMap never replaces a good configuration. The result uses net/netip types and
// has every MetalLB default filled in, so the rest of ironlb never sees raw strings.
//
// Every error names where the problem is, the field, the offending value and why, for
// example:
//
//	address-pools[1] "blue": addresses[0] "10.0.0.9-10.0.0.1": range start is after end
//
// and can be classified with errors.Is against the Err* sentinels.
package config
