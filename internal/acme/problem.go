// Package acme is Sigil's ACME server (RFC 8555, with RFC 8737 tls-alpn-01
// and RFC 9773 renewal information): one directory per policy profile under
// /acme/<profile>/ on the HTTPS listener. It speaks the protocol —
// JWS, nonces, accounts, orders, authorizations, challenge validation — and
// leaves every state change and every certificate to the RA, so ACME
// issuance passes the same policy, lint, store and audit as the API.
package acme

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/sigil-pki/sigil/internal/fail"
)

const errNS = "urn:ietf:params:acme:error:"

// Problem is an ACME problem document (RFC 8555 §6.7, RFC 7807).
type Problem struct {
	Type        string     `json:"type"`
	Detail      string     `json:"detail,omitempty"`
	Status      int        `json:"status,omitempty"`
	Subproblems []*Problem `json:"subproblems,omitempty"`
	Identifier  *Ident     `json:"identifier,omitempty"`
	Algorithms  []string   `json:"algorithms,omitempty"` // badSignatureAlgorithm

	retryAfter int // seconds, for rateLimited
}

func (p *Problem) Error() string { return p.Type + ": " + p.Detail }

func prob(typ string, status int, format string, args ...any) *Problem {
	return &Problem{Type: errNS + typ, Status: status, Detail: fmt.Sprintf(format, args...)}
}

func malformed(format string, args ...any) *Problem {
	return prob("malformed", http.StatusBadRequest, format, args...)
}
func unauthorized(format string, args ...any) *Problem {
	return prob("unauthorized", http.StatusForbidden, format, args...)
}
func badNonce(format string, args ...any) *Problem {
	return prob("badNonce", http.StatusBadRequest, format, args...)
}
func serverInternal(format string, args ...any) *Problem {
	return prob("serverInternal", http.StatusInternalServerError, format, args...)
}
func notFound(format string, args ...any) *Problem {
	return prob("malformed", http.StatusNotFound, format, args...)
}
func orderNotReady(format string, args ...any) *Problem {
	return prob("orderNotReady", http.StatusForbidden, format, args...)
}
func rejectedIdentifier(format string, args ...any) *Problem {
	return prob("rejectedIdentifier", http.StatusBadRequest, format, args...)
}
func badCSR(format string, args ...any) *Problem {
	return prob("badCSR", http.StatusBadRequest, format, args...)
}

// toProblem maps any error to a problem: RA errors by kind.
func toProblem(err error) *Problem {
	if p, ok := err.(*Problem); ok {
		return p
	}
	switch fail.KindOf(err) {
	case fail.Malformed:
		return malformed("%v", err)
	case fail.TooLarge:
		return prob("malformed", http.StatusRequestEntityTooLarge, "%v", err)
	case fail.Refused:
		return rejectedIdentifier("%v", err)
	case fail.Forbidden, fail.Unauthorized:
		return unauthorized("%v", err)
	case fail.NotFound:
		return notFound("%v", err)
	case fail.Conflict:
		return prob("malformed", http.StatusConflict, "%v", err)
	case fail.Unavailable:
		p := serverInternal("service unavailable: %v", err)
		p.Status, p.retryAfter = http.StatusServiceUnavailable, 5
		return p
	}
	return serverInternal("internal error; see the server log")
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	if p.Status == 0 {
		p.Status = http.StatusBadRequest
	}
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
