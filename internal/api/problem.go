package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/fail"
)

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Rule   string `json:"rule,omitempty"` // for policy refusals: the rule that refused
}

var kindStatus = map[fail.Kind]int{
	fail.Internal:     http.StatusInternalServerError,
	fail.Malformed:    http.StatusBadRequest,
	fail.Refused:      http.StatusForbidden,
	fail.NotFound:     http.StatusNotFound,
	fail.Conflict:     http.StatusConflict,
	fail.Unauthorized: http.StatusUnauthorized,
	fail.Forbidden:    http.StatusForbidden,
	fail.Unavailable:  http.StatusServiceUnavailable,
	fail.TooLarge:     http.StatusRequestEntityTooLarge,
}

var kindTitle = map[fail.Kind]string{
	fail.Internal:     "Internal error",
	fail.Malformed:    "Malformed request",
	fail.Refused:      "Refused by policy",
	fail.NotFound:     "Not found",
	fail.Conflict:     "Conflict",
	fail.Unauthorized: "Unauthorized",
	fail.Forbidden:    "Forbidden",
	fail.Unavailable:  "Service unavailable",
	fail.TooLarge:     "Request too large",
}

// writeProblem translates a domain error into problem+json. Internal errors
// are logged and shown without detail: their causes may hold things callers
// should not see.
func writeProblem(w http.ResponseWriter, log *slog.Logger, err error) {
	k := fail.KindOf(err)
	if errors.Is(err, audit.ErrUnavailable) {
		k = fail.Unavailable
	}
	p := Problem{Type: "urn:sigil:problem:" + k.String(), Title: kindTitle[k], Status: kindStatus[k], Detail: err.Error()}
	var fe *fail.Error
	if errors.As(err, &fe) {
		p.Rule = fe.Rule
	}
	switch k {
	case fail.Internal:
		log.Error("internal error", "err", err)
		p.Detail = "internal error; see the server log"
	case fail.Unavailable:
		log.Error("dependency unavailable", "err", err)
		if fe != nil && fe.Msg != "" {
			p.Detail = fe.Msg
		}
		w.Header().Set("Retry-After", "5")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
