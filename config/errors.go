package config

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors classifying a rejection; match them with errors.Is.
var (
	// ErrSyntax: the document is not well-formed YAML, or has duplicate keys.
	ErrSyntax = errors.New("malformed document")
	// ErrUnknownField: a key MetalLB v0.12 does not know (keys are case-sensitive).
	ErrUnknownField = errors.New("unknown field")
	// ErrType: a value of the wrong YAML type (a string where a number is expected, ...).
	ErrType = errors.New("wrong value type")
	// ErrMissing: a required field is absent or empty.
	ErrMissing = errors.New("missing required field")
	// ErrInvalid: a value that is well-typed but not acceptable.
	ErrInvalid = errors.New("invalid value")
	// ErrDuplicate: two pools, BFD profiles or peers that must be unique are not.
	ErrDuplicate = errors.New("duplicate definition")
	// ErrOverlap: addresses shared by two pool entries.
	ErrOverlap = errors.New("overlapping addresses")
	// ErrUnknownReference: a name referring to something not defined (a BFD profile).
	ErrUnknownReference = errors.New("unknown reference")
	// ErrNoKey: a ConfigMap manifest without the requested data key.
	ErrNoKey = errors.New("configmap key not found")
)

// Error is a rejection of a configuration. Path locates the problem, from the top of the
// document down to the field and its value (`address-pools[1] "blue": addresses[0] "x"`);
// Reason says why. Kind is one of the Err* sentinels, reachable with errors.Is.
type Error struct {
	Path   string
	Reason string
	Kind   error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// Unwrap lets errors.Is match the sentinel in Kind.
func (e *Error) Unwrap() error { return e.Kind }

// path is a location in the document, one segment per level.
type path []string

// with returns p extended by a segment; it never aliases p's backing array, so sibling
// paths built from the same parent stay independent.
func (p path) with(format string, args ...any) path {
	out := make(path, len(p), len(p)+1)
	copy(out, p)
	return append(out, fmt.Sprintf(format, args...))
}

func (p path) String() string { return strings.Join(p, ": ") }

// errorf builds an *Error at p.
func (p path) errorf(kind error, format string, args ...any) *Error {
	return &Error{Path: p.String(), Reason: fmt.Sprintf(format, args...), Kind: kind}
}
