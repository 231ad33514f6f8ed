package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

// IssueRequest is the body of POST /api/v1/certificates.
type IssueRequest struct {
	Profile string            `json:"profile"`
	CSR     string            `json:"csr"`           // PEM
	TTL     string            `json:"ttl,omitempty"` // Go duration or Nd; empty: profile default
	Owner   string            `json:"owner,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// CertView is a certificate record as the API shows it.
type CertView struct {
	*identity.Certificate
	SerialHex string `json:"serial_hex"` // as openssl prints it
	State     string `json:"state"`      // status, with "expired" for issued certificates past not_after
	PEM       string `json:"certificate,omitempty"`
}

// IssueResponse is returned by a successful issuance.
type IssueResponse struct {
	CertView
	Chain string `json:"chain"` // PEM intermediates, issuer first, root excluded
}

func (s *Server) view(c *identity.Certificate, withPEM bool) CertView {
	v := CertView{Certificate: c, SerialHex: c.Serial.OpenSSL(), State: c.EffectiveStatus(s.Now())}
	if withPEM && len(c.DER) > 0 {
		v.PEM = string(ca.PEM(c.DER))
	}
	return v
}

func (s *Server) issueCert(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req IssueRequest
	defer func() { s.metrics().observeIssue(req.Profile, time.Since(start)) }()
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.refuse(w, r, auth.CertIssue, "", err)
		return
	}
	if req.Profile == "" || req.CSR == "" {
		s.refuse(w, r, auth.CertIssue, req.Profile, fail.New(fail.Malformed, "profile and csr are required"))
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := parseDuration(req.TTL)
		if err != nil {
			s.refuse(w, r, auth.CertIssue, req.Profile, fail.New(fail.Malformed, "invalid ttl %q: %v", req.TTL, err))
			return
		}
		ttl = d
	}
	out, err := s.RA.Issue(r.Context(), caller(r), ra.IssueRequest{
		Profile: req.Profile, CSR: []byte(req.CSR), TTL: ttl, Owner: req.Owner, Labels: req.Labels,
	})
	if err != nil {
		s.metrics().failed.WithLabelValues(fail.KindOf(err).String()).Inc()
		writeProblem(w, s.Log, err)
		return
	}
	s.metrics().issued.WithLabelValues(out.Record.Profile).Inc()
	w.Header().Set("Location", "/api/v1/certificates/"+string(out.Record.Serial))
	writeJSON(w, http.StatusCreated, IssueResponse{
		CertView: CertView{Certificate: out.Record, SerialHex: out.Record.Serial.OpenSSL(), State: string(out.Record.Status), PEM: string(out.CertPEM)},
		Chain:    string(out.ChainPEM),
	})
}

func (s *Server) listCerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.CertFilter{Profile: q.Get("profile"), IssuerID: q.Get("issuer")}
	switch st := q.Get("status"); st {
	case "", "all":
	case "issued", "revoked", "planned":
		f.Status = identity.CertStatus(st)
	case "expired":
		f.Status, f.NotAfterBefore = identity.StatusIssued, s.Now()
	case "valid":
		f.Status, f.NotAfterAfter = identity.StatusIssued, s.Now()
	default:
		writeProblem(w, s.Log, fail.New(fail.Malformed, "unknown status %q (use issued, revoked, planned, expired, valid or all)", st))
		return
	}
	if e := q.Get("expiring"); e != "" {
		d, err := parseDuration(e)
		if err != nil || d <= 0 {
			writeProblem(w, s.Log, fail.New(fail.Malformed, "invalid expiring %q: want a duration such as 30d or 72h", e))
			return
		}
		// Expiring means still valid now and ending within d.
		f.NotAfterBefore, f.NotAfterAfter = s.Now().Add(d), s.Now()
		if f.Status == "" {
			f.Status = identity.StatusIssued
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeProblem(w, s.Log, fail.New(fail.Malformed, "invalid limit %q", l))
			return
		}
		f.Limit = n
	}
	recs, err := s.RA.Certificates(r.Context(), caller(r), f)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	out := make([]CertView, len(recs))
	for i, c := range recs {
		out[i] = s.view(c, false)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "count": len(out)})
}

func (s *Server) pathSerial(w http.ResponseWriter, r *http.Request) (identity.Serial, bool) {
	serial, err := identity.ParseSerial(r.PathValue("serial"))
	if err != nil {
		writeProblem(w, s.Log, fail.Wrap(fail.Malformed, err))
		return "", false
	}
	return serial, true
}

func (s *Server) showCert(w http.ResponseWriter, r *http.Request) {
	serial, ok := s.pathSerial(w, r)
	if !ok {
		return
	}
	rec, err := s.RA.Certificate(r.Context(), caller(r), serial)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, s.view(rec, true))
}

// RevokeRequest is the body of POST /api/v1/certificates/{serial}/revoke.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"` // RFC 5280 name, e.g. keyCompromise
}

func (s *Server) revokeCert(w http.ResponseWriter, r *http.Request) {
	serial, err := identity.ParseSerial(r.PathValue("serial"))
	if err != nil {
		s.refuse(w, r, auth.CertRevoke, "", fail.Wrap(fail.Malformed, err))
		return
	}
	var req RevokeRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
			s.refuse(w, r, auth.CertRevoke, string(serial), err)
			return
		}
	}
	reason, err := identity.ParseReason(req.Reason)
	if err != nil {
		s.refuse(w, r, auth.CertRevoke, string(serial), fail.Wrap(fail.Malformed, err))
		return
	}
	rec, err := s.RA.Revoke(r.Context(), caller(r), serial, reason)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	s.metrics().revoked.Inc()
	writeJSON(w, http.StatusOK, s.view(rec, false))
}
