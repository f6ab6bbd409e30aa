package config

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sentinel errors classifying a rejection; match them with errors.Is.
var (
	// ErrSyntax: the document is not well-formed YAML, has duplicate keys, or an alias
	// inside its own anchor.
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
	// ErrTooLarge: a document too large, or whose YAML aliases expand too far, to be read.
	ErrTooLarge = errors.New("document too large")
	// ErrUnsupported: a valid MetalLB setting ironlb cannot honour (BFD, a zero hold time).
	ErrUnsupported = errors.New("not supported by ironlb")
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
	return append(out, fmt.Sprintf(format, shortenArgs(args)...))
}

// maxShown bounds the text an error quotes from the document, so that a rejection of a
// huge value stays a readable log line and fits in an Event.
const maxShown = 200

// shortenArgs shortens the string arguments of a message: they are the values from the
// document.
func shortenArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if s, ok := a.(string); ok {
			a = shorten(s)
		}
		out[i] = a
	}
	return out
}

// shorten cuts s to maxShown bytes (on a rune boundary), saying how much was left out.
func shorten(s string) string {
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d more bytes)", s[:cut], len(s)-cut)
}

func (p path) String() string { return strings.Join(p, ": ") }

// errorf builds an *Error at p.
func (p path) errorf(kind error, format string, args ...any) *Error {
	return &Error{Path: p.String(), Reason: fmt.Sprintf(format, shortenArgs(args)...), Kind: kind}
}
