package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sigil-pki/sigil/internal/client"
)

// ACMEOptions configure an ACME load run.
type ACMEOptions struct {
	Profile     string // the ACME directory is <server>/acme/<Profile>/directory
	Orders      int
	Concurrency int
	// HTTPListen is where this process answers http-01 (loopback); the
	// server must validate there: --acme-http-port with its port and
	// --acme-resolve mapping the names to its address.
	HTTPListen  string
	NamePattern string // fmt pattern with one %d, e.g. "acme-%d.test"
}

// ACMEResult is what an ACME run measured.
type ACMEResult struct {
	Orders        int           `json:"orders"`
	Errors        int           `json:"errors"`
	FirstError    string        `json:"first_error,omitempty"`
	Concurrency   int           `json:"concurrency"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	PerSecond     float64       `json:"orders_per_second"`
	P50, P90, P99 time.Duration `json:"-"`
	P50ms         float64       `json:"p50_ms"`
	P90ms         float64       `json:"p90_ms"`
	P99ms         float64       `json:"p99_ms"`
	Validations   int64         `json:"http01_requests"`    // http-01 fetches the server made
	ClientCPU     float64       `json:"client_cpu_seconds"` // this process (JWS, CSRs, TLS, http-01)
	ServerCPU     float64       `json:"server_cpu_seconds"` // -1 if unknown
	CPUPerOrderUS float64       `json:"server_cpu_us_per_order"`
	PerCoreSecond float64       `json:"orders_per_core_second"`
}

// ACME runs complete ACME orders against a running server, each as a new
// client would: new account, new order for one name, http-01 answered by
// this process, finalize with a CSR, certificate download. Latency is per
// complete order. Accounts are new per order, so the server's per-account
// rate limit does not apply; each order names a fresh name. The profile must
// not require External Account Binding (each key binds one account).
func ACME(ctx context.Context, c *client.Client, o ACMEOptions) (*ACMEResult, error) {
	if o.Orders <= 0 || o.Concurrency <= 0 {
		return nil, fmt.Errorf("orders and concurrency must be positive")
	}
	if o.NamePattern == "" {
		o.NamePattern = "acme-%d.test"
	}
	ln, err := net.Listen("tcp", o.HTTPListen)
	if err != nil {
		return nil, fmt.Errorf("http-01 listener: %w", err)
	}
	tokens := &tokenServer{m: map[string]string{}}
	hs := &http.Server{Handler: tokens, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	dirURL := c.BaseURL + "/acme/" + o.Profile + "/directory"
	var dir struct {
		NewNonce   string `json:"newNonce"`
		NewAccount string `json:"newAccount"`
		NewOrder   string `json:"newOrder"`
		Meta       struct {
			EAB bool `json:"externalAccountRequired"`
		} `json:"meta"`
	}
	if err := getJSON(ctx, c.HTTP, dirURL, &dir); err != nil {
		return nil, fmt.Errorf("ACME directory %s: %w (is ACME enabled for the profile? `sigil acme enable --profile %s`)", dirURL, err, o.Profile)
	}
	if dir.Meta.EAB {
		return nil, fmt.Errorf("profile %s requires External Account Binding: benchmark a profile without --eab-required", o.Profile)
	}
	// Warm the connections so TLS handshakes are not in the figures.
	var warm sync.WaitGroup
	for range o.Concurrency {
		warm.Go(func() { _ = getJSON(ctx, c.HTTP, dirURL, nil) })
	}
	warm.Wait()

	cpuBefore, cpuErr := serverCPU(ctx, c)
	selfBefore := selfCPU()
	lat := make([]time.Duration, o.Orders)
	var next, errs atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			w := &acmeWorker{http: c.HTTP, newNonce: dir.NewNonce, newAccount: dir.NewAccount, newOrder: dir.NewOrder, tokens: tokens, certKey: certKey}
			for {
				i := int(next.Add(1) - 1)
				if i >= o.Orders || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := w.order(ctx, fmt.Sprintf(o.NamePattern, i))
				lat[i] = time.Since(t0)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := &ACMEResult{Orders: o.Orders, Errors: int(errs.Load()), Concurrency: o.Concurrency, Elapsed: elapsed, ServerCPU: -1, Validations: tokens.hits.Load(),
		ClientCPU: selfCPU() - selfBefore}
	if v, ok := firstErr.Load().(string); ok {
		res.FirstError = v
		if res.Errors == 0 { // a worker could not even start
			res.Errors = o.Orders
		}
	}
	res.PerSecond = float64(o.Orders-res.Errors) / elapsed.Seconds()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	res.P50, res.P90, res.P99 = pct(0.50), pct(0.90), pct(0.99)
	res.P50ms, res.P90ms, res.P99ms = ms(res.P50), ms(res.P90), ms(res.P99)
	if cpuAfter, err := serverCPU(ctx, c); err == nil && cpuErr == nil {
		res.ServerCPU = cpuAfter - cpuBefore
		res.CPUPerOrderUS = res.ServerCPU / float64(o.Orders) * 1e6
		if res.ServerCPU > 0 {
			res.PerCoreSecond = float64(o.Orders) / res.ServerCPU
		}
	}
	return res, nil
}

// selfCPU is this process's user+system CPU time in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// tokenServer answers http-01 requests from the tokens of orders in flight.
type tokenServer struct {
	mu   sync.Mutex
	m    map[string]string
	hits atomic.Int64
}

func (t *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.hits.Add(1)
	tok, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	t.mu.Lock()
	ka, found := t.m[tok]
	t.mu.Unlock()
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	_, _ = io.WriteString(w, ka)
}

func (t *tokenServer) set(tok, ka string) {
	t.mu.Lock()
	t.m[tok] = ka
	t.mu.Unlock()
}

func (t *tokenServer) del(tok string) {
	t.mu.Lock()
	delete(t.m, tok)
	t.mu.Unlock()
}

// acmeWorker is one simulated ACME client, building its JWS by hand (ES256).
type acmeWorker struct {
	http                           *http.Client
	newNonce, newAccount, newOrder string
	tokens                         *tokenServer
	certKey                        *ecdsa.PrivateKey

	key   *ecdsa.PrivateKey
	jwk   map[string]string
	tp    string
	kid   string
	nonce string
}

var b64 = base64.RawURLEncoding

func (w *acmeWorker) order(ctx context.Context, name string) error {
	// A new account.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	w.key, w.kid = key, ""
	pt, err := key.PublicKey.Bytes() // 0x04 ‖ x ‖ y
	if err != nil {
		return err
	}
	w.jwk = map[string]string{"crv": "P-256", "kty": "EC", "x": b64.EncodeToString(pt[1:33]), "y": b64.EncodeToString(pt[33:65])}
	// RFC 7638: the required members in lexicographic order, no spaces.
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + w.jwk["x"] + `","y":"` + w.jwk["y"] + `"}`))
	w.tp = b64.EncodeToString(sum[:])
	resp, _, err := w.post(ctx, w.newAccount, map[string]any{"termsOfServiceAgreed": true}, nil)
	if err != nil {
		return fmt.Errorf("newAccount: %w", err)
	}
	w.kid = resp.Header.Get("Location")

	var ord struct {
		Status         string   `json:"status"`
		Authorizations []string `json:"authorizations"`
		Finalize       string   `json:"finalize"`
		Certificate    string   `json:"certificate"`
	}
	resp, _, err = w.post(ctx, w.newOrder, map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": name}}}, &ord)
	if err != nil {
		return fmt.Errorf("newOrder %s: %w", name, err)
	}
	orderURL := resp.Header.Get("Location")
	for _, az := range ord.Authorizations {
		var a struct {
			Challenges []struct {
				Type, URL, Token string
			} `json:"challenges"`
		}
		if _, _, err := w.post(ctx, az, nil, &a); err != nil {
			return fmt.Errorf("authorization: %w", err)
		}
		i := slices.IndexFunc(a.Challenges, func(c struct{ Type, URL, Token string }) bool { return c.Type == "http-01" })
		if i < 0 {
			return fmt.Errorf("authorization for %s offers no http-01 challenge", name)
		}
		ch := a.Challenges[i]
		w.tokens.set(ch.Token, ch.Token+"."+w.tp)
		var st struct {
			Status string `json:"status"`
			Error  any    `json:"error"`
		}
		_, _, err := w.post(ctx, ch.URL, map[string]any{}, &st)
		w.tokens.del(ch.Token)
		if err != nil {
			return fmt.Errorf("http-01 challenge: %w", err)
		}
		if st.Status != "valid" {
			return fmt.Errorf("http-01 challenge for %s is %s: %v (does the server validate on this process's --http-listen? --acme-http-port and --acme-resolve)", name, st.Status, st.Error)
		}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, w.certKey)
	if err != nil {
		return err
	}
	if _, _, err := w.post(ctx, ord.Finalize, map[string]string{"csr": b64.EncodeToString(csr)}, &ord); err != nil {
		return fmt.Errorf("finalize: %w", err)
	}
	// Validation and issuance are synchronous in Sigil; poll as a client
	// would if the order is still processing.
	for tries := 0; ord.Status == "processing" && tries < 50; tries++ {
		time.Sleep(20 * time.Millisecond)
		if _, _, err := w.post(ctx, orderURL, nil, &ord); err != nil {
			return fmt.Errorf("order: %w", err)
		}
	}
	if ord.Status != "valid" || ord.Certificate == "" {
		return fmt.Errorf("order for %s is %s after finalize", name, ord.Status)
	}
	_, body, err := w.post(ctx, ord.Certificate, nil, nil)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if !bytes.Contains(body, []byte("-----BEGIN CERTIFICATE-----")) {
		return fmt.Errorf("certificate download is not PEM")
	}
	return nil
}

// post sends a JWS (payload nil: POST-as-GET) and decodes a JSON answer
// into v. A badNonce is retried once with the fresh nonce, as clients do.
func (w *acmeWorker) post(ctx context.Context, u string, payload, v any) (*http.Response, []byte, error) {
	var pl []byte
	if payload != nil {
		var err error
		if pl, err = json.Marshal(payload); err != nil {
			return nil, nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		resp, body, err := w.postOnce(ctx, u, pl)
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode >= 300 {
			var p struct{ Type, Detail string }
			_ = json.Unmarshal(body, &p)
			if p.Type == "urn:ietf:params:acme:error:badNonce" && attempt == 0 {
				continue
			}
			return resp, body, fmt.Errorf("%d %s: %s", resp.StatusCode, strings.TrimPrefix(p.Type, "urn:ietf:params:acme:error:"), p.Detail)
		}
		if v != nil {
			if err := json.Unmarshal(body, v); err != nil {
				return resp, body, fmt.Errorf("decoding %s: %w", u, err)
			}
		}
		return resp, body, nil
	}
}

func (w *acmeWorker) postOnce(ctx context.Context, u string, payload []byte) (*http.Response, []byte, error) {
	if w.nonce == "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, w.newNonce, nil)
		if err != nil {
			return nil, nil, err
		}
		resp, err := w.http.Do(req)
		if err != nil {
			return nil, nil, err
		}
		resp.Body.Close()
		if w.nonce = resp.Header.Get("Replay-Nonce"); w.nonce == "" {
			return nil, nil, errors.New("newNonce gave no Replay-Nonce")
		}
	}
	hdr := map[string]any{"alg": "ES256", "nonce": w.nonce, "url": u}
	if w.kid != "" {
		hdr["kid"] = w.kid
	} else {
		hdr["jwk"] = w.jwk
	}
	w.nonce = ""
	hb, err := json.Marshal(hdr)
	if err != nil {
		return nil, nil, err
	}
	prot, pl := b64.EncodeToString(hb), b64.EncodeToString(payload)
	d := sha256.Sum256([]byte(prot + "." + pl))
	r, s, err := ecdsa.Sign(rand.Reader, w.key, d[:])
	if err != nil {
		return nil, nil, err
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	body, err := json.Marshal(map[string]string{"protected": prot, "payload": pl, "signature": b64.EncodeToString(sig[:])})
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/jose+json")
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	w.nonce = resp.Header.Get("Replay-Nonce")
	return resp, b, err
}

// getJSON GETs u and decodes JSON into v (nil: discard).
func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}
