package ca

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
)

// FuzzParseCSR: ParseCSR never panics, every refusal is ErrBadCSR, and
// whatever it accepts is within bounds, of a supported key type, carries a
// signature that verifies, and asks for no CA certificate or unknown
// critical extension.
func FuzzParseCSR(f *testing.F) {
	names := []string{"a.test", "b.test"}
	for _, kind := range []string{"p256", "p384", "p521", "ed25519", "rsa2048"} {
		der := csrDER(f, kind, names)
		f.Add(der)
		f.Add(csrPEM(der))
	}
	f.Add(csrPEM(csrDER(f, "p256", names, caExtensions(f)...)))
	for _, h := range hostileCSRs(f) {
		if len(h.in) <= 16<<10 { // huge seeds only slow the fuzzer down
			f.Add(h.in)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("refusal is not ErrBadCSR: %v", err)
			}
			return
		}
		if len(data) > MaxCSRSize {
			t.Fatalf("accepted %d bytes, over MaxCSRSize", len(data))
		}
		if err := supportedKeyType(csr); err != nil {
			t.Fatal(err)
		}
		if err := csr.Request.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR whose signature does not verify: %v", err)
		}
		for _, e := range csr.Request.Extensions {
			if e.Id.Equal(oidBasicConstraints) {
				var bc struct {
					IsCA bool `asn1:"optional"`
				}
				if _, err := asn1.Unmarshal(e.Value, &bc); err != nil || bc.IsCA {
					t.Fatalf("accepted basicConstraints %x", e.Value)
				}
				continue
			}
			if e.Critical && !ignoredExtensions[e.Id.String()] {
				t.Fatalf("accepted unknown critical extension %s", e.Id)
			}
		}
	})
}

func supportedKeyType(csr *CSR) error {
	switch csr.KeyType {
	case identity.KeyECDSAP256, identity.KeyECDSAP384, identity.KeyECDSAP521, identity.KeyEd25519:
		return nil
	}
	k, ok := csr.Request.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("key type %q for a %T key", csr.KeyType, csr.Request.PublicKey)
	}
	bits := k.N.BitLen()
	if csr.KeyType != fmt.Sprintf("rsa-%d", bits) || bits < identity.MinRSABits || bits > identity.MaxRSABits {
		return fmt.Errorf("key type %q for an RSA key of %d bits", csr.KeyType, bits)
	}
	return nil
}

// FuzzParseCertificatesPEM: never panics; on success returns at least one
// certificate, each one a CERTIFICATE block of the input.
func FuzzParseCertificatesPEM(f *testing.F) {
	key := testKey(f, "p256")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "seed"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		f.Fatal(err)
	}
	one := PEM(der)
	f.Add(one)
	f.Add(append(append([]byte{}, one...), one...))
	f.Add(append(csrPEM(csrDER(f, "p256", []string{"a.test"})), one...))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x00}}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("not PEM"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificatesPEM(data)
		if err != nil {
			return
		}
		if len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
		var blocks [][]byte
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type == "CERTIFICATE" {
				blocks = append(blocks, b.Bytes)
			}
		}
		if len(blocks) != len(certs) {
			t.Fatalf("%d certificates from %d CERTIFICATE blocks", len(certs), len(blocks))
		}
		for i, c := range certs {
			if c == nil || string(c.Raw) != string(blocks[i]) {
				t.Fatalf("certificate %d is not block %d", i, i)
			}
		}
	})
}
