package acme

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

// maxBody bounds a JWS: a CSR is at most 64 KiB, base64 inflates it by 4/3,
// and a key change nests a JWS with an RSA key.
const maxBody = 128 << 10

// Sealer encrypts and decrypts secrets at rest (the server's KEK).
type Sealer interface {
	Seal(plaintext, additionalData []byte) ([]byte, error)
	Open(sealed, additionalData []byte) ([]byte, error)
}

// Config configures the ACME server.
type Config struct {
	RA  *ra.RA
	KEK Sealer
	Log *slog.Logger
	Now func() time.Time
	// Validation network: names mapped to addresses (Pebble's -resolve),
	// a DNS server for lookups and dns-01, and the ports validated.
	Resolve     map[string]string
	DNSResolver string
	HTTPPort    int // default 80
	TLSPort     int // default 443
	// ValidationTimeout bounds one challenge validation; default 10s.
	ValidationTimeout time.Duration
	// Rate limits, shared by all replicas through the store: new orders
	// per account and per identifier (DNS name or IP address) within
	// RateWindow (0 disables a limit).
	OrdersPerAccount int
	OrdersPerName    int
	RateWindow       time.Duration
}

// Server serves /acme/.
type Server struct {
	cfg   Config
	ra    *ra.RA
	st    store.Reader
	log   *slog.Logger
	now   func() time.Time
	v     *validator
	limit *limiter

	nonceMu sync.Mutex
	nonce   *nonces

	settings sync.Map // profile → cachedSettings
}

// New returns an ACME server.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = 80
	}
	if cfg.TLSPort == 0 {
		cfg.TLSPort = 443
	}
	if cfg.ValidationTimeout == 0 {
		cfg.ValidationTimeout = 10 * time.Second
	}
	if cfg.RateWindow == 0 {
		cfg.RateWindow = time.Hour
	}
	s := &Server{cfg: cfg, ra: cfg.RA, st: cfg.RA.Store(), log: cfg.Log, now: cfg.Now}
	s.v = newValidator(cfg)
	s.limit = newLimiter(cfg.OrdersPerAccount, cfg.OrdersPerName, cfg.RateWindow, cfg.Now)
	return s
}

// Handler returns the handler for everything under /acme/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /acme/{profile}/directory", s.directory)
	mux.HandleFunc("HEAD /acme/{profile}/new-nonce", s.newNonce)
	mux.HandleFunc("GET /acme/{profile}/new-nonce", s.newNonce)
	mux.HandleFunc("POST /acme/{profile}/new-account", s.post(modeJWK, s.newAccount))
	mux.HandleFunc("POST /acme/{profile}/new-order", s.post(modeKID, s.newOrder))
	mux.HandleFunc("POST /acme/{profile}/revoke-cert", s.post(modeEither, s.revokeCert))
	mux.HandleFunc("POST /acme/{profile}/key-change", s.post(modeKID, s.keyChange))
	mux.HandleFunc("POST /acme/{profile}/acct/{id}", s.post(modeKID, s.account))
	mux.HandleFunc("POST /acme/{profile}/acct/{id}/orders", s.post(modeKID, s.accountOrders))
	mux.HandleFunc("POST /acme/{profile}/order/{id}", s.post(modeKID, s.order))
	mux.HandleFunc("POST /acme/{profile}/order/{id}/finalize", s.post(modeKID, s.finalize))
	mux.HandleFunc("POST /acme/{profile}/authz/{id}", s.post(modeKID, s.authz))
	mux.HandleFunc("POST /acme/{profile}/chall/{id}", s.post(modeKID, s.challenge))
	mux.HandleFunc("POST /acme/{profile}/cert/{id}", s.post(modeKID, s.certificate))
	mux.HandleFunc("GET /acme/{profile}/renewal-info/{id}", s.renewalInfo)
	mux.HandleFunc("/acme/", func(w http.ResponseWriter, r *http.Request) {
		s.addNonce(w, r)
		writeProblem(w, notFound("no ACME resource %s %s", r.Method, r.URL.Path))
	})
	// A panic is a bug: log it and answer serverInternal rather than drop
	// the connection.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving ACME request", "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeProblem(w, serverInternal("internal error"))
			}
		}()
		mux.ServeHTTP(w, r)
	})
}

func baseURL(r *http.Request) string {
	return "https://" + r.Host + "/acme/" + r.PathValue("profile")
}

// settingsTTL bounds how long a replica serves a profile's ACME settings
// from memory: enabling, disabling or requiring EAB on another replica
// takes effect here within it.
const settingsTTL = 2 * time.Second

type cachedSettings struct {
	p    *store.ACMEProfile
	err  error
	read time.Time
}

// enabled returns the profile's ACME settings if ACME is on for it.
func (s *Server) enabled(ctx context.Context, profile string) (*store.ACMEProfile, error) {
	if v, ok := s.settings.Load(profile); ok {
		if c := v.(cachedSettings); s.now().Sub(c.read) < settingsTTL {
			return c.p, c.err
		}
	}
	p, err := s.readSettings(ctx, profile)
	if err == nil { // only enabled profiles: random names must not grow the cache
		s.settings.Store(profile, cachedSettings{p, err, s.now()})
	} else {
		s.settings.Delete(profile)
	}
	return p, err
}

func (s *Server) readSettings(ctx context.Context, profile string) (*store.ACMEProfile, error) {
	p, err := s.st.GetACMEProfile(ctx, profile)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !p.Enabled) {
		return nil, notFound("ACME is not enabled for profile %q", profile)
	}
	if err != nil {
		return nil, toProblem(err)
	}
	return p, nil
}

func (s *Server) directory(w http.ResponseWriter, r *http.Request) {
	p, err := s.enabled(r.Context(), r.PathValue("profile"))
	if err != nil {
		writeProblem(w, toProblem(err))
		return
	}
	b := baseURL(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"newNonce":    b + "/new-nonce",
		"newAccount":  b + "/new-account",
		"newOrder":    b + "/new-order",
		"revokeCert":  b + "/revoke-cert",
		"keyChange":   b + "/key-change",
		"renewalInfo": b + "/renewal-info",
		"meta": map[string]any{
			"externalAccountRequired": p.EABRequired,
			"website":                 "https://github.com/sigil-pki/sigil",
		},
	})
}

func (s *Server) newNonce(w http.ResponseWriter, r *http.Request) {
	if _, err := s.enabled(r.Context(), r.PathValue("profile")); err != nil {
		writeProblem(w, toProblem(err))
		return
	}
	if !s.addNonce(w, r) {
		writeProblem(w, serverInternal("no nonce key"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodGet {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// addNonce sets Replay-Nonce and the directory link, as every ACME
// response carries them (errors included).
func (s *Server) addNonce(w http.ResponseWriter, r *http.Request) bool {
	if p := r.PathValue("profile"); p != "" {
		w.Header().Add("Link", `<`+baseURL(r)+`/directory>;rel="index"`)
	}
	n, err := s.nonces(r.Context())
	if err != nil {
		s.log.Error("ACME nonce key unavailable", "err", err)
		return false
	}
	w.Header().Set("Replay-Nonce", n.make())
	return true
}

// nonceSecret names the shared nonce HMAC key in acme_secrets.
const nonceSecret = "nonce-hmac"

var nonceAD = []byte("sigil-acme-nonce-hmac")

// nonces loads (or creates, once across replicas) the shared nonce key.
func (s *Server) nonces(ctx context.Context) (*nonces, error) {
	s.nonceMu.Lock()
	defer s.nonceMu.Unlock()
	if s.nonce != nil {
		return s.nonce, nil
	}
	sealed, err := s.st.GetACMESecret(ctx, nonceSecret)
	if errors.Is(err, store.ErrNotFound) {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		sl, serr := s.cfg.KEK.Seal(key, nonceAD)
		if serr != nil {
			return nil, serr
		}
		err = s.ra.ACMEChange(ctx, ra.Caller{}, "acme.secret.create", nonceSecret, nil, func(ctx context.Context, tx store.Tx) error {
			return tx.InsertACMESecret(ctx, nonceSecret, sl)
		})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
		sealed, err = s.st.GetACMESecret(ctx, nonceSecret)
	}
	if err != nil {
		return nil, err
	}
	key, err := s.cfg.KEK.Open(sealed, nonceAD)
	if err != nil {
		return nil, fmt.Errorf("opening the nonce key: %w", err)
	}
	s.nonce = &nonces{key: key, now: s.now}
	return s.nonce, nil
}

type authMode int

const (
	modeJWK    authMode = iota // newAccount: the key itself
	modeKID                    // an existing account
	modeEither                 // revokeCert: account or certificate key
)

// request is a verified ACME POST.
type request struct {
	r        *http.Request
	profile  string
	settings *store.ACMEProfile
	base     string
	url      string
	jws      *parsedJWS
	acct     *store.ACMEAccount // modeKID (and modeEither with kid)
	payload  []byte
	nonceExp time.Time
	caller   ra.Caller
}

// postAsGet reports a POST-as-GET (RFC 8555 §6.3): empty payload.
func (q *request) postAsGet() bool { return len(q.payload) == 0 && q.jws != nil }

// spend spends the request's nonce inside a transaction.
func (q *request) spend(ctx context.Context, tx store.Tx) error {
	if err := tx.UseACMENonce(ctx, q.jws.hdr.Nonce, q.nonceExp); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return badNonce("the nonce was already used")
		}
		return err
	}
	return nil
}

// response is what a handler answers.
type response struct {
	status   int
	body     any
	raw      []byte // instead of body, with ctype
	ctype    string
	location string
	links    []string
}

// handlerFunc handles a verified request. It must spend the nonce (through
// s.change or s.spendOnly) before answering.
type handlerFunc func(ctx context.Context, q *request) (*response, error)

// post verifies the JWS of a POST — content type, size, syntax, nonce,
// url, key — then runs h. Every refusal is audited and spends the nonce.
func (s *Server) post(mode authMode, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		profile := r.PathValue("profile")
		q := &request{r: r, profile: profile, base: baseURL(r), url: "https://" + r.Host + r.URL.Path, caller: ra.Caller{Protocol: "acme:" + profile}}
		resp, err := s.serve(ctx, q, mode, h)
		s.addNonce(w, r)
		if err != nil {
			p := toProblem(err)
			if p.Status >= 500 && p.Type == errNS+"serverInternal" && !errors.Is(err, p) {
				s.log.Error("ACME request failed", "path", r.URL.Path, "err", err)
			}
			action := "acme." + strings.SplitN(strings.TrimPrefix(r.URL.Path, "/acme/"+profile+"/"), "/", 2)[0]
			var spend func(context.Context, store.Tx) error
			if q.jws != nil && !q.nonceExp.IsZero() {
				spend = func(ctx context.Context, tx store.Tx) error {
					if err := tx.UseACMENonce(ctx, q.jws.hdr.Nonce, q.nonceExp); err != nil && !errors.Is(err, store.ErrConflict) {
						return err
					}
					return nil
				}
			}
			if aerr := s.ra.ACMERefused(ctx, q.caller, action, r.URL.Path, p, p.Status >= 500, spend); aerr != nil && !errors.Is(aerr, p) {
				p = toProblem(aerr)
			}
			w.Header().Set("Cache-Control", "no-store")
			writeProblem(w, p)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if resp.location != "" {
			w.Header().Set("Location", resp.location)
		}
		for _, l := range resp.links {
			w.Header().Add("Link", l)
		}
		if resp.raw != nil {
			w.Header().Set("Content-Type", resp.ctype)
			w.WriteHeader(resp.status)
			_, _ = w.Write(resp.raw)
			return
		}
		writeJSON(w, resp.status, resp.body)
	}
}

func (s *Server) serve(ctx context.Context, q *request, mode authMode, h handlerFunc) (*response, error) {
	ct := q.r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); strings.TrimSpace(strings.ToLower(mt)) != "application/jose+json" {
		return nil, prob("malformed", http.StatusUnsupportedMediaType, "Content-Type must be application/jose+json, not %q", ct)
	}
	settings, err := s.enabled(ctx, q.profile)
	if err != nil {
		return nil, err
	}
	q.settings = settings
	body, err := io.ReadAll(io.LimitReader(q.r.Body, maxBody+1))
	if err != nil {
		return nil, malformed("reading the body: %v", err)
	}
	if len(body) > maxBody {
		return nil, prob("malformed", http.StatusRequestEntityTooLarge, "the body is over the %d-byte limit", maxBody)
	}
	j, err := parseJWS(body, true)
	if err != nil {
		return nil, err
	}
	n, err := s.nonces(ctx)
	if err != nil {
		return nil, err
	}
	exp, ok := n.check(j.hdr.Nonce)
	if !ok {
		return nil, badNonce("the nonce is invalid or expired")
	}
	q.jws, q.nonceExp = j, exp
	if j.hdr.URL != q.url {
		return nil, unauthorized("the JWS url %q is not the request URL %q", j.hdr.URL, q.url)
	}
	switch {
	case mode == modeJWK && j.jwk == nil:
		return nil, malformed("this request must be signed with a jwk, not a kid")
	case mode == modeKID && j.jwk != nil:
		return nil, malformed("this request must be signed by an account (kid), not a jwk")
	}
	var key = j.jwk
	if j.hdr.KID != "" {
		acct, err := s.accountFromKID(ctx, q, j.hdr.KID)
		if err != nil {
			return nil, err
		}
		q.acct = acct
		q.caller = ra.ACMECaller(q.profile, acct.ID)
		if key, err = parseStoredJWK(acct.JWK); err != nil {
			return nil, err
		}
	}
	if q.payload, err = j.verify(key); err != nil {
		return nil, err
	}
	return h(ctx, q)
}

func (s *Server) accountFromKID(ctx context.Context, q *request, kid string) (*store.ACMEAccount, error) {
	id, ok := strings.CutPrefix(kid, q.base+"/acct/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, prob("accountDoesNotExist", http.StatusBadRequest, "kid %q is not an account URL of this directory", kid)
	}
	acct, err := s.st.GetACMEAccount(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && acct.Profile != q.profile) {
		return nil, prob("accountDoesNotExist", http.StatusBadRequest, "no account %q", kid)
	}
	if err != nil {
		return nil, toProblem(err)
	}
	if acct.Status != "valid" {
		return nil, unauthorized("account %s is %s", id, acct.Status)
	}
	return acct, nil
}

// change runs fn, spends the nonce and audits, in one transaction.
func (s *Server) change(ctx context.Context, q *request, action, object string, detail any, fn func(ctx context.Context, tx store.Tx) error) error {
	var ferr error // fn's own error, returned as it is (the RA would remap it)
	err := s.ra.ACMEChange(ctx, q.caller, action, object, detail, func(ctx context.Context, tx store.Tx) error {
		if ferr = q.spend(ctx, tx); ferr != nil {
			return ferr
		}
		if fn != nil {
			ferr = fn(ctx, tx)
		}
		return ferr
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// spendOnly spends the nonce of a read (POST-as-GET), with no audit event:
// reads are not state changes. Now and then it also purges expired nonces.
func (s *Server) spendOnly(ctx context.Context, q *request) error {
	var ferr error
	err := s.ra.ACMESpend(ctx, func(ctx context.Context, tx store.Tx) error {
		if ferr = q.spend(ctx, tx); ferr != nil {
			return ferr
		}
		var b [1]byte
		_, _ = rand.Read(b[:])
		if b[0] == 0 {
			if _, err := tx.PurgeACMENonces(ctx, s.now()); err != nil {
				return err
			}
			return s.limit.purge(ctx, tx)
		}
		return nil
	})
	if ferr != nil {
		return ferr
	}
	return err
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
