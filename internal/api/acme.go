package api

import (
	"net/http"
	"time"

	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/ra"
)

// ACME administration (sigil acme ...). The ACME protocol itself is served
// by internal/acme under /acme/.

// EABKeyView is an External Account Binding key as the API shows it; the
// HMAC key appears only in the answer to its creation.
type EABKeyView struct {
	KID       string    `json:"kid"`
	Profile   string    `json:"profile"`
	Owner     string    `json:"owner,omitempty"`
	HMACKey   string    `json:"hmac_key,omitempty"` // base64url, shown once
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	AccountID string    `json:"account_id,omitempty"`
}

// ACMEProfileView is a profile's ACME settings.
type ACMEProfileView struct {
	Profile     string    `json:"profile"`
	Enabled     bool      `json:"enabled"`
	EABRequired bool      `json:"eab_required"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func (s *Server) acmeRoutes(a func(string, http.HandlerFunc)) {
	a("GET /api/v1/acme/profiles", s.listACMEProfiles)
	a("PUT /api/v1/acme/profiles/{name}", s.setACMEProfile)
	a("GET /api/v1/acme/eab", s.listEAB)
	a("POST /api/v1/acme/eab", s.createEAB)
	a("DELETE /api/v1/acme/eab/{kid}", s.revokeEAB)
	a("POST /api/v1/acme/renew-early", s.renewEarly)
}

func (s *Server) renewEarly(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Serials []string `json:"serials"`
	}
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.refuse(w, r, auth.CertRevoke, "acme-renew-early", err)
		return
	}
	serials := make([]identity.Serial, 0, len(req.Serials))
	for _, v := range req.Serials {
		sn, err := identity.ParseSerial(v)
		if err != nil {
			s.refuse(w, r, auth.CertRevoke, "acme-renew-early", fail.Wrap(fail.Malformed, err))
			return
		}
		serials = append(serials, sn)
	}
	if err := s.RA.MarkRenewEarly(r.Context(), caller(r), serials); err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"marked": len(serials)})
}

func (s *Server) listACMEProfiles(w http.ResponseWriter, r *http.Request) {
	ps, err := s.RA.ACMEProfiles(r.Context(), caller(r))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	out := make([]ACMEProfileView, 0, len(ps))
	for _, p := range ps {
		out = append(out, ACMEProfileView{p.Profile, p.Enabled, p.EABRequired, p.UpdatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) setACMEProfile(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Enabled     bool `json:"enabled"`
		EABRequired bool `json:"eab_required"`
	}
	name := r.PathValue("name")
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.refuse(w, r, auth.ProfileWrite, "acme:"+name, err)
		return
	}
	p, err := s.RA.SetACMEProfile(r.Context(), caller(r), ra.ACMEProfileSettings{Profile: name, Enabled: req.Enabled, EABRequired: req.EABRequired})
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, ACMEProfileView{p.Profile, p.Enabled, p.EABRequired, p.UpdatedAt})
}

func (s *Server) listEAB(w http.ResponseWriter, r *http.Request) {
	ks, err := s.RA.EABKeys(r.Context(), caller(r), r.URL.Query().Get("profile"))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	out := make([]EABKeyView, 0, len(ks))
	for _, k := range ks {
		out = append(out, EABKeyView{KID: k.KID, Profile: k.Profile, Owner: k.Owner, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt, AccountID: k.AccountID})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createEAB(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Profile string `json:"profile"`
		Owner   string `json:"owner"`
	}
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.refuse(w, r, auth.ProfileWrite, "acme-eab", err)
		return
	}
	if req.Profile == "" {
		s.refuse(w, r, auth.ProfileWrite, "acme-eab", fail.New(fail.Malformed, "profile is required"))
		return
	}
	k, hmacKey, err := s.RA.CreateEABKey(r.Context(), caller(r), req.Profile, req.Owner)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, EABKeyView{KID: k.KID, Profile: k.Profile, Owner: k.Owner, HMACKey: hmacKey, CreatedAt: k.CreatedAt})
}

func (s *Server) revokeEAB(w http.ResponseWriter, r *http.Request) {
	if err := s.RA.RevokeEABKey(r.Context(), caller(r), r.PathValue("kid")); err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
