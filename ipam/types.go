package ipam

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"

	"go4.org/netipx"
)

// Family is an IP address family.
type Family int

// The address families; the values match the IP version numbers.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

func familyOf(ip netip.Addr) Family {
	if ip.Is4() {
		return IPv4
	}
	return IPv6
}

// Pool is an address pool as configured.
type Pool struct {
	Name string
	// Ranges may mix families; they must not overlap each other or the
	// ranges of any other pool.
	Ranges []netipx.IPRange
	// AutoAssign false means the pool is used only for Services that name
	// it or request one of its addresses.
	AutoAssign bool
	// AvoidBuggyIPs removes IPv4 addresses ending in .0 or .255 from the pool.
	AvoidBuggyIPs bool
}

// Port is a port/protocol pair a Service exposes on its address.
type Port struct {
	Protocol string // "TCP", "UDP", "SCTP"
	Port     int32
}

func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }

// Service is what the allocator needs to know about a Service to decide
// whether it may share an address with others.
type Service struct {
	Key        string // "namespace/name"
	SharingKey string // allow-shared-ip annotation value; "" = does not share
	BackendKey string // "" for externalTrafficPolicy Cluster; the canonical pod selector for Local
	Ports      []Port
}

// Request describes the addresses a Service asks for.
type Request struct {
	// Pool is the pool the Service requires; "" means any auto-assign pool,
	// tried in configuration order.
	Pool string
	// IPs are requested addresses, at most one per family; empty means any.
	IPs []netip.Addr
	// Families lists the families wanted, one address each, all from the
	// same pool. Empty means the families of IPs, or IPv4 if IPs is empty.
	Families []Family
}

// Assignment is the pool and addresses held by a Service.
type Assignment struct {
	Pool string
	IPs  []netip.Addr
}

// PoolStats describes one pool for metrics.
type PoolStats struct {
	Name string
	// Size is the number of allocatable addresses (without the .0/.255
	// addresses of an avoid-buggy-ips pool).
	Size *big.Int
	// InUse is the number of distinct addresses held by at least one Service.
	InUse int
}

// Sentinel errors, matched with errors.Is. The errors returned wrap them with
// a message naming the address, pool or Service concerned.
var (
	ErrNoSuchPool    = errors.New("no such pool")
	ErrPoolExhausted = errors.New("pool exhausted")
	ErrNotInPool     = errors.New("address not in pool")
	ErrInUse         = errors.New("address in use")
	ErrFamily        = errors.New("address family not available")
	// ErrInvalid reports a malformed argument: an empty Service key, an
	// unknown family, two requested addresses of one family, or (from
	// SetPools) overlapping pools, duplicate names or malformed ranges.
	ErrInvalid = errors.New("invalid argument")
	// ErrWouldRelease reports a SetPools refused because it would take
	// addresses from Services; the error is a *ReleaseError.
	ErrWouldRelease = errors.New("new pools would take assigned addresses")
)

// ReleasedService is a Service a refused SetPools would have taken
// addresses from, with the reason.
type ReleasedService struct {
	Key    string
	IPs    []netip.Addr
	Reason string
}

// ReleaseError is the error of a SetPools refused because it would take
// addresses from Services. It wraps ErrWouldRelease.
type ReleaseError struct {
	Services []ReleasedService // sorted by key
}

func (e *ReleaseError) Error() string {
	const shown = 10
	var b strings.Builder
	fmt.Fprintf(&b, "the new pools would take addresses from %d service(s): ", len(e.Services))
	for i, s := range e.Services {
		if i == shown {
			fmt.Fprintf(&b, "; and %d more", len(e.Services)-shown)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s (%s)", s.Key, s.Reason)
	}
	return b.String()
}

func (e *ReleaseError) Unwrap() error { return ErrWouldRelease }

// ipamError carries a specific message while matching a sentinel, so that
// the text reads "no free address in pool x for IPv4" rather than carrying
// the sentinel's text as a prefix or suffix.
type ipamError struct {
	kind error
	msg  string
}

func (e *ipamError) Error() string { return e.msg }
func (e *ipamError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &ipamError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
