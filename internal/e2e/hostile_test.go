package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/client"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
)

// hostileKey makes a key, including kinds keys.GenerateKey refuses to make.
func hostileKey(t *testing.T, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "p224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "rsa1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	default:
		k, err = keys.GenerateKey(kind)
	}
	if err != nil {
		t.Fatalf("generating a %s key: %v", kind, err)
	}
	return k
}

// signCSR signs tmpl with key and returns DER.
func signCSR(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemCSR(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// csrFor is a P-256 CSR with CN cn and DNS SANs dns, plus extra extensions.
func csrFor(t *testing.T, cn string, dns []string, exts ...pkix.Extension) string {
	t.Helper()
	return pemCSR(signCSR(t, hostileKey(t, identity.KeyECDSAP256), &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}, DNSNames: dns, ExtraExtensions: exts}))
}

func manyNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("h%d.a.test", i)
	}
	return out
}

// smuggledExtensions are a CA's name constraints, AIA and CDP (non-critical),
// a critical keyUsage asking for keyCertSign, an anyExtendedKeyUsage and a
// bogus subject key identifier: all things a leaf must not get from a CSR.
func smuggledExtensions(t *testing.T) []pkix.Extension {
	t.Helper()
	key := hostileKey(t, identity.KeyECDSAP256)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true, IsCA: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		SubjectKeyId:          []byte("evil-subject-key-id"),
		PermittedDNSDomains:   []string{"evil.com"},
		OCSPServer:            []string{"http://evil.com/ocsp"},
		IssuingCertificateURL: []string{"http://evil.com/ca.crt"},
		CRLDistributionPoints: []string{"http://evil.com/ca.crl"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	var out []pkix.Extension
	for _, e := range cert.Extensions {
		switch e.Id.String() {
		case "2.5.29.30", "1.3.6.1.5.5.7.1.1", "2.5.29.31", "2.5.29.15", "2.5.29.37", "2.5.29.14":
			out = append(out, e)
		}
	}
	return out
}

// rawResult is an HTTP answer.
type rawResult struct {
	status int
	header http.Header
	body   []byte
}

// raw sends a request to the HTTPS API with an optional bearer token.
func (in *instance) raw(method, path, token string, body []byte) rawResult {
	in.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, in.api.BaseURL+path, rd)
	if err != nil {
		in.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := in.api.HTTP.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResult{resp.StatusCode, resp.Header, b}
}

// problem checks that r is a problem+json of status with a detail containing
// want (case-insensitive) and returns it.
func problem(t *testing.T, r rawResult, status int, want string) client.Problem {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d: %.300s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p client.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("body is not a problem: %v: %.300q", err, r.body)
	}
	if p.Status != r.status || p.Title == "" || p.Type == "" || p.Detail == "" {
		t.Errorf("incomplete problem %+v", p)
	}
	if !strings.Contains(strings.ToLower(p.Detail), strings.ToLower(want)) {
		t.Errorf("detail %q does not mention %q", p.Detail, want)
	}
	return p
}

// counts returns the number of stored certificates and of audit events for
// action (all results, refused ones).
func (in *instance) counts(action string) (certs, events, refused int) {
	in.t.Helper()
	ctx := context.Background()
	var cl struct{ Count int }
	if err := in.api.Do(ctx, "GET", "/api/v1/certificates?status=all", nil, &cl); err != nil {
		in.t.Fatal(err)
	}
	var al struct{ Items []struct{ Result string } }
	if err := in.api.Do(ctx, "GET", "/api/v1/audit?limit=100000&action="+action, nil, &al); err != nil {
		in.t.Fatal(err)
	}
	for _, e := range al.Items {
		if e.Result == "refused" {
			refused++
		}
	}
	return cl.Count, len(al.Items), refused
}

func issueBody(t *testing.T, req api.IssueRequest) []byte {
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileIssueRequests sends hostile issuance requests to the real
// server: each is refused with the right 4xx problem, nothing is stored, and
// every refusal is audited as refused.
func TestHostileIssueRequests(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	in.applyProfiles()

	web := func(csr string) []byte { return issueBody(t, api.IssueRequest{Profile: "web", CSR: csr}) }
	ok := csrFor(t, "a.test", []string{"a.test"})
	rsa16384, err := os.ReadFile("../ca/testdata/rsa16384.csr.pem")
	if err != nil {
		t.Fatal(err)
	}
	corrupt, _ := pem.Decode([]byte(ok))
	corrupt.Bytes[len(corrupt.Bytes)-1] ^= 0x55
	onePEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: bytes.Repeat([]byte{0x30}, 768<<10)})
	key := hostileKey(t, identity.KeyECDSAP256)
	withSANs := func(tmpl *x509.CertificateRequest) []byte { return web(pemCSR(signCSR(t, key, tmpl))) }

	const anyRefusal = -1
	cases := []struct {
		name    string
		body    []byte
		status  int    // anyRefusal: 400, 403 or 413 are all right
		rule    string // for 403
		detail  string
		audited bool // refused by the RA (the API layer refuses the others; both are audited)
	}{
		// Hostile CSRs: refused by ParseCSR, 400.
		{"CA:TRUE", web(csrFor(t, "a.test", []string{"a.test"}, pkix.Extension{
			Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: mustMarshal(t, struct{ IsCA bool }{true})})),
			400, "", "CA:TRUE", true},
		{"unknown critical extension", web(csrFor(t, "a.test", []string{"a.test"}, pkix.Extension{
			Id: asn1.ObjectIdentifier{1, 2, 3, 4, 5}, Critical: true, Value: []byte{5, 0}})),
			400, "", "1.2.3.4.5", true},
		{"RSA 16384", web(string(rsa16384)), 400, "", "too large", true},
		{"RSA 1024", web(pemCSR(signCSR(t, hostileKey(t, "rsa1024"), &x509.CertificateRequest{DNSNames: []string{"a.test"}}))),
			400, "", "too weak", true},
		{"P-224", web(pemCSR(signCSR(t, hostileKey(t, "p224"), &x509.CertificateRequest{DNSNames: []string{"a.test"}}))),
			400, "", "P-224", true},
		{"corrupted signature", web(string(pem.EncodeToMemory(corrupt))), 400, "", "signature does not verify", true},
		{"CSR is not a CSR", web("hello"), 400, "", "bad CSR", true},
		{"certificate instead of CSR", web(strings.ReplaceAll(ok, "CERTIFICATE REQUEST", "CERTIFICATE")), 400, "", "want CERTIFICATE REQUEST", true},
		{"trailing data after CSR", web(ok + "garbage"), 400, "", "after the PEM block", true},
		{"5,000 SANs (CSR over 64 KiB)", web(csrFor(t, "", manyNames(5000))), 400, "", "limit", true},
		{"10,000 SANs", web(csrFor(t, "", manyNames(10000))), anyRefusal, "", "limit", false},
		{"1 MB PEM CSR", web(string(onePEM)), 413, "", "limit", false},
		// Bad JSON: refused by the API layer before the RA, 400 or 413.
		{"malformed JSON", []byte(`{"profile":"web","csr":`), 400, "", "invalid JSON", false},
		{"unknown JSON field", []byte(`{"profile":"web","csr":"x","is_ca":true}`), 400, "", "unknown field", false},
		{"JSON with a second object", append(web(ok), web(ok)...), 400, "", "after the object", false},
		{"JSON with trailing ]", append(web(ok), ']'), 400, "", "after the object", false},
		{"empty body", []byte{}, 400, "", "invalid JSON", false},
		{"null body", []byte("null"), 400, "", "required", false},
		{"JSON array", []byte(`[]`), 400, "", "invalid JSON", false},
		{"deeply nested JSON", []byte(strings.Repeat("[", 10001) + strings.Repeat("]", 10001)), 400, "", "invalid JSON", false},
		{"wrong field type", []byte(`{"profile":["web"],"csr":"x"}`), 400, "", "invalid JSON", false},
		{"JSON over 256 KiB", []byte(`{"profile":"web","csr":"` + strings.Repeat("A", 300<<10) + `"}`), 413, "", "limit", false},
		{"missing CSR", []byte(`{"profile":"web"}`), 400, "", "required", false},
		{"unparseable TTL", issueBody(t, api.IssueRequest{Profile: "web", CSR: ok, TTL: "forever"}), 400, "", "invalid ttl", false},
		// Policy refusals, 403 with the rule; unknown profile, 404.
		{"name outside the profile", web(csrFor(t, "evil.com", []string{"evil.com"})), 403, "dns", "evil.com", true},
		{"one bad name among good ones", web(csrFor(t, "a.test", []string{"a.test", "www.evil.com"})), 403, "dns", "www.evil.com", true},
		{"IP outside the profile", withSANs(&x509.CertificateRequest{IPAddresses: []net.IP{net.ParseIP("8.8.8.8")}}), 403, "ips", "8.8.8.8", true},
		{"URI outside the profile", withSANs(&x509.CertificateRequest{URIs: []*url.URL{{Scheme: "spiffe", Host: "evil.com", Path: "/x"}}}), 403, "uris", "evil.com", true},
		{"email not allowed", withSANs(&x509.CertificateRequest{EmailAddresses: []string{"root@a.test"}}), 403, "emails", "root@a.test", true},
		{"no names", withSANs(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "a.test"}}), 403, "names", "names no", true},
		{"1,000 SANs (over max_names)", web(csrFor(t, "", manyNames(1000))), 403, "names", "at most", true},
		{"CommonName not among SANs", web(csrFor(t, "evil.com", []string{"a.test"})), 403, "names", "not among the requested names", true},
		{"CommonName with NUL", web(csrFor(t, "a.test\x00.evil.com", []string{"a.test"})), 403, "names", "common name", true},
		{"CommonName over 64 bytes", web(csrFor(t, strings.Repeat("a", 70)+".test", []string{"a.test"})), 403, "names", "longer than 64", true},
		{"key type outside the profile", web(pemCSR(signCSR(t, hostileKey(t, identity.KeyECDSAP521), &x509.CertificateRequest{DNSNames: []string{"a.test"}}))),
			403, "key_type", "ecdsa-p521", true},
		{"TTL over max_ttl", issueBody(t, api.IssueRequest{Profile: "web", CSR: ok, TTL: "9000h"}), 403, "ttl", "exceeds the maximum", true},
		{"negative TTL", issueBody(t, api.IssueRequest{Profile: "web", CSR: ok, TTL: "-1h"}), 403, "ttl", "negative", true},
		{"unknown profile", issueBody(t, api.IssueRequest{Profile: "nope", CSR: ok}), 404, "", `"nope" does not exist`, true},
		{"profile name with traversal", issueBody(t, api.IssueRequest{Profile: "../../etc/passwd", CSR: ok}), 404, "", "does not exist", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			certs0, _, refused0 := in.counts("cert.issue")
			r := in.raw("POST", "/api/v1/certificates", in.token, tc.body)
			// Every refusal is audited, whether the API layer or the RA refused.
			status, audited := tc.status, true
			if status == anyRefusal {
				if r.status != 400 && r.status != 403 && r.status != 413 {
					t.Fatalf("status %d, want 400, 403 or 413: %s", r.status, r.body)
				}
				status = r.status
			}
			p := problem(t, r, status, tc.detail)
			if p.Rule != tc.rule {
				t.Errorf("rule %q, want %q", p.Rule, tc.rule)
			}
			certs1, _, refused1 := in.counts("cert.issue")
			if certs1 != certs0 {
				t.Errorf("certificates stored: %d → %d", certs0, certs1)
			}
			if want := refused0 + map[bool]int{true: 1}[audited]; refused1 != want {
				t.Errorf("refused cert.issue audit events: %d → %d, want %d", refused0, refused1, want)
			}
		})
	}

	// The Go client surfaces the same problem.
	err = in.api.Do(context.Background(), "POST", "/api/v1/certificates", api.IssueRequest{Profile: "web", CSR: csrFor(t, "evil.com", []string{"evil.com"})}, nil)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 403 || ce.Problem.Rule != "dns" || !strings.Contains(ce.Problem.Detail, "evil.com") {
		t.Errorf("client error %#v", err)
	}

	// After all that the server is healthy and still issues.
	if err := in.api.Do(context.Background(), "GET", "/healthz", nil, nil); err != nil {
		t.Fatalf("unhealthy after hostile requests: %v", err)
	}
	var issued api.IssueResponse
	if err := in.api.Do(context.Background(), "POST", "/api/v1/certificates", api.IssueRequest{Profile: "web", CSR: ok}, &issued); err != nil {
		t.Fatalf("issuing after hostile requests: %v", err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCSRExtensionsNotCopied: a CSR carrying a CA's extensions (non-critical
// name constraints, AIA, CDP; keyUsage keyCertSign; anyExtendedKeyUsage; a
// subject key ID), CA:FALSE, a rich subject and an upper-case CN is issued,
// but the certificate is built by the server: its own AIA/CDP, no name
// constraints, CA:FALSE, its own key usage, and a subject of the CN only.
func TestCSRExtensionsNotCopied(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	in.applyProfiles()
	exts := append(smuggledExtensions(t), pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Value: mustMarshal(t, struct{}{})})
	csr := pemCSR(signCSR(t, hostileKey(t, identity.KeyECDSAP256), &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: "A.TEST", Organization: []string{"Evil Corp"}, OrganizationalUnit: []string{"CA"}, Country: []string{"XX"}},
		DNSNames:        []string{"a.test"},
		ExtraExtensions: exts,
	}))
	var issued api.IssueResponse
	if err := in.api.Do(context.Background(), "POST", "/api/v1/certificates", api.IssueRequest{Profile: "web", CSR: csr}, &issued); err != nil {
		t.Fatalf("issue: %v", err)
	}
	blk, _ := pem.Decode([]byte(issued.PEM))
	if blk == nil {
		t.Fatal("no certificate PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	base := in.srv.PublicURL
	one := func(what string, got []string) {
		if len(got) != 1 || !strings.HasPrefix(got[0], base+"/") || strings.Contains(got[0], "evil") {
			t.Errorf("%s = %v, want one URL under %s", what, got, base)
		}
	}
	one("OCSP", c.OCSPServer)
	one("issuer URL", c.IssuingCertificateURL)
	one("CRL", c.CRLDistributionPoints)
	if len(c.PermittedDNSDomains)+len(c.ExcludedDNSDomains)+len(c.PermittedIPRanges)+len(c.PermittedURIDomains) != 0 || c.PermittedDNSDomainsCritical {
		t.Errorf("name constraints copied: %v", c.PermittedDNSDomains)
	}
	if !c.BasicConstraintsValid || c.IsCA {
		t.Errorf("basic constraints: valid %v CA %v", c.BasicConstraintsValid, c.IsCA)
	}
	if c.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		t.Errorf("key usage copied: %v", c.KeyUsage)
	}
	for _, u := range c.ExtKeyUsage {
		if u != x509.ExtKeyUsageServerAuth && u != x509.ExtKeyUsageClientAuth {
			t.Errorf("extended key usage %v not from the profile", u)
		}
	}
	if bytes.Equal(c.SubjectKeyId, []byte("evil-subject-key-id")) {
		t.Error("subject key identifier copied from the CSR")
	}
	if got := c.Subject.String(); got != "CN=a.test" {
		t.Errorf("subject %q, want CN=a.test only", got)
	}
	allowed := map[string]bool{"2.5.29.15": true, "2.5.29.37": true, "2.5.29.19": true, "2.5.29.35": true,
		"2.5.29.17": true, "1.3.6.1.5.5.7.1.1": true, "2.5.29.31": true, "2.5.29.14": true}
	for _, e := range c.Extensions {
		if !allowed[e.Id.String()] {
			t.Errorf("unexpected extension %s in the certificate", e.Id)
		}
	}
}

// TestHostilePaths: garbage in paths and credentials gets a problem, never a 500.
func TestHostilePaths(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	cases := []struct {
		name, method, path, token string
		body                      []byte
		status                    int
		detail                    string
	}{
		{"serial with traversal", "GET", "/api/v1/certificates/..%2f..%2fetc", in.token, nil, 400, "invalid serial"},
		{"serial not hex", "GET", "/api/v1/certificates/zz", in.token, nil, 400, "invalid serial"},
		{"serial too long", "GET", "/api/v1/certificates/" + strings.Repeat("f", 200), in.token, nil, 400, "invalid serial"},
		{"serial never issued", "GET", "/api/v1/certificates/deadbeef", in.token, nil, 404, "not found"},
		{"revoke bad serial", "POST", "/api/v1/certificates/zz/revoke", in.token, nil, 400, "invalid serial"},
		{"revoke bad reason", "POST", "/api/v1/certificates/deadbeef/revoke", in.token, []byte(`{"reason":"because"}`), 400, "because"},
		{"revoke garbage body", "POST", "/api/v1/certificates/deadbeef/revoke", in.token, []byte(`{"reason":`), 400, "invalid JSON"},
		{"list bad status", "GET", "/api/v1/certificates?status=evil", in.token, nil, 400, "unknown status"},
		{"list bad limit", "GET", "/api/v1/certificates?limit=-1", in.token, nil, 400, "invalid limit"},
		{"unknown endpoint", "GET", "/api/v1/etc/passwd", in.token, nil, 404, "no API endpoint"},
		{"no token", "POST", "/api/v1/certificates", "", []byte(`{}`), 401, "token is required"},
		{"garbage token", "POST", "/api/v1/certificates", "garbage", []byte(`{}`), 401, "invalid"},
		{"huge garbage token", "GET", "/api/v1/certificates", strings.Repeat("x", 16<<10), nil, 401, "invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, auth0, _ := in.counts("auth")
			r := in.raw(tc.method, tc.path, tc.token, tc.body)
			problem(t, r, tc.status, tc.detail)
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", r.header.Get("WWW-Authenticate"))
			}
			// A presented but invalid token is audited; no token at all is not.
			if _, auth1, _ := in.counts("auth"); tc.status == 401 && tc.token != "" && auth1 != auth0+1 {
				t.Errorf("auth audit events %d → %d, want one more", auth0, auth1)
			}
		})
	}
}

// TestHostileOCSP: garbage sent to the plain-HTTP OCSP responder gets an OCSP
// malformedRequest response, not a 500, and the server stays healthy.
func TestHostileOCSP(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	hc := &http.Client{Timeout: 30 * time.Second}
	junk := make([]byte, 1024)
	_, _ = rand.Read(junk)
	cases := []struct {
		name, method, path string
		body               []byte
	}{
		{"POST random bytes", "POST", "/ocsp", junk},
		{"POST empty", "POST", "/ocsp", []byte{}},
		{"POST 1 MB", "POST", "/ocsp", bytes.Repeat([]byte{0x30}, 1<<20)},
		{"GET not base64", "GET", "/ocsp/!!!", nil},
		{"GET empty", "GET", "/ocsp/", nil},
		{"GET base64 garbage", "GET", "/ocsp/AAAA", nil},
		{"GET over 8 KiB", "GET", "/ocsp/" + strings.Repeat("A", 9<<10), nil},
		{"GET escaped traversal", "GET", "/ocsp/..%2F..%2Fetc%2Fpasswd", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rd io.Reader
			if tc.body != nil {
				rd = bytes.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, in.srv.PublicURL+tc.path, rd)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/ocsp-request")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode >= 500 {
				t.Fatalf("status %d: %q", resp.StatusCode, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/ocsp-response" {
				t.Errorf("Content-Type %q", ct)
			}
			_, err = ocsp.ParseResponse(b, nil)
			var re ocsp.ResponseError
			if !errors.As(err, &re) || re.Status != ocsp.Malformed {
				t.Errorf("want an OCSP malformedRequest response, got %v (%x)", err, b)
			}
		})
	}
	for _, u := range []string{in.srv.PublicURL + "/healthz", in.srv.PublicURL + "/root.pem"} {
		httpGet(t, u)
	}
	if err := in.api.Do(context.Background(), "GET", "/healthz", nil, nil); err != nil {
		t.Fatalf("API unhealthy: %v", err)
	}
}

// TestCRLAliases: every CRL the public endpoint serves that verifies under
// an issuer lists that issuer's revoked certificates. The issuer ID aliases
// "default" and "" must not yield a validly signed CRL with no entries.
func TestCRLAliases(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	in.applyProfiles()
	ctx := context.Background()
	var issued api.IssueResponse
	if err := in.api.Do(ctx, "POST", "/api/v1/certificates", api.IssueRequest{Profile: "web", CSR: csrFor(t, "a.test", []string{"a.test"})}, &issued); err != nil {
		t.Fatal(err)
	}
	if err := in.api.Do(ctx, "POST", "/api/v1/certificates/"+string(issued.Serial)+"/revoke", api.RevokeRequest{Reason: "keyCompromise"}, nil); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(issued.Chain))
	issuer, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{issued.IssuerID, "default", ""} {
		t.Run("crl/"+id+".crl", func(t *testing.T) {
			resp, err := http.Get(in.srv.PublicURL + "/crl/" + id + ".crl")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == 404 {
				return // refusing the alias is fine
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			crl, err := x509.ParseRevocationList(b)
			if err != nil {
				t.Fatal(err)
			}
			if crl.CheckSignatureFrom(issuer) != nil {
				return // not this issuer's: cannot hide its revocations
			}
			for _, e := range crl.RevokedCertificateEntries {
				if identity.SerialFromBig(e.SerialNumber) == issued.Serial {
					return
				}
			}
			t.Errorf("a CRL signed by issuer %s omits revoked serial %s (%d entries, number %v)", issued.IssuerID, issued.Serial, len(crl.RevokedCertificateEntries), crl.Number)
		})
	}
}
