package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// withExtensions rebuilds a DER OCSP request with requestExtensions [2].
func withExtensions(t testing.TB, der []byte, exts ...[]byte) []byte {
	t.Helper()
	in := cryptobyte.String(der)
	var req, tbs, list cryptobyte.String
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !req.ReadASN1(&tbs, cbasn1.SEQUENCE) || !tbs.ReadASN1Element(&list, cbasn1.SEQUENCE) {
		t.Fatal("unexpected request shape")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(list)
			b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, e := range exts {
						b.AddBytes(e)
					}
				})
			})
		})
	})
	out, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func extension(t testing.TB, id asn1.ObjectIdentifier, critical bool, value []byte) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(id)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1OctetString(value)
	})
	out, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testIssuer makes a CA issuer and a leaf it signed.
func testIssuer(t testing.TB) (*Issuer, *x509.Certificate) {
	t.Helper()
	key := testKey(t, "p256")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	iss, err := NewIssuer("test", cert, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "a.test"}, DNSNames: []string{"a.test"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err = x509.CreateCertificate(rand.Reader, leafTmpl, cert, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return iss, leaf
}

// opensslNonce is an extnValue as OpenSSL sends it: an OCTET STRING of 16 bytes.
var opensslNonce = []byte{0x04, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func TestOCSPNonce(t *testing.T) {
	iss, leaf := testIssuer(t)
	plain, err := ocsp.CreateRequest(leaf, iss.Cert, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		der  []byte
		want []byte
	}{
		{"no extensions", plain, nil},
		{"nonce", withExtensions(t, plain, extension(t, oidOCSPNonce, false, opensslNonce)), opensslNonce},
		{"nonce after another extension", withExtensions(t, plain, extension(t, asn1.ObjectIdentifier{1, 2, 3}, true, []byte{5, 0}), extension(t, oidOCSPNonce, false, opensslNonce)), opensslNonce},
		{"oversized nonce ignored", withExtensions(t, plain, extension(t, oidOCSPNonce, false, bytes.Repeat([]byte{1}, 200))), nil},
		{"empty nonce ignored", withExtensions(t, plain, extension(t, oidOCSPNonce, false, nil)), nil},
		{"garbage", []byte{0x30, 0x03, 0x30, 0x01}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := OCSPNonce(c.der); !bytes.Equal(got, c.want) {
				t.Fatalf("OCSPNonce = %x, want %x", got, c.want)
			}
		})
	}
}

// TestSignOCSPEchoesNonce: the response carries the nonce among its
// responseExtensions, and its signature (made after adding it) verifies.
func TestSignOCSPEchoesNonce(t *testing.T) {
	iss, leaf := testIssuer(t)
	c := &CA{issuers: map[string]*Issuer{iss.ID: iss}, defaultID: iss.ID}
	for _, nonce := range [][]byte{nil, opensslNonce} {
		der, err := c.SignOCSP(iss, leaf.SerialNumber, crypto.SHA256, OCSPStatus{Status: ocsp.Good}, time.Now(), time.Hour, nonce)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ocsp.ParseResponseForCert(der, leaf, iss.Cert) // checks the signature
		if err != nil {
			t.Fatalf("nonce %x: %v", nonce, err)
		}
		if resp.Status != ocsp.Good || resp.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Fatalf("nonce %x: status %d serial %v", nonce, resp.Status, resp.SerialNumber)
		}
		if got := bytes.Contains(resp.TBSResponseData, append(asn1Marshal(t, oidOCSPNonce), 0x04)); got != (nonce != nil) {
			t.Fatalf("nonce %x: nonce extension present = %t", nonce, got)
		}
	}
}

func asn1Marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzOCSPNonce(f *testing.F) {
	iss, leaf := testIssuer(f)
	plain, _ := ocsp.CreateRequest(leaf, iss.Cert, nil)
	f.Add(plain)
	f.Add(withExtensions(f, plain, extension(f, oidOCSPNonce, false, opensslNonce)))
	f.Fuzz(func(t *testing.T, der []byte) {
		if n := OCSPNonce(der); n != nil && (len(n) == 0 || len(n) > maxNonce+2) {
			t.Fatalf("nonce of %d bytes accepted", len(n))
		}
	})
}
