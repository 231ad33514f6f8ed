package acme_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/server"
)

// env is a real Sigil server (SQLite, CA, RA, HTTPS listener) with ACME
// enabled for profile "web", and a loopback HTTP server answering http-01.
type env struct {
	t       testing.TB
	srv     *server.Server
	dir     string
	api     string // https://127.0.0.1:port
	roots   *x509.CertPool
	http    *http.Client
	chall   *challServer
	profile string
}

type envOpts struct {
	eabRequired bool
	perAccount  int
	perName     int
	db          string
	httpPort    int // validated http-01 port; default: the test's challenge server
	tlsPort     int
	dnsResolver string
	dataDir     string // reuse (a second replica on the same database)
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	cs := newChallServer(t)
	dir := o.dataDir
	if dir == "" {
		dir = t.TempDir()
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	tlsPort := o.tlsPort
	if tlsPort == 0 {
		tlsPort = 1
	}
	httpPort := o.httpPort
	if httpPort == 0 {
		httpPort = cs.port
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{DataDir: dir, DB: o.db, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Dev: true, Log: log,
		ACME: server.ACMEConfig{Resolve: []string{"*.test=127.0.0.1", "app.test=127.0.0.1"}, HTTPPort: httpPort, TLSPort: tlsPort, DNSResolver: o.dnsResolver,
			OrdersPerAccount: o.perAccount, OrdersPerName: o.perName, RateWindow: time.Hour}})
	if err != nil {
		cancel()
		t.Fatalf("server.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	e := &env{t: t, srv: srv, dir: dir, api: srv.APIURL, chall: cs, profile: "web"}
	pem, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	e.roots = x509.NewCertPool()
	e.roots.AppendCertsFromPEM(pem)
	e.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots}, MaxIdleConnsPerHost: 64}}
	doc := &policy.Document{Profiles: []policy.Profile{{Name: "web", KeyTypes: []string{"ecdsa-p256", "ecdsa-p384", "rsa-2048", "ed25519"},
		DefaultTTL: policy.Duration(30 * 24 * time.Hour), MaxTTL: policy.Duration(90 * 24 * time.Hour), DNS: []string{"*.test", "*.wild.test"}, IPs: []string{"127.0.0.0/8", "::1/128"}, ExtKeyUsage: []string{"server_auth"}}}}
	if _, err := srv.RA().ApplyProfiles(t.Context(), ra.Caller{}, doc); err != nil {
		t.Fatalf("ApplyProfiles: %v", err)
	}
	if _, err := srv.RA().SetACMEProfile(t.Context(), ra.Caller{}, ra.ACMEProfileSettings{Profile: "web", Enabled: true, EABRequired: o.eabRequired}); err != nil {
		t.Fatalf("SetACMEProfile: %v", err)
	}
	return e
}

func (e *env) dirURL() string { return e.api + "/acme/" + e.profile + "/directory" }

// challServer answers http-01 requests from a token map.
type challServer struct {
	port int
	mu   sync.Mutex
	m    map[string]string
	hits map[string]int
}

func newChallServer(t testing.TB) *challServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs := &challServer{port: ln.Addr().(*net.TCPAddr).Port, m: map[string]string{}, hits: map[string]int{}}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/")
		cs.mu.Lock()
		ka, ok := cs.m[tok]
		cs.hits[tok]++
		cs.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, ka)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close() })
	return cs
}

func (cs *challServer) set(tok, ka string) {
	cs.mu.Lock()
	cs.m[tok] = ka
	cs.mu.Unlock()
}

// client is a minimal ACME client that builds every JWS by hand, so tests
// can also build wrong ones.
type client struct {
	e     *env
	key   *ecdsa.PrivateKey
	jwk   json.RawMessage
	tp    string
	kid   string
	nonce string
	dir   map[string]any
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newClient(t testing.TB, e *env) *client {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &client{e: e}
	c.setKey(key)
	resp, body := c.get(e.dirURL())
	if resp.StatusCode != 200 {
		t.Fatalf("directory: %d %s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &c.dir); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *client) setKey(key *ecdsa.PrivateKey) {
	c.key = key
	j := jose.JSONWebKey{Key: &key.PublicKey}
	c.jwk, _ = j.MarshalJSON()
	tp, _ := j.Thumbprint(crypto.SHA256)
	c.tp = b64(tp)
}

func (c *client) url(name string) string { return c.dir[name].(string) }

func (c *client) get(u string) (*http.Response, []byte) {
	c.e.t.Helper()
	resp, err := c.e.http.Get(u)
	if err != nil {
		c.e.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if n := resp.Header.Get("Replay-Nonce"); n != "" {
		c.nonce = n
	}
	return resp, b
}

func (c *client) freshNonce() string {
	if c.nonce == "" {
		req, _ := http.NewRequest(http.MethodHead, c.url("newNonce"), nil)
		resp, err := c.e.http.Do(req)
		if err != nil {
			c.e.t.Fatalf("newNonce: %v", err)
		}
		resp.Body.Close()
		c.nonce = resp.Header.Get("Replay-Nonce")
	}
	n := c.nonce
	c.nonce = ""
	return n
}

// signES256 signs the JWS signing input with an ECDSA P-256 key.
func signES256(key *ecdsa.PrivateKey, input string) []byte {
	d := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		panic(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// jws builds a flattened JWS; sign nil means ES256 with c.key.
func jws(hdr map[string]any, payload []byte, sign func(string) []byte) []byte {
	hb, _ := json.Marshal(hdr)
	p, pl := b64(hb), b64(payload)
	sig := sign(p + "." + pl)
	b, _ := json.Marshal(map[string]string{"protected": p, "payload": pl, "signature": b64(sig)})
	return b
}

func (c *client) header(u string) map[string]any {
	h := map[string]any{"alg": "ES256", "url": u, "nonce": c.freshNonce()}
	if c.kid != "" {
		h["kid"] = c.kid
	} else {
		h["jwk"] = c.jwk
	}
	return h
}

// post sends payload (nil: POST-as-GET; any: JSON) signed by c.
func (c *client) post(u string, payload any) (*http.Response, []byte) {
	c.e.t.Helper()
	return c.postRaw(u, jws(c.header(u), encode(payload), func(in string) []byte { return signES256(c.key, in) }))
}

func encode(payload any) []byte {
	switch p := payload.(type) {
	case nil:
		return nil
	case []byte:
		return p
	}
	b, _ := json.Marshal(payload)
	return b
}

func (c *client) postRaw(u string, body []byte) (*http.Response, []byte) {
	c.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/jose+json")
	resp, err := c.e.http.Do(req)
	if err != nil {
		c.e.t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if n := resp.Header.Get("Replay-Nonce"); n != "" {
		c.nonce = n
	}
	return resp, b
}

func (c *client) mustOK(what string, resp *http.Response, body []byte, v any) {
	c.e.t.Helper()
	if resp.StatusCode >= 300 {
		c.e.t.Fatalf("%s: %d %s", what, resp.StatusCode, body)
	}
	if v != nil && resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(body, v); err != nil {
			c.e.t.Fatalf("%s: %v", what, err)
		}
	}
}

func (c *client) register(extra map[string]any) {
	c.e.t.Helper()
	p := map[string]any{"termsOfServiceAgreed": true}
	for k, v := range extra {
		p[k] = v
	}
	resp, body := c.post(c.url("newAccount"), p)
	c.mustOK("newAccount", resp, body, nil)
	c.kid = resp.Header.Get("Location")
}

// eabBinding builds an externalAccountBinding for c's key.
func (c *client) eabBinding(kid, hmacB64 string) map[string]any {
	key, _ := base64.RawURLEncoding.DecodeString(hmacB64)
	hdr := map[string]any{"alg": "HS256", "kid": kid, "url": c.url("newAccount")}
	var m map[string]any
	_ = json.Unmarshal(jws(hdr, c.jwk, func(in string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(in))
		return h.Sum(nil)
	}), &m)
	return m
}

type orderResp struct {
	Status         string   `json:"status"`
	Authorizations []string `json:"authorizations"`
	Finalize       string   `json:"finalize"`
	Certificate    string   `json:"certificate"`
	Error          any      `json:"error"`
}

type authzResp struct {
	Status     string `json:"status"`
	Identifier struct {
		Value string `json:"value"`
	} `json:"identifier"`
	Challenges []struct {
		Type, URL, Token, Status string
	} `json:"challenges"`
}

func (c *client) newOrder(names ...string) (string, orderResp) {
	c.e.t.Helper()
	ids := []map[string]string{}
	for _, n := range names {
		ids = append(ids, map[string]string{"type": "dns", "value": n})
	}
	return c.newOrderIdents(ids...)
}

// newOrderIdents orders arbitrary identifiers ({"type": …, "value": …}).
func (c *client) newOrderIdents(ids ...map[string]string) (string, orderResp) {
	c.e.t.Helper()
	var o orderResp
	resp, body := c.post(c.url("newOrder"), map[string]any{"identifiers": ids})
	c.mustOK("newOrder", resp, body, &o)
	return resp.Header.Get("Location"), o
}

// solve answers every authorization of an order with http-01 (answer
// overrides the key authorization when not empty).
func (c *client) solve(o orderResp, answer string) {
	c.e.t.Helper()
	for _, az := range o.Authorizations {
		var a authzResp
		resp, body := c.post(az, nil)
		c.mustOK("authz", resp, body, &a)
		for _, ch := range a.Challenges {
			if ch.Type != "http-01" {
				continue
			}
			ka := ch.Token + "." + c.tp
			if answer != "" {
				ka = answer
			}
			c.e.chall.set(ch.Token, ka)
			resp, body = c.post(ch.URL, map[string]any{})
			c.mustOK("challenge", resp, body, nil)
		}
	}
}

func csrFor(t testing.TB, key crypto.Signer, cn string, names ...string) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// csrIPs is a CSR for IP addresses only (cn may be empty).
func csrIPs(t testing.TB, key crypto.Signer, cn string, ips ...string) []byte {
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	for _, s := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(s))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// obtain runs a whole order and returns the PEM chain.
func (c *client) obtain(names ...string) []byte {
	c.e.t.Helper()
	loc, o := c.newOrder(names...)
	c.solve(o, "")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	resp, body := c.post(o.Finalize, map[string]any{"csr": b64(csrFor(c.e.t, key, names[0], names...))})
	c.mustOK("finalize", resp, body, &o)
	if o.Status != "valid" {
		resp, body = c.post(loc, nil)
		c.mustOK("order", resp, body, &o)
	}
	resp, body = c.post(o.Certificate, nil)
	c.mustOK("certificate", resp, body, nil)
	return body
}

type problem struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
	Status int    `json:"status"`
}

func wantProblem(t testing.TB, what string, resp *http.Response, body []byte, typ string) {
	t.Helper()
	var p problem
	_ = json.Unmarshal(body, &p)
	if resp.Header.Get("Content-Type") != "application/problem+json" || p.Type != "urn:ietf:params:acme:error:"+typ {
		t.Fatalf("%s: want problem %s, got %d %s %s", what, typ, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp.Header.Get("Replay-Nonce") == "" {
		t.Errorf("%s: error response without Replay-Nonce", what)
	}
}

func randName(prefix string) string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1<<40))
	return prefix + strconv.FormatInt(n.Int64(), 36) + ".test"
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func itoa(n int) string              { return strconv.Itoa(n) }
func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
func readAll(r io.Reader) []byte     { b, _ := io.ReadAll(r); return b }
