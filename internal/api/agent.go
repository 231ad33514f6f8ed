package api

import (
	"net/http"
	"time"

	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

// Agent endpoints (issue 3). Operators manage join tokens and machines with
// API tokens; agents enrol with a join token and then authenticate with
// their certificate (mTLS): the HTTPS listener requests client certificates
// and the RA verifies them, so a revoked or expired one reaches the RA and
// gets a clear refusal instead of a failed handshake.

func (s *Server) agentRoutes(a func(string, http.HandlerFunc), open func(string, func(http.ResponseWriter, *http.Request))) {
	a("POST /api/v1/join-tokens", s.createJoinToken)
	a("GET /api/v1/join-tokens", s.listJoinTokens)
	a("DELETE /api/v1/join-tokens/{id}", s.revokeJoinToken)
	a("GET /api/v1/agents", s.listMachines)
	a("GET /api/v1/agents/{name}", s.showMachine)
	a("POST /api/v1/agents/{name}/disable", s.disableMachine)
	open("GET /api/v1/agent/roots", s.agentRoots)
	open("POST /api/v1/agent/enroll", s.agentEnroll)
	open("POST /api/v1/agent/renew", s.agentRenew)
	open("GET /api/v1/agent/status", s.agentStatus)
}

// JoinTokenRequest is the body of POST /api/v1/join-tokens.
type JoinTokenRequest struct {
	Profile string   `json:"profile"`
	Names   []string `json:"names"`
	TTL     string   `json:"ttl,omitempty"` // default 15m
}

// JoinTokenResponse carries the plaintext token, shown once.
type JoinTokenResponse struct {
	*store.JoinToken
	Token string `json:"token"`
}

func (s *Server) createJoinToken(w http.ResponseWriter, r *http.Request) {
	var req JoinTokenRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.refuse(w, r, auth.CertIssue, "join-token", err)
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := parseDuration(req.TTL)
		if err != nil || d <= 0 {
			s.refuse(w, r, auth.CertIssue, "join-token", fail.New(fail.Malformed, "invalid ttl %q", req.TTL))
			return
		}
		ttl = d
	}
	plain, tok, err := s.RA.CreateJoinToken(r.Context(), caller(r), ra.JoinTokenRequest{Profile: req.Profile, Names: req.Names, TTL: ttl})
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, JoinTokenResponse{JoinToken: tok, Token: plain})
}

func (s *Server) listJoinTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.RA.ListJoinTokens(r.Context(), caller(r))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	if ts == nil {
		ts = []*store.JoinToken{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": ts, "count": len(ts)})
}

func (s *Server) revokeJoinToken(w http.ResponseWriter, r *http.Request) {
	if err := s.RA.RevokeJoinToken(r.Context(), caller(r), r.PathValue("id")); err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) {
	ms, err := s.RA.ListMachines(r.Context(), caller(r))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	if ms == nil {
		ms = []*store.Machine{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": ms, "count": len(ms)})
}

func (s *Server) showMachine(w http.ResponseWriter, r *http.Request) {
	m, err := s.RA.GetMachine(r.Context(), caller(r), r.PathValue("name"))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

// DisableResponse is the answer of POST /api/v1/agents/{name}/disable.
type DisableResponse struct {
	*store.Machine
	Revoked []identity.Serial `json:"revoked"`
}

func (s *Server) disableMachine(w http.ResponseWriter, r *http.Request) {
	m, revoked, err := s.RA.DisableMachine(r.Context(), caller(r), r.PathValue("name"))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	if revoked == nil {
		revoked = []identity.Serial{}
	}
	writeJSON(w, http.StatusOK, DisableResponse{Machine: m, Revoked: revoked})
}

// agentRoots serves the trust anchors on the HTTPS listener, for an agent
// that knows only the root's fingerprint: it checks the fingerprint and
// then verifies this very connection's chain to the root before it sends
// anything.
func (s *Server) agentRoots(w http.ResponseWriter, r *http.Request) {
	var out []byte
	seen := map[string]bool{}
	for _, i := range s.RA.CA().Issuers() {
		top := i.Cert
		if len(i.Chain) > 0 {
			top = i.Chain[len(i.Chain)-1]
		}
		if string(top.RawIssuer) == string(top.RawSubject) && !seen[string(top.Raw)] {
			seen[string(top.Raw)] = true
			out = append(out, ca.PEM(top.Raw)...)
		}
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(out)
}

// AgentEnrollRequest is the body of POST /api/v1/agent/enroll.
type AgentEnrollRequest struct {
	JoinToken string `json:"join_token"`
	CSR       string `json:"csr"` // PEM
}

// AgentCertResponse is the answer to an enrolment or renewal.
type AgentCertResponse struct {
	Machine     string          `json:"machine"`
	Serial      identity.Serial `json:"serial"`
	NotAfter    time.Time       `json:"not_after"`
	Certificate string          `json:"certificate"`
	Chain       string          `json:"chain"`
}

func agentAnswer(out *ra.Issued, machine string) AgentCertResponse {
	return AgentCertResponse{Machine: machine, Serial: out.Record.Serial, NotAfter: out.Record.NotAfter,
		Certificate: string(out.CertPEM), Chain: string(out.ChainPEM)}
}

func (s *Server) agentEnroll(w http.ResponseWriter, r *http.Request) {
	var req AgentEnrollRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		writeProblem(w, s.Log, s.RA.AuditRefusal(r.Context(), ra.Caller{Anonymous: true}, "agent.enroll", "", err))
		return
	}
	out, m, err := s.RA.Enroll(r.Context(), ra.EnrollRequest{JoinToken: req.JoinToken, CSR: []byte(req.CSR)})
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, agentAnswer(out, m.Name))
}

// AgentRenewRequest is the body of POST /api/v1/agent/renew.
type AgentRenewRequest struct {
	CSR string `json:"csr"` // PEM
}

func (s *Server) agentRenew(w http.ResponseWriter, r *http.Request) {
	var req AgentRenewRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		writeProblem(w, s.Log, s.RA.AuditRefusal(r.Context(), ra.Caller{Anonymous: true}, "agent.renew", "", err))
		return
	}
	if r.TLS == nil {
		writeProblem(w, s.Log, fail.New(fail.Unauthorized, "renewal needs HTTPS with a client certificate"))
		return
	}
	out, err := s.RA.Renew(r.Context(), r.TLS.PeerCertificates, []byte(req.CSR))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, agentAnswer(out, out.Record.Labels[ra.AgentLabel]))
}

func (s *Server) agentStatus(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		writeProblem(w, s.Log, fail.New(fail.Unauthorized, "the status endpoint needs HTTPS with a client certificate"))
		return
	}
	st, err := s.RA.AgentStatusOf(r.Context(), r.TLS.PeerCertificates)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
