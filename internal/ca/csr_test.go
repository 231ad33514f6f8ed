package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
)

// Test keys are costly to make (RSA), so each kind is made once per process.
var (
	testKeysMu sync.Mutex
	testKeys   = map[string]crypto.Signer{}
)

func testKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k, ok := testKeys[kind]; ok {
		return k
	}
	var k crypto.Signer
	var err error
	switch kind {
	case "p224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "rsa1024":
		// Go still generates and signs with 1024-bit keys (rsa1024min only
		// refuses smaller ones), so no openssl is needed here.
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown test key kind %q", kind)
	}
	if err != nil {
		t.Fatalf("generating %s key: %v", kind, err)
	}
	testKeys[kind] = k
	return k
}

// csrDER signs a CSR for names with a key of kind; exts become ExtraExtensions.
func csrDER(t testing.TB, kind string, names []string, exts ...pkix.Extension) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: names[0]}, DNSNames: names, ExtraExtensions: exts}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, testKey(t, kind))
	if err != nil {
		t.Fatalf("creating %s CSR: %v", kind, err)
	}
	return der
}

func csrPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func mustASN1(t testing.TB, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// corruptSignature flips the last byte of the DER: the end of the signature
// BIT STRING. The encoding stays valid; only the signature is wrong.
func corruptSignature(der []byte) []byte {
	out := bytes.Clone(der)
	out[len(out)-1] ^= 0x55
	return out
}

// caExtensions returns the name constraints, AIA and CDP extensions of a
// throwaway CA certificate, for CSRs that try to smuggle them in.
func caExtensions(t testing.TB) []pkix.Extension {
	t.Helper()
	key := testKey(t, "p256")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
		PermittedDNSDomains:   []string{"evil.com"},
		OCSPServer:            []string{"http://evil.com/ocsp"},
		IssuingCertificateURL: []string{"http://evil.com/ca.crt"},
		CRLDistributionPoints: []string{"http://evil.com/ca.crl"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	var out []pkix.Extension
	for _, e := range cert.Extensions {
		switch e.Id.String() {
		case "2.5.29.30", "1.3.6.1.5.5.7.1.1", "2.5.29.31":
			out = append(out, e)
		}
	}
	if len(out) != 3 {
		t.Fatalf("got %d of the 3 CA extensions", len(out))
	}
	return out
}

var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidNameConstraints  = asn1.ObjectIdentifier{2, 5, 29, 30}
	oidUnknown          = asn1.ObjectIdentifier{1, 2, 3, 4, 5}
	asn1Null            = []byte{0x05, 0x00}
)

func TestParseCSRAccepts(t *testing.T) {
	names := []string{"a.test", "b.test"}
	cases := []struct {
		name, kind, want string
		pem              bool
	}{
		{"p256 PEM", "p256", identity.KeyECDSAP256, true},
		{"p256 DER", "p256", identity.KeyECDSAP256, false},
		{"p384 PEM", "p384", identity.KeyECDSAP384, true},
		{"p384 DER", "p384", identity.KeyECDSAP384, false},
		{"p521 PEM", "p521", identity.KeyECDSAP521, true},
		{"rsa2048 PEM", "rsa2048", identity.KeyRSA2048, true},
		{"rsa2048 DER", "rsa2048", identity.KeyRSA2048, false},
		{"ed25519 PEM", "ed25519", identity.KeyEd25519, true},
		{"ed25519 DER", "ed25519", identity.KeyEd25519, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := csrDER(t, tc.kind, names)
			if tc.pem {
				in = csrPEM(in)
			}
			csr, err := ParseCSR(in)
			if err != nil {
				t.Fatalf("ParseCSR: %v", err)
			}
			if csr.KeyType != tc.want {
				t.Errorf("KeyType = %q, want %q", csr.KeyType, tc.want)
			}
			if got := csr.Request.DNSNames; len(got) != 2 || got[0] != "a.test" || got[1] != "b.test" {
				t.Errorf("DNSNames = %v", got)
			}
		})
	}

	// Accepted PEM variants.
	der := csrDER(t, "p256", names)
	variants := map[string][]byte{
		"NEW CERTIFICATE REQUEST": pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: der}),
		"surrounding whitespace":  append(append([]byte("\n\n  "), csrPEM(der)...), "\n\n\t "...),
		"CA:FALSE basicConstraints": csrPEM(csrDER(t, "p256", names,
			pkix.Extension{Id: oidBasicConstraints, Critical: true, Value: mustASN1(t, struct{}{})})),
		"unknown non-critical extension": csrPEM(csrDER(t, "p256", names,
			pkix.Extension{Id: oidUnknown, Value: asn1Null})),
	}
	for name, in := range variants {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseCSR(in); err != nil {
				t.Fatalf("ParseCSR: %v", err)
			}
		})
	}
}

// TestParseCSRIgnoresCAExtensions: non-critical name constraints, AIA and CDP
// in a CSR are not a reason to refuse it, but they stay in the request's
// Extensions only: the CA builds the certificate from a LeafRequest, which has
// no field for them (the e2e test checks the issued certificate).
func TestParseCSRIgnoresCAExtensions(t *testing.T) {
	exts := caExtensions(t)
	csr, err := ParseCSR(csrPEM(csrDER(t, "p256", []string{"a.test"}, exts...)))
	if err != nil {
		t.Fatalf("ParseCSR refused non-critical name constraints/AIA/CDP: %v", err)
	}
	seen := map[string]bool{}
	for _, e := range csr.Request.Extensions {
		seen[e.Id.String()] = true
	}
	for _, e := range exts {
		if !seen[e.Id.String()] {
			t.Errorf("extension %s not in the parsed request", e.Id)
		}
	}
}

// hostileCSRs are the inputs ParseCSR must refuse, with a word the error
// must contain so that the caller learns why.
func hostileCSRs(t testing.TB) []struct {
	name string
	in   []byte
	want string
} {
	t.Helper()
	names := []string{"a.test"}
	p256 := csrDER(t, "p256", names)
	big16384, err := os.ReadFile("testdata/rsa16384.csr.pem")
	if err != nil {
		t.Fatalf("reading the RSA-16384 CSR (made with `openssl genrsa 16384`): %v", err)
	}
	many := make([]string, 10000)
	for i := range many {
		many[i] = fmt.Sprintf("host%d.a.test", i)
	}
	tampered := bytes.Clone(p256)
	i := bytes.Index(tampered, []byte("a.test"))
	tampered[i] = 'b' // the CN now says b.test, the signature is over a.test
	var ncCritical pkix.Extension
	for _, e := range caExtensions(t) {
		if e.Id.Equal(oidNameConstraints) {
			ncCritical = e
			ncCritical.Critical = true
		}
	}
	return []struct {
		name string
		in   []byte
		want string
	}{
		{"basicConstraints CA:TRUE", csrPEM(csrDER(t, "p256", names,
			pkix.Extension{Id: oidBasicConstraints, Critical: true, Value: mustASN1(t, struct{ IsCA bool }{true})})), "CA:TRUE"},
		{"non-critical CA:TRUE", csrPEM(csrDER(t, "p256", names,
			pkix.Extension{Id: oidBasicConstraints, Value: mustASN1(t, struct{ IsCA bool }{true})})), "CA:TRUE"},
		{"garbage basicConstraints", csrPEM(csrDER(t, "p256", names,
			pkix.Extension{Id: oidBasicConstraints, Value: []byte{0xff, 0x01}})), "CA:TRUE"},
		{"unknown critical extension", csrPEM(csrDER(t, "p256", names,
			pkix.Extension{Id: oidUnknown, Critical: true, Value: asn1Null})), "unknown critical extension 1.2.3.4.5"},
		{"critical name constraints", csrPEM(csrDER(t, "p256", names, ncCritical)), "2.5.29.30"},
		{"RSA 16384", big16384, "too large"},
		{"RSA 1024", csrPEM(csrDER(t, "rsa1024", names)), "too weak"},
		{"P-224", csrPEM(csrDER(t, "p224", names)), "P-224"},
		{"corrupted P-256 signature", csrPEM(corruptSignature(p256)), "signature does not verify"},
		{"corrupted RSA signature", corruptSignature(csrDER(t, "rsa2048", names)), "signature does not verify"},
		{"corrupted Ed25519 signature", csrPEM(corruptSignature(csrDER(t, "ed25519", names))), "signature does not verify"},
		{"tampered subject", csrPEM(tampered), "signature does not verify"},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p256}), "want CERTIFICATE REQUEST"},
		{"private key PEM", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "want CERTIFICATE REQUEST"},
		{"trailing garbage after PEM", append(csrPEM(p256), "garbage"...), "after the PEM block"},
		{"two PEM blocks", append(csrPEM(p256), csrPEM(p256)...), "after the PEM block"},
		{"truncated PEM", csrPEM(p256)[:100], "malformed PEM"},
		{"PEM with bad base64", []byte("-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n"), "malformed PEM"},
		{"trailing bytes after DER", append(bytes.Clone(p256), 0), "trailing data"},
		{"truncated DER", p256[:len(p256)/2], "bad CSR"},
		{"garbage", []byte("hello, world"), "bad CSR"},
		{"empty", nil, "bad CSR"},
		{"10,000 SANs (over 64 KiB)", csrPEM(csrDER(t, "p256", many)), "limit"},
		{"1 MiB of PEM", bytes.Repeat([]byte("A"), 1<<20), "limit"},
		{"64 KiB + 1", append(bytes.Repeat([]byte(" "), MaxCSRSize+1-len(csrPEM(p256))), csrPEM(p256)...), "limit"},
	}
}

func TestParseCSRRefuses(t *testing.T) {
	for _, tc := range hostileCSRs(t) {
		t.Run(tc.name, func(t *testing.T) {
			csr, err := ParseCSR(tc.in)
			if err == nil {
				t.Fatalf("ParseCSR accepted it (key type %s)", csr.KeyType)
			}
			if !errors.Is(err, ErrBadCSR) {
				t.Errorf("error %v is not ErrBadCSR", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestParseCSRSizeBoundary: exactly MaxCSRSize bytes is parsed, one more is not.
func TestParseCSRSizeBoundary(t *testing.T) {
	p := csrPEM(csrDER(t, "p256", []string{"a.test"}))
	at := append(bytes.Repeat([]byte("\n"), MaxCSRSize-len(p)), p...)
	if _, err := ParseCSR(at); err != nil {
		t.Fatalf("%d bytes refused: %v", len(at), err)
	}
	if _, err := ParseCSR(append(at, '\n')); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("%d bytes: err = %v, want the size limit", len(at)+1, err)
	}
}
