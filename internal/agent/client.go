// Package agent is the runtime of `sigil agent`: it enrols a machine with a
// single-use join token (the key is generated here and never leaves the
// machine), keeps its certificates fresh over mTLS, deploys them atomically,
// runs the reload hook, and reacts to revocation. It talks to the server
// only over HTTPS and imports no server package.
package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ParseFingerprint accepts a SHA-256 fingerprint in hex, with or without
// colons, in any case (as `openssl x509 -fingerprint -sha256` or
// `sigil ca fingerprint` print it) and returns the 32 bytes.
func ParseFingerprint(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '='); i >= 0 { // "sha256 Fingerprint=AB:CD..."
		s = s[i+1:]
	}
	h := strings.ToLower(strings.ReplaceAll(s, ":", ""))
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("invalid root fingerprint %q: want the 64 hex digits of a SHA-256 (colons optional)", s)
	}
	return b, nil
}

// ErrFingerprint means the server's root does not match the pinned
// fingerprint: the agent refuses to talk to it.
var ErrFingerprint = errors.New("root fingerprint mismatch")

// Client speaks the agent endpoints of one server, trusting only Roots.
type Client struct {
	Server  string // https://host:port
	Roots   *x509.CertPool
	Timeout time.Duration // per request; default 30s
}

// FetchPinnedRoot fetches the server's roots and returns the one whose
// SHA-256 is fp, after checking that this very connection's certificate
// chains to it. Only a GET of the public roots is sent before that check.
func FetchPinnedRoot(ctx context.Context, server string, fp []byte) (*x509.Certificate, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("invalid server URL %q: want https://host:port", server)
	}
	tr := &http.Transport{
		// Verified below, against the pinned root, before anything else is sent.
		TLSClientConfig:   &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, //nolint:gosec
		DisableKeepAlives: true,
	}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(server, "/")+"/api/v1/agent/roots", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("contacting %s: %w", server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the roots from %s: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the roots from %s: HTTP %d", server, resp.StatusCode)
	}
	var root *x509.Certificate
	var seen []string
	for rest := body; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		sum := sha256.Sum256(b.Bytes)
		seen = append(seen, hex.EncodeToString(sum[:]))
		if bytes.Equal(sum[:], fp) {
			if root, err = x509.ParseCertificate(b.Bytes); err != nil {
				return nil, fmt.Errorf("parsing the pinned root: %w", err)
			}
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%w: %s offers roots %v, none has the fingerprint %x; refusing to talk to it", ErrFingerprint, server, seen, fp)
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return nil, fmt.Errorf("%w: no TLS certificate from %s", ErrFingerprint, server)
	}
	if err := verifyServer(resp.TLS.PeerCertificates, root, u.Hostname()); err != nil {
		return nil, fmt.Errorf("%w: the TLS certificate of %s does not chain to the pinned root: %v; refusing to talk to it", ErrFingerprint, server, err)
	}
	return root, nil
}

func verifyServer(peer []*x509.Certificate, root *x509.Certificate, host string) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	_, err := peer[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host})
	return err
}

// Issued is a certificate the server returned.
type Issued struct {
	Machine     string    `json:"machine"`
	Serial      string    `json:"serial"`
	NotAfter    time.Time `json:"not_after"`
	Certificate string    `json:"certificate"`
	Chain       string    `json:"chain"`
}

// Status is the server's view of the agent's certificate and machine.
type Status struct {
	Machine          string `json:"machine"`
	MachineState     string `json:"machine_state"`
	Serial           string `json:"serial"`
	CertStatus       string `json:"cert_status"`
	RevocationReason string `json:"revocation_reason,omitempty"`
	CurrentSerial    string `json:"current_serial"`
	RekeyAllowed     bool   `json:"rekey_allowed"`
	// RenewAllowed is nil from a server that does not say.
	RenewAllowed *bool `json:"renew_allowed,omitempty"`
}

// RemoteError is a refusal or failure the server reported (problem+json).
type RemoteError struct {
	Status int
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

func (e *RemoteError) Error() string {
	d := e.Detail
	if d == "" {
		d = http.StatusText(e.Status)
	}
	return fmt.Sprintf("server said %d: %s", e.Status, d)
}

// Permanent reports a refusal that retrying will not change (4xx other
// than 408 and 429).
func (e *RemoteError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// IsPermanent reports whether err is a permanent refusal by the server.
func IsPermanent(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Permanent()
}

// agentCurves is the key exchange the agent offers: X25519 alone. Go's
// default adds the X25519MLKEM768 hybrid, which protects a session's
// confidentiality against a future quantum computer; the agent's traffic
// has none to protect (a CSR, public certificates, its status, and at
// enrolment a join token already spent and expired by then), and the
// hybrid cost about an eighth of the server's CPU per renewal. Every
// renewal is a full handshake, so at fleet scale that is what matters.
var agentCurves = []tls.CurveID{tls.X25519}

// do sends one request on a fresh connection, presenting cert (if any) as
// the client certificate: the server authenticates each connection, so
// never reuse one made with a certificate that has since been replaced.
func (c *Client) do(ctx context.Context, method, path string, cert *tls.Certificate, body, out any) error {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.Roots, CurvePreferences: agentCurves}
	if cert != nil {
		tlsCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{
		TLSClientConfig: tlsCfg, DisableKeepAlives: true,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	defer tr.CloseIdleConnections()
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	hc := &http.Client{Transport: tr, Timeout: timeout}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Server, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("contacting %s: %w", c.Server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", c.Server, err)
	}
	if resp.StatusCode >= 300 {
		e := &RemoteError{Status: resp.StatusCode}
		_ = json.Unmarshal(data, e)
		return e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding the answer of %s: %w", c.Server, err)
		}
	}
	return nil
}

// Enroll sends a join token and a CSR.
func (c *Client) Enroll(ctx context.Context, joinToken string, csrPEM []byte) (*Issued, error) {
	var out Issued
	err := c.do(ctx, "POST", "/api/v1/agent/enroll", nil, map[string]string{"join_token": joinToken, "csr": string(csrPEM)}, &out)
	return &out, err
}

// Renew asks for the next certificate, authenticated by cert.
func (c *Client) Renew(ctx context.Context, cert *tls.Certificate, csrPEM []byte) (*Issued, error) {
	var out Issued
	err := c.do(ctx, "POST", "/api/v1/agent/renew", cert, map[string]string{"csr": string(csrPEM)}, &out)
	return &out, err
}

// Status asks what the server knows of cert and its machine.
func (c *Client) Status(ctx context.Context, cert *tls.Certificate) (*Status, error) {
	var out Status
	err := c.do(ctx, "GET", "/api/v1/agent/status", cert, nil, &out)
	return &out, err
}

// NewCSR makes a CSR for key naming names (DNS names or IP addresses);
// names[0] is the common name.
func NewCSR(key crypto.Signer, names []string) ([]byte, error) {
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: names[0]}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("creating the CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// CheckIssued parses an answer and checks it is for key and chains to roots.
func CheckIssued(out *Issued, key crypto.Signer, roots *x509.CertPool) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(out.Certificate))
	if b == nil {
		return nil, errors.New("the server returned no certificate")
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the server returned a bad certificate: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("the returned certificate is not for our key")
	}
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM([]byte(out.Chain))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("the returned certificate does not chain to the pinned root: %w", err)
	}
	return leaf, nil
}
