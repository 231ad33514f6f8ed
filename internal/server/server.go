// Package server is the composition root of `sigil server`: it opens the
// store, loads or creates the CA, wires the RA and the API, runs the
// listeners and the background tasks.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sigil-pki/sigil/internal/acme"
	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/lint"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/postgres"
	"github.com/sigil-pki/sigil/internal/store/sqlite"
)

// Config is the server's configuration.
type Config struct {
	DataDir    string
	Listen     string // HTTPS: API
	HTTPListen string // plain HTTP: CRL, OCSP, CA certificates
	PublicURL  string // base URL of the plain-HTTP listener as clients reach it; default from HTTPListen
	// DB selects the store: empty for SQLite at <data>/sigil.db,
	// "sqlite:PATH", or a postgres:// DSN.
	DB  string
	Dev bool

	KEKFile       string
	KEK           string
	KEKPassphrase string

	CAKeyType string
	CAName    string
	TLSNames  []string // extra names for the server's own certificate
	// PprofListen, when set, serves net/http/pprof there (loopback only
	// advised): the profiles behind docs/benchmarks.md.
	PprofListen string
	// BackgroundInterval is how often the background-job leader runs the
	// cluster-wide jobs (CRL refresh) and every server checks its TLS
	// certificate; default 1m.
	BackgroundInterval time.Duration
	// Monitor configures findings, webhooks and audit sinks (monitor.go).
	Monitor MonitorConfig
	// ACME: the /acme/ directories' validation network and limits (acme.go).
	ACME ACMEConfig

	Log *slog.Logger
	Out io.Writer // where the start-up banner goes
}

// Server is a running Sigil control plane.
type Server struct {
	cfg   Config
	store store.Store
	ra    *ra.RA
	log   *slog.Logger

	apiLn, httpLn net.Listener
	tlsCert       atomic.Pointer[tls.Certificate]
	tlsNotAfter   atomic.Int64 // unix time at which to renew (not the certificate's NotAfter)
	leader        atomic.Bool  // holds the background-job lease (tasks.go)
	monitor       *monitor     // findings, webhooks, audit sinks (monitor.go)
	acme          *acme.Server // serves /acme/ on the HTTPS listener (acme.go)

	// APIURL and PublicURL are where the listeners ended up (useful with port 0).
	APIURL, PublicURL string
}

// Migrate opens the configured store, which applies pending schema
// migrations (under a lock on PostgreSQL, so replicas may race), and closes it.
func Migrate(ctx context.Context, cfg Config) error {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	return st.Close()
}

// openStore opens the configured store. Several servers may share one
// PostgreSQL database; SQLite is for one server.
func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	switch {
	case strings.HasPrefix(cfg.DB, "postgres://"), strings.HasPrefix(cfg.DB, "postgresql://"):
		return postgres.Open(ctx, cfg.DB)
	case cfg.DB == "":
		return sqlite.Open(ctx, filepath.Join(cfg.DataDir, "sigil.db"))
	case strings.HasPrefix(cfg.DB, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(cfg.DB, "sqlite:"))
	}
	return nil, fmt.Errorf("unsupported --db %q: use sqlite:PATH or postgres://...", redactDSN(cfg.DB))
}

// redactDSN hides a password in a DSN for error messages.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return dsn
}

func randRead(b []byte) (int, error) { return rand.Read(b) }

// New prepares a server: data directory, store, CA, admin token, listeners.
// It binds the listeners (so port 0 works) but serves nothing until Run.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.CAKeyType == "" {
		cfg.CAKeyType = identity.KeyECDSAP256
	}
	if cfg.CAName == "" {
		cfg.CAName = "Sigil"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.apiLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	if s.httpLn, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.HTTPListen, err)
	}
	s.APIURL = "https://" + s.apiLn.Addr().String()
	s.PublicURL = cfg.PublicURL
	if s.PublicURL == "" {
		s.PublicURL = "http://" + s.httpLn.Addr().String()
	}
	kek, err := loadKEK(&cfg)
	if err != nil {
		return nil, err
	}
	backend, err := keys.NewFileBackend(filepath.Join(cfg.DataDir, "keys"), kek)
	if err != nil {
		return nil, err
	}
	if s.store, err = openStore(ctx, cfg); err != nil {
		return nil, err
	}
	urls := ca.URLs{Base: s.PublicURL}
	// First start creates the CA and the admin token. Servers sharing a store
	// take turns here, so only the first of several starting at once on an
	// empty database creates them and the others load them.
	if l, ok := s.store.(store.Leaser); ok {
		bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		lease, err := l.Lead(bctx, "bootstrap")
		cancel()
		if err != nil {
			return nil, fmt.Errorf("waiting for another server's first start to finish: %w", err)
		}
		defer lease.Release()
	}
	issuers, defaultID, err := ensureCA(ctx, &cfg, s.store, backend, urls)
	if err != nil {
		return nil, err
	}
	linter, err := lint.New()
	if err != nil {
		return nil, err
	}
	authority, err := ca.New(issuers, defaultID, linter, urls)
	if err != nil {
		return nil, err
	}
	if err := writeRootPEM(cfg.DataDir, issuers); err != nil {
		return nil, err
	}
	s.ra = ra.New(s.store, authority, s.log, time.Now)
	if err := s.setupMonitor(kek); err != nil {
		return nil, err
	}
	if err := s.setupACME(kek); err != nil {
		return nil, err
	}
	if err := ensureAdminToken(ctx, cfg.DataDir, s.store, s.ra); err != nil {
		return nil, err
	}
	if err := s.ensureTLSCert(ctx); err != nil {
		return nil, err
	}
	for _, iss := range issuers {
		if _, err := s.ra.CRL(ctx, iss.ID); err != nil {
			return nil, fmt.Errorf("publishing the CRL of %q: %w", iss.ID, err)
		}
	}
	return s, nil
}

// RA returns the registration authority (for in-process tests and tools).
func (s *Server) RA() *ra.RA { return s.ra }

// Store returns the store.
func (s *Server) Store() store.Store { return s.store }

// Run serves until ctx is cancelled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	a := &api.Server{RA: s.ra, Log: s.log, Now: time.Now, Ready: s.store.Ping, Leader: s.leader.Load}
	s.registerMonitorMetrics(a)
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Agents authenticate renewals with their certificate; the RA
		// verifies it (internal/ra/agent.go), so the handshake only asks.
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.tlsCert.Load(), nil
		},
	}
	apiSrv := &http.Server{Handler: s.withACME(a.APIHandler()), TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	pubSrv := &http.Server{Handler: a.PublicHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 4)
	if s.cfg.PprofListen != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		pp := &http.Server{Addr: s.cfg.PprofListen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = pp.ListenAndServe() }()
		defer pp.Close()
	}
	go func() { errc <- apiSrv.ServeTLS(s.apiLn, "", "") }()
	go func() { errc <- pubSrv.Serve(s.httpLn) }()
	tctx, stopTasks := context.WithCancel(ctx)
	defer stopTasks()
	go func() { errc <- s.runTasks(tctx) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
			err = nil
		}
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = apiSrv.Shutdown(shutCtx)
	_ = pubSrv.Shutdown(shutCtx)
	return err
}

// Close releases the store and listeners.
func (s *Server) Close() {
	if s.apiLn != nil {
		s.apiLn.Close()
	}
	if s.httpLn != nil {
		s.httpLn.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// writeRootPEM writes the trust anchors: every self-signed certificate at
// the top of an issuer's chain (more than one after importing another CA).
// renewTLSIfDue replaces the server's certificate once two thirds of its
// lifetime have passed; handshakes pick up the new one at once.
func (s *Server) renewTLSIfDue(ctx context.Context, now time.Time) error {
	if now.Unix() < s.tlsNotAfter.Load() {
		return nil
	}
	return s.ensureTLSCert(ctx)
}

func writeRootPEM(dir string, issuers []*ca.Issuer) error {
	var out []byte
	seen := map[string]bool{}
	for _, i := range issuers {
		top := i.Cert
		if len(i.Chain) > 0 {
			top = i.Chain[len(i.Chain)-1]
		}
		if string(top.RawIssuer) == string(top.RawSubject) && !seen[string(top.Raw)] {
			seen[string(top.Raw)] = true
			out = append(out, ca.PEM(top.Raw)...)
		}
	}
	if len(out) == 0 {
		return errors.New("no root certificate among the issuers")
	}
	return keys.WriteFileAtomic(filepath.Join(dir, "root.pem"), out, 0o644)
}

// Banner prints how to connect.
func (s *Server) Banner(w io.Writer) {
	root := filepath.Join(s.cfg.DataDir, "root.pem")
	fp := ""
	for _, i := range s.ra.CA().Issuers() {
		if len(i.Chain) == 0 {
			fp = identity.Fingerprint(i.Cert.Raw)
		}
	}
	fmt.Fprintf(w, `Sigil is running.
  API (HTTPS):        %s
  CRL, OCSP, CA certs: %s
  root certificate:   %s (sha256 %s)
  admin token:        %s
Connect with:
  export SIGIL_SERVER=%s SIGIL_TOKEN=$(cat %s) SIGIL_ROOT=%s
`, s.APIURL, s.PublicURL, root, fp, filepath.Join(s.cfg.DataDir, "admin.token"), s.APIURL, filepath.Join(s.cfg.DataDir, "admin.token"), root)
}
