// Package fail is Sigil's error taxonomy. Domain code wraps errors with a
// Kind; only front ends (API, CLI, later ACME) translate kinds into status
// codes or problem types.
package fail

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the caller can do about it.
type Kind int

const (
	Internal     Kind = iota // a bug or an unexpected failure: not the caller's fault
	Malformed                // the request cannot be parsed or is out of bounds
	Refused                  // well-formed, but policy says no
	NotFound                 // the named object does not exist
	Conflict                 // the object exists, or is in the wrong state
	Unauthorized             // no valid credentials
	Forbidden                // valid credentials, not allowed
	Unavailable              // a dependency (database, audit log) is down: retry later
	TooLarge                 // the request body exceeds its limit
)

func (k Kind) String() string {
	return [...]string{"internal", "malformed", "refused", "not-found", "conflict", "unauthorized", "forbidden", "unavailable", "too-large"}[k]
}

// Error carries a Kind, a message safe to show the caller, and an optional
// cause (which may hold detail not meant for the caller).
type Error struct {
	Kind   Kind
	Msg    string
	Rule   string // for Refused: the rule that refused
	Reason error
}

func (e *Error) Error() string {
	if e.Reason != nil && e.Msg == "" {
		return e.Reason.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Reason }

// New returns an error of kind k with a formatted caller-visible message.
func New(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// Wrap attaches kind k to err; the message shown is err's own.
func Wrap(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Msg: err.Error(), Reason: err}
}

// KindOf returns the kind of the outermost *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
