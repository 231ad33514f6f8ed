package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	_ "crypto/sha1" // registers SHA-1: OpenSSL builds OCSP CertIDs with it by default
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/sigil-pki/sigil/internal/identity"
)

// CRLEntry is one revoked certificate.
type CRLEntry struct {
	Serial    identity.Serial
	RevokedAt time.Time
	Reason    identity.RevocationReason
}

// SignCRL signs a CRL for an issuer.
func (c *CA) SignCRL(issuerID string, number int64, thisUpdate, nextUpdate time.Time, entries []CRLEntry) ([]byte, error) {
	iss, err := c.Issuer(issuerID)
	if err != nil {
		return nil, err
	}
	revoked := make([]x509.RevocationListEntry, len(entries))
	for i, e := range entries {
		revoked[i] = x509.RevocationListEntry{
			SerialNumber:   e.Serial.Big(),
			RevocationTime: e.RevokedAt.UTC(),
			ReasonCode:     int(e.Reason),
		}
	}
	tmpl := &x509.RevocationList{
		Number:                    big.NewInt(number),
		ThisUpdate:                thisUpdate.UTC(),
		NextUpdate:                nextUpdate.UTC(),
		RevokedCertificateEntries: revoked,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, iss.Cert, iss.Signer)
	if err != nil {
		return nil, fmt.Errorf("signing CRL for %q: %w", iss.ID, err)
	}
	return der, nil
}

// OCSPStatus is what the responder knows about a serial.
type OCSPStatus struct {
	Status    int // ocsp.Good, ocsp.Revoked or ocsp.Unknown
	RevokedAt time.Time
	Reason    identity.RevocationReason
}

// ErrOCSPNotOurs means the request names an issuer we do not hold.
var ErrOCSPNotOurs = errors.New("OCSP request is for an issuer this responder does not serve")

// MatchOCSPIssuer finds the issuer an OCSP request is about, comparing the
// hashes of its name and key as RFC 6960 defines them.
func (c *CA) MatchOCSPIssuer(req *ocsp.Request) (*Issuer, error) {
	for _, iss := range c.issuers {
		nameHash, keyHash, err := issuerHashes(iss.Cert, req.HashAlgorithm)
		if err != nil {
			continue
		}
		if bytes.Equal(nameHash, req.IssuerNameHash) && bytes.Equal(keyHash, req.IssuerKeyHash) {
			return iss, nil
		}
	}
	return nil, ErrOCSPNotOurs
}

// SignOCSP signs a response for one serial with the issuer's own key (no
// delegated responder: one less key to protect).
// certIDHash is the hash of the request's CertID: the response must use the
// same one, or clients (OpenSSL) cannot match it to their request.
func (c *CA) SignOCSP(iss *Issuer, serial *big.Int, certIDHash crypto.Hash, st OCSPStatus, now time.Time, validity time.Duration) ([]byte, error) {
	tmpl := ocsp.Response{
		Status:       st.Status,
		SerialNumber: serial,
		IssuerHash:   certIDHash,
		ThisUpdate:   now.UTC().Truncate(time.Second),
		NextUpdate:   now.UTC().Truncate(time.Second).Add(validity),
	}
	if st.Status == ocsp.Revoked {
		tmpl.RevokedAt = st.RevokedAt.UTC()
		tmpl.RevocationReason = int(st.Reason)
	}
	der, err := ocsp.CreateResponse(iss.Cert, iss.Cert, tmpl, iss.Signer)
	if err != nil {
		return nil, fmt.Errorf("signing OCSP response: %w", err)
	}
	return der, nil
}

func issuerHashes(cert *x509.Certificate, h crypto.Hash) (nameHash, keyHash []byte, err error) {
	if h == 0 {
		h = crypto.SHA1
	}
	if !h.Available() || (h != crypto.SHA1 && h != crypto.SHA256 && h != crypto.SHA384 && h != crypto.SHA512) {
		return nil, nil, fmt.Errorf("unsupported OCSP hash %v", h)
	}
	spki, err := subjectPublicKeyBits(cert)
	if err != nil {
		return nil, nil, err
	}
	nh := h.New()
	nh.Write(cert.RawSubject)
	kh := h.New()
	kh.Write(spki)
	return nh.Sum(nil), kh.Sum(nil), nil
}

// subjectPublicKeyBits returns the subjectPublicKey BIT STRING contents of a
// certificate, which is what the OCSP issuerKeyHash covers.
func subjectPublicKeyBits(cert *x509.Certificate) ([]byte, error) {
	in := cryptobyte.String(cert.RawSubjectPublicKeyInfo)
	var spki, alg cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&spki, cbasn1.SEQUENCE) || !spki.ReadASN1(&alg, cbasn1.SEQUENCE) || !spki.ReadASN1BitString(&bits) {
		return nil, errors.New("malformed subjectPublicKeyInfo")
	}
	return bits.Bytes, nil
}
