package agent

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/sigil-pki/sigil/internal/keys"
)

// ocspFixture is a leaf whose AIA names a loopback responder the test
// controls, and the intermediate that issued it.
type ocspFixture struct {
	id      *identity
	issuer  *x509.Certificate
	intKey  crypto.Signer
	handler atomic.Value // http.HandlerFunc
}

func newOCSPFixture(t *testing.T) *ocspFixture {
	t.Helper()
	f := &ocspFixture{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.handler.Load().(http.HandlerFunc)(w, r)
	}))
	t.Cleanup(srv.Close)
	f.id, _, f.intKey = testPKI(t, srv.URL+"/ocsp")
	var err error
	if f.issuer, err = firstCert(f.id.chain); err != nil {
		t.Fatal(err)
	}
	return f
}

// response signs an OCSP answer about serial with signer, embedding
// responder (nil: none).
func (f *ocspFixture) response(t *testing.T, serial *big.Int, status int, responder *x509.Certificate, signer crypto.Signer) []byte {
	t.Helper()
	now := time.Now()
	tmpl := ocsp.Response{Status: status, SerialNumber: serial, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		Certificate: responder}
	if status == ocsp.Revoked {
		tmpl.RevokedAt, tmpl.RevocationReason = now.Add(-time.Minute), ocsp.Superseded
	}
	signerCert := f.issuer
	if responder != nil {
		signerCert = responder
	}
	der, err := ocsp.CreateResponse(f.issuer, signerCert, tmpl, signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// responderCert is a certificate the intermediate issued to key, for OCSP
// signing or not.
func (f *ocspFixture) responderCert(t *testing.T, key crypto.Signer, ocspSigning bool) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "responder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	if ocspSigning {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.issuer, key.Public(), f.intKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestCheckOCSPResponse(t *testing.T) {
	f := newOCSPFixture(t)
	other, _ := keys.GenerateKey("ecdsa-p256")
	leafSerial := f.id.leaf.SerialNumber
	for _, tc := range []struct {
		name string
		der  func() []byte
		want int    // ocsp status if accepted
		err  string // else
	}{
		{"good from the issuer", func() []byte { return f.response(t, leafSerial, ocsp.Good, nil, f.intKey) }, ocsp.Good, ""},
		{"revoked from the issuer", func() []byte { return f.response(t, leafSerial, ocsp.Revoked, nil, f.intKey) }, ocsp.Revoked, ""},
		{"delegated responder", func() []byte {
			return f.response(t, leafSerial, ocsp.Revoked, f.responderCert(t, other, true), other)
		}, ocsp.Revoked, ""},
		{"another key", func() []byte { return f.response(t, leafSerial, ocsp.Revoked, nil, other) }, 0, "signature"},
		{"a leaf of the same CA as responder", func() []byte {
			return f.response(t, leafSerial, ocsp.Revoked, f.responderCert(t, other, false), other)
		}, 0, "not delegated"},
		{"another serial", func() []byte { return f.response(t, big.NewInt(12345), ocsp.Revoked, nil, f.intKey) }, 0, "ocsp"},
		{"garbage", func() []byte { return []byte("not ocsp") }, 0, "ocsp"},
		{"error status", func() []byte { return ocsp.UnauthorizedErrorResponse }, 0, "ocsp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := CheckOCSPResponse(tc.der(), f.id.leaf, f.issuer)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil || r.Status != tc.want {
				t.Fatalf("got %+v %v, want status %d", r, err, tc.want)
			}
		})
	}
}

// FuzzCheckOCSPResponse: whatever a responder (or someone on the path)
// sends, nothing is accepted that the issuer did not sign.
func FuzzCheckOCSPResponse(f *testing.F) {
	key, _ := keys.GenerateKey("ecdsa-p256")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(5), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	other, _ := x509.ParseCertificate(der) // signs the seeds; not the issuer below
	issuerKey, _ := keys.GenerateKey("ecdsa-p256")
	tmpl.Subject.CommonName = "issuer"
	der, _ = x509.CreateCertificate(rand.Reader, tmpl, tmpl, issuerKey.Public(), issuerKey)
	issuer, _ := x509.ParseCertificate(der)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(7)}
	for _, st := range []int{ocsp.Good, ocsp.Revoked} {
		r, _ := ocsp.CreateResponse(other, other, ocsp.Response{Status: st, SerialNumber: leaf.SerialNumber,
			ThisUpdate: time.Now(), RevokedAt: time.Now()}, key)
		f.Add(r)
	}
	f.Add(ocsp.MalformedRequestErrorResponse)
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := CheckOCSPResponse(b, leaf, issuer); err == nil {
			t.Fatalf("accepted a response the issuer did not sign: %+v", r)
		}
	})
}

// TestOCSPStatus: the agent asks the responder its certificate names,
// accepts only a checked answer, and refuses redirects and oversized or
// failed answers.
func TestOCSPStatus(t *testing.T) {
	f := newOCSPFixture(t)
	var asked atomic.Int32
	respond := func(der []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			asked.Add(1)
			body, _ := io.ReadAll(r.Body)
			req, err := ocsp.ParseRequest(body)
			if r.Method != http.MethodPost || r.URL.Path != "/ocsp" || r.Header.Get("Content-Type") != "application/ocsp-request" ||
				err != nil || req.SerialNumber.Cmp(f.id.leaf.SerialNumber) != 0 {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/ocsp-response")
			w.Write(der)
		}
	}
	f.handler.Store(respond(f.response(t, f.id.leaf.SerialNumber, ocsp.Revoked, nil, f.intKey)))
	r, err := OCSPStatus(t.Context(), f.id.leaf, f.issuer)
	if err != nil || r.Status != ocsp.Revoked || r.RevocationReason != ocsp.Superseded {
		t.Fatalf("revoked: %+v %v", r, err)
	}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		err     string
	}{
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/ocsp", http.StatusFound)
		}, "302"},
		{"server error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) }, "503"},
		{"oversized", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, maxOCSPResponse+1)) }, "over"},
		{"forged", respond(f.response(t, f.id.leaf.SerialNumber, ocsp.Revoked, nil, f.id.key)), "signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.handler.Store(tc.handler)
			if r, err := OCSPStatus(t.Context(), f.id.leaf, f.issuer); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %+v %v, want an error mentioning %q", r, err, tc.err)
			}
		})
	}
	// No responder named: nothing is asked.
	id, _ := testIdentity(t)
	issuer, _ := firstCert(id.chain)
	before := asked.Load()
	if _, err := OCSPStatus(t.Context(), id.leaf, issuer); err == nil || !strings.Contains(err.Error(), "no OCSP responder") {
		t.Fatalf("no responder: %v", err)
	}
	// The chain's first certificate must have issued the leaf.
	if _, err := OCSPStatus(t.Context(), f.id.leaf, issuer); err == nil || !strings.Contains(err.Error(), "did not issue") {
		t.Fatalf("wrong issuer: %v", err)
	}
	if asked.Load() != before {
		t.Fatal("the responder was asked although nothing could be checked")
	}
}
