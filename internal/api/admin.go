package api

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

func (s *Server) applyProfiles(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxProfileBody)
	if err != nil {
		s.refuse(w, r, auth.ProfileWrite, "", err)
		return
	}
	doc, err := policy.ParseDocument(body)
	if err != nil {
		s.refuse(w, r, auth.ProfileWrite, "", fail.Wrap(fail.Malformed, err))
		return
	}
	changes, err := s.RA.ApplyProfiles(r.Context(), caller(r), doc)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"profiles": changes})
}

func (s *Server) listProfiles(w http.ResponseWriter, r *http.Request) {
	ps, err := s.RA.Profiles(r.Context(), caller(r))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, policy.Document{Profiles: ps})
}

func (s *Server) showProfile(w http.ResponseWriter, r *http.Request) {
	ps, err := s.RA.Profiles(r.Context(), caller(r))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	i := slices.IndexFunc(ps, func(p policy.Profile) bool { return p.Name == r.PathValue("name") })
	if i < 0 {
		writeProblem(w, s.Log, fail.New(fail.NotFound, "profile %q does not exist", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, ps[i])
}

func (s *Server) deleteProfile(w http.ResponseWriter, r *http.Request) {
	if err := s.RA.DeleteProfile(r.Context(), caller(r), r.PathValue("name")); err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Role     string   `json:"role"`
	Name     string   `json:"name,omitempty"`
	TTL      string   `json:"ttl,omitempty"` // empty: never expires
	Profiles []string `json:"profiles,omitempty"`
}

// TokenResponse carries the token's plaintext, shown once.
type TokenResponse struct {
	*identity.Token
	Secret string `json:"token"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.refuse(w, r, auth.TokenWrite, "", err)
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := parseDuration(req.TTL)
		if err != nil || d <= 0 {
			s.refuse(w, r, auth.TokenWrite, req.Role, fail.New(fail.Malformed, "invalid ttl %q", req.TTL))
			return
		}
		ttl = d
	}
	plain, tok, err := s.RA.CreateToken(r.Context(), caller(r), ra.TokenRequest{Role: identity.Role(req.Role), Name: req.Name, Profiles: req.Profiles, TTL: ttl})
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, TokenResponse{Token: tok, Secret: plain})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.RA.Tokens(r.Context(), caller(r))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": ts, "count": len(ts)})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := s.RA.RevokeToken(r.Context(), caller(r), r.PathValue("id")); err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	s.tokens().Forget(r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action")}
	var err error
	parseTime := func(name string) time.Time {
		v := q.Get(name)
		if v == "" || err != nil {
			return time.Time{}
		}
		// Relative ("24h", "7d": that long ago) or absolute RFC 3339.
		if d, derr := parseDuration(v); derr == nil {
			return s.Now().Add(-d)
		}
		t, perr := time.Parse(time.RFC3339, v)
		if perr != nil {
			err = fail.New(fail.Malformed, "invalid %s %q: want RFC 3339 or a duration such as 24h", name, v)
		}
		return t
	}
	f.Since, f.Until = parseTime("since"), parseTime("until")
	if v := q.Get("after"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil {
			err = fail.New(fail.Malformed, "invalid after %q", v)
		}
		f.AfterSeq = n
	}
	f.Limit = 1000
	if v := q.Get("limit"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n <= 0 {
			err = fail.New(fail.Malformed, "invalid limit %q", v)
		}
		f.Limit = min(n, 100000)
	}
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	evs, err := s.RA.AuditEvents(r.Context(), caller(r), f)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": evs, "count": len(evs)})
}

// VerifyResponse reports an audit chain verification.
type VerifyResponse struct {
	OK       bool   `json:"ok"`
	Events   int64  `json:"events"`
	BrokenAt int64  `json:"broken_at,omitempty"`
	Error    string `json:"error,omitempty"`
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) {
	n, err := s.RA.VerifyAudit(r.Context(), caller(r))
	var ce *audit.ChainError
	switch {
	case errors.As(err, &ce):
		writeJSON(w, http.StatusOK, VerifyResponse{OK: false, Events: n, BrokenAt: ce.Seq, Error: ce.Error()})
	case err != nil:
		writeProblem(w, s.Log, err)
	default:
		writeJSON(w, http.StatusOK, VerifyResponse{OK: true, Events: n})
	}
}

// IssuerView describes a CA certificate.
type IssuerView struct {
	ID        string    `json:"id"`
	Subject   string    `json:"subject"`
	Root      bool      `json:"root"`
	KeyType   string    `json:"key_type"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	SHA256    string    `json:"sha256"`
	PEM       string    `json:"certificate"`
	CRL       string    `json:"crl_url"`
}

func (s *Server) listIssuers(w http.ResponseWriter, r *http.Request) {
	if !auth.Allowed(caller(r).Token.Role, auth.CARead) {
		writeProblem(w, s.Log, fail.New(fail.Forbidden, "not allowed"))
		return
	}
	var out []IssuerView
	for _, i := range s.RA.CA().Issuers() {
		out = append(out, IssuerView{
			ID: i.ID, Subject: i.Cert.Subject.String(), Root: len(i.Chain) == 0 && string(i.Cert.RawIssuer) == string(i.Cert.RawSubject),
			KeyType: i.KeyType(), NotBefore: i.Cert.NotBefore, NotAfter: i.Cert.NotAfter,
			SHA256: identity.Fingerprint(i.Cert.Raw), PEM: string(ca.PEM(i.Cert.Raw)), CRL: s.RA.CA().URLs().CRL(i.ID),
		})
	}
	slices.SortFunc(out, func(a, b IssuerView) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
}
