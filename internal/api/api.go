// Package api is the HTTPS JSON API under /api/v1 and the plain-HTTP
// publication endpoints (CRL, OCSP, CA certificates). It translates HTTP to
// calls on the registration authority and errors to RFC 9457 problems; it
// holds no business logic.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/ra"
)

// Body limits. CSRs are at most 64 KiB, so an issuance request over 256 KiB
// is hostile or broken; profile documents may be larger.
const (
	maxJSONBody    = 256 << 10
	maxProfileBody = 1 << 20
	maxOCSPBody    = 8 << 10
)

// Server serves the API.
type Server struct {
	RA  *ra.RA
	Log *slog.Logger
	Now func() time.Time
	// Ready reports whether the server can take traffic (store reachable).
	Ready func(ctx context.Context) error
	// Leader, if set, reports whether this replica holds the background-job
	// lease (the sigil_background_leader gauge).
	Leader func() bool

	metricsOnce sync.Once
	m           *metrics
	tokensOnce  sync.Once
	tokenCache  *auth.TokenCache
}

// tokenCacheTTL bounds how long another replica's token revocation takes to
// reach this one; revocations made here apply at once.
const tokenCacheTTL = 2 * time.Second

func (s *Server) tokens() *auth.TokenCache {
	s.tokensOnce.Do(func() { s.tokenCache = auth.NewTokenCache(s.RA.Store(), tokenCacheTTL, s.Now) })
	return s.tokenCache
}

func (s *Server) leader() bool { return s.Leader != nil && s.Leader() }

func (s *Server) metrics() *metrics {
	s.metricsOnce.Do(func() { s.m = newMetrics(s.leader, s.storeReader(), s.Now) })
	return s.m
}

type ctxKey struct{}

func caller(r *http.Request) ra.Caller {
	t, _ := r.Context().Value(ctxKey{}).(*identity.Token)
	return ra.Caller{Token: t}
}

// APIHandler returns the HTTPS handler: /api/v1, health and OpenAPI.
func (s *Server) APIHandler() http.Handler {
	mux := http.NewServeMux()
	s.health(mux)
	mux.HandleFunc("GET /openapi.json", serveOpenAPI)
	mux.Handle("GET /metrics", s.metrics().handler())
	a := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.authenticated(h)) }
	a("GET /api/v1/whoami", s.whoami)
	a("POST /api/v1/certificates", s.issueCert)
	a("GET /api/v1/certificates", s.listCerts)
	a("GET /api/v1/certificates/{serial}", s.showCert)
	a("POST /api/v1/certificates/{serial}/revoke", s.revokeCert)
	a("GET /api/v1/profiles", s.listProfiles)
	a("POST /api/v1/profiles", s.applyProfiles)
	a("PUT /api/v1/profiles", s.applyProfiles)
	a("GET /api/v1/profiles/{name}", s.showProfile)
	a("DELETE /api/v1/profiles/{name}", s.deleteProfile)
	a("GET /api/v1/tokens", s.listTokens)
	a("POST /api/v1/tokens", s.createToken)
	a("DELETE /api/v1/tokens/{id}", s.revokeToken)
	a("GET /api/v1/audit", s.listAudit)
	a("GET /api/v1/audit/verify", s.verifyAudit)
	a("GET /api/v1/ca", s.listIssuers)
	s.agentRoutes(a, mux.HandleFunc)
	s.assessRoutes(a)
	s.acmeRoutes(a)
	s.inventoryRoutes(a)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, s.Log, fail.New(fail.NotFound, "no API endpoint %s %s", r.Method, r.URL.Path))
	})
	return recoverer(s.Log, mux)
}

func (s *Server) health(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := s.Ready(ctx); err != nil {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// authenticated requires a valid bearer token. Failed attempts are audited.
func (s *Server) authenticated(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plain, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sigil"`)
			writeProblem(w, s.Log, fail.New(fail.Unauthorized, "an API token is required (Authorization: Bearer <token>)"))
			return
		}
		tok, err := auth.Authenticate(r.Context(), s.tokens(), strings.TrimSpace(plain), s.Now())
		if err != nil {
			if fail.KindOf(err) == fail.Unauthorized {
				if aerr := s.RA.AuditAuthFailure(r.Context(), r.Method+" "+r.URL.Path); aerr != nil {
					err = aerr
				}
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="sigil", error="invalid_token"`)
			writeProblem(w, s.Log, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, tok)))
	})
}

// recoverer turns a panic into a 500 so one bad request cannot take the
// server down; the panic is a bug and is logged as one.
func recoverer(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic serving request", "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeProblem(w, log, fail.New(fail.Internal, "internal error"))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// decodeJSON reads exactly one JSON object, refusing unknown fields,
// trailing data and bodies over limit.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fail.New(fail.Malformed, "invalid JSON body: the body is empty, a JSON object is required")
		}
		return fail.New(fail.Malformed, "invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail.New(fail.Malformed, "invalid JSON body: unexpected data after the object")
	}
	return nil
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, fail.New(fail.TooLarge, "request body is over the %d-byte limit", limit)
	}
	if err != nil {
		return nil, fail.New(fail.Malformed, "reading request body: %v", err)
	}
	return body, nil
}

// refuse audits a write request refused before it reached the RA, then
// answers with the problem: every refused request is in the audit log.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, action auth.Action, object string, err error) {
	writeProblem(w, s.Log, s.RA.AuditRefusal(r.Context(), caller(r), string(action), object, err))
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, caller(r).Token)
}

// parseDuration accepts Go durations and a "d" (days) suffix, as profiles do.
func parseDuration(s string) (time.Duration, error) {
	d, err := policy.ParseDuration(s)
	return time.Duration(d), err
}
