// Package ca is the only holder of signing keys. It builds certificates from
// validated requests, lints them before the real key signs, signs, and checks
// the signature; it also signs CRLs and OCSP responses.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
)

// URLs are the public, plain-HTTP locations placed in issued certificates.
type URLs struct {
	Base string // e.g. http://127.0.0.1:8080, no trailing slash
}

// OCSP returns the OCSP responder URL.
func (u URLs) OCSP() string { return u.Base + "/ocsp" }

// CRL returns the CRL distribution point of an issuer.
func (u URLs) CRL(issuerID string) string { return u.Base + "/crl/" + issuerID + ".crl" }

// IssuerCert returns the AIA caIssuers URL of an issuer's certificate (DER).
func (u URLs) IssuerCert(issuerID string) string { return u.Base + "/ca/" + issuerID + ".crt" }

// Issuer is a CA certificate with its key. Chain holds the certificates
// between it and the root, issuer first, root excluded.
type Issuer struct {
	ID     string
	Cert   *x509.Certificate
	Signer crypto.Signer
	Chain  []*x509.Certificate

	chainPEM []byte      // computed once: issuance returns it every time
	hash     crypto.Hash // digest the issuer signs with
	keyType  string
}

// NewIssuer wraps a certificate and its key, checking they belong together,
// and that the certificate may sign certificates and CRLs with a key type
// Sigil can sign leaves with.
func NewIssuer(id string, cert *x509.Certificate, signer crypto.Signer, chain []*x509.Certificate) (*Issuer, error) {
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("issuer %q: certificate is not a CA allowed to sign certificates", id)
	}
	if cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, fmt.Errorf("issuer %q: certificate lacks the cRLSign key usage", id)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("issuer %q: private key does not match the certificate", id)
	}
	kt, err := identity.KeyTypeOf(cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: %w", id, err)
	}
	iss := &Issuer{ID: id, Cert: cert, Signer: signer, Chain: chain, keyType: kt}
	iss.hash = hashFor(cert.PublicKey)
	if _, err := signatureAlgorithm(cert.PublicKey); err != nil {
		return nil, fmt.Errorf("issuer %q: %w", id, err)
	}
	if !isSelfSigned(cert) {
		iss.chainPEM = append(iss.chainPEM, pemCert(cert.Raw)...)
	}
	for _, c := range chain {
		if !isSelfSigned(c) {
			iss.chainPEM = append(iss.chainPEM, pemCert(c.Raw)...)
		}
	}
	return iss, nil
}

// KeyType names the issuer's key type.
func (i *Issuer) KeyType() string { return i.keyType }

// ChainPEM returns the issuer and the certificates above it, excluding the
// root: what a server presents after its leaf.
func (i *Issuer) ChainPEM() []byte { return i.chainPEM }

func hashFor(pub crypto.PublicKey) crypto.Hash {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P384():
			return crypto.SHA384
		case elliptic.P521():
			return crypto.SHA512
		}
		return crypto.SHA256
	case ed25519.PublicKey:
		return crypto.Hash(0)
	}
	return crypto.SHA256
}

func isSelfSigned(c *x509.Certificate) bool {
	return string(c.RawSubject) == string(c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// PEM encodes DER certificate bytes.
func PEM(der []byte) []byte { return pemCert(der) }

// CASpec describes a CA certificate to create.
type CASpec struct {
	CommonName   string
	Organization string
	TTL          time.Duration
	MaxPathLen   int // -1: unlimited; 0: may only sign leaves
}

// NewRootCertificate self-signs a root CA certificate.
func NewRootCertificate(signer crypto.Signer, spec CASpec, now time.Time) (*x509.Certificate, error) {
	tmpl, err := caTemplate(spec, now)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("signing root certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// NewIntermediateCertificate signs a subordinate CA certificate with parent.
// Its NotAfter never exceeds the parent's.
func NewIntermediateCertificate(parent *Issuer, pub crypto.PublicKey, spec CASpec, urls URLs, now time.Time) (*x509.Certificate, error) {
	tmpl, err := caTemplate(spec, now)
	if err != nil {
		return nil, err
	}
	if tmpl.NotAfter.After(parent.Cert.NotAfter) {
		tmpl.NotAfter = parent.Cert.NotAfter
	}
	tmpl.OCSPServer = []string{urls.OCSP()}
	tmpl.IssuingCertificateURL = []string{urls.IssuerCert(parent.ID)}
	tmpl.CRLDistributionPoints = []string{urls.CRL(parent.ID)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.Cert, pub, parent.Signer)
	if err != nil {
		return nil, fmt.Errorf("signing intermediate certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

func caTemplate(spec CASpec, now time.Time) (*x509.Certificate, error) {
	serial, err := identity.NewSerial()
	if err != nil {
		return nil, err
	}
	name := pkix.Name{CommonName: spec.CommonName}
	if spec.Organization != "" {
		name.Organization = []string{spec.Organization}
	}
	nb := now.UTC().Truncate(time.Second)
	t := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               name,
		NotBefore:             nb,
		NotAfter:              nb.Add(spec.TTL - time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            spec.MaxPathLen,
		MaxPathLenZero:        spec.MaxPathLen == 0,
	}
	return t, nil
}

// ParseCertificatesPEM parses every CERTIFICATE block of a PEM bundle.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no CERTIFICATE block found")
	}
	return out, nil
}
