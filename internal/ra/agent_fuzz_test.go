package ra

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/sigil-pki/sigil/internal/fail"
)

// FuzzParseJoinToken: any string a client sends as a join token either
// parses into a 16-hex-digit ID and a bounded secret, or is refused.
func FuzzParseJoinToken(f *testing.F) {
	for _, s := range []string{"", "sgj_", "sgj_0123456789abcdef_", "sgj_0123456789abcdef_x", "sgj_zz_zz",
		"sgl_0123456789abcdef_x", "sgj_0123456789ABCDEG_x", " sgj_0123456789abcdef_a_b ", strings.Repeat("a", 5000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, ok := parseJoinToken(s)
		if !ok {
			if id != "" || secret != "" {
				t.Fatal("refused token returned parts")
			}
			return
		}
		if len(id) != 16 || secret == "" || len(secret) > 128 || !strings.Contains(s, id+"_"+secret) {
			t.Fatalf("parsed %q into %q, %q", s, id, secret)
		}
	})
}

// FuzzCheckCSRNames: a hostile CSR is refused with a client error kind,
// never accepted unless every name it asks for is bound.
func FuzzCheckCSRNames(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, names := range [][]string{{"a.test"}, {"a.test", "b.test"}, {"A.TEST"}, {"c.test"}} {
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: names[0]}, DNSNames: names}, key)
		f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		f.Add(der)
	}
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	bound := []string{"a.test", "b.test"}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := checkCSRNames(data, bound)
		if err != nil {
			if k := fail.KindOf(err); k != fail.Malformed && k != fail.Forbidden {
				t.Fatalf("kind %v for %v", k, err)
			}
			return
		}
		csr, perr := x509.ParseCertificateRequest(pemOrDER(data))
		if perr != nil {
			t.Fatalf("accepted an unparseable CSR")
		}
		for _, n := range append([]string{csr.Subject.CommonName}, csr.DNSNames...) {
			if n != "" && strings.ToLower(n) != "a.test" && strings.ToLower(n) != "b.test" {
				t.Fatalf("accepted unbound name %q", n)
			}
		}
	})
}

func pemOrDER(b []byte) []byte {
	if p, _ := pem.Decode(b); p != nil {
		return p.Bytes
	}
	return b
}
