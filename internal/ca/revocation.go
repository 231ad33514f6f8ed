package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	_ "crypto/sha1" // registers SHA-1: OpenSSL builds OCSP CertIDs with it by default
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
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
// A non-nil nonce (the extnValue OCSPNonce returned) is echoed in the
// response as RFC 8954 asks.
func (c *CA) SignOCSP(iss *Issuer, serial *big.Int, certIDHash crypto.Hash, st OCSPStatus, now time.Time, validity time.Duration, nonce []byte) ([]byte, error) {
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
	if nonce == nil {
		der, err := ocsp.CreateResponse(iss.Cert, iss.Cert, tmpl, iss.Signer)
		if err != nil {
			return nil, fmt.Errorf("signing OCSP response: %w", err)
		}
		return der, nil
	}
	// x/crypto/ocsp writes extensions only into singleExtensions, but the
	// nonce belongs in responseExtensions: build the response with a
	// placeholder signature, add the extension, then sign once for real.
	draft, err := ocsp.CreateResponse(iss.Cert, iss.Cert, tmpl, placeholderSigner{iss.Signer.Public()})
	if err != nil {
		return nil, fmt.Errorf("building OCSP response: %w", err)
	}
	return signWithResponseExtension(draft, iss, pkix.Extension{Id: oidOCSPNonce, Value: nonce})
}

// placeholderSigner has the issuer's public key (which fixes the signature
// algorithm) and signs nothing: its output is replaced before use.
type placeholderSigner struct{ pub crypto.PublicKey }

func (p placeholderSigner) Public() crypto.PublicKey { return p.pub }
func (placeholderSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return []byte{0}, nil
}

var (
	oidOCSPNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	errOCSPShape = errors.New("unexpected OCSP response encoding")
)

// signWithResponseExtension adds responseExtensions [1] to a DER OCSP
// response's tbsResponseData, signs it with the issuer's key and checks the
// signature, keeping the rest (algorithm, certificates) as it was.
func signWithResponseExtension(der []byte, iss *Issuer, ext pkix.Extension) ([]byte, error) {
	in := cryptobyte.String(der)
	var resp, status, wrapper, rtype, basicDER cryptobyte.String
	if !in.ReadASN1(&resp, cbasn1.SEQUENCE) ||
		!resp.ReadASN1Element(&status, cbasn1.ENUM) ||
		!resp.ReadASN1(&wrapper, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, errOCSPShape
	}
	var bytesSeq cryptobyte.String
	if !wrapper.ReadASN1(&bytesSeq, cbasn1.SEQUENCE) || !bytesSeq.ReadASN1Element(&rtype, cbasn1.OBJECT_IDENTIFIER) ||
		!bytesSeq.ReadASN1(&basicDER, cbasn1.OCTET_STRING) {
		return nil, errOCSPShape
	}
	var basic, tbs, sigAlg, certs cryptobyte.String
	basicIn := basicDER
	if !basicIn.ReadASN1(&basic, cbasn1.SEQUENCE) || !basic.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!basic.ReadASN1Element(&sigAlg, cbasn1.SEQUENCE) || !basic.SkipASN1(cbasn1.BIT_STRING) {
		return nil, errOCSPShape
	}
	certs = basic // optional [0] certs, kept as they are
	extDER, err := asn1.Marshal(ext)
	if err != nil {
		return nil, err
	}
	var tb cryptobyte.Builder
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(extDER) })
		})
	})
	newTBS, err := tb.Bytes()
	if err != nil {
		return nil, err
	}
	msg := newTBS
	if iss.hash != 0 {
		h := iss.hash.New()
		h.Write(newTBS)
		msg = h.Sum(nil)
	}
	sig, err := iss.Signer.Sign(rand.Reader, msg, iss.hash)
	if err != nil {
		return nil, fmt.Errorf("signing OCSP response: %w", err)
	}
	if err := verify(iss.Cert.PublicKey, iss.hash, msg, sig); err != nil {
		return nil, fmt.Errorf("issuer %q produced an invalid OCSP signature: %w", iss.ID, err)
	}
	var bb cryptobyte.Builder
	bb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(newTBS)
		b.AddBytes(sigAlg)
		b.AddASN1BitString(sig)
		b.AddBytes(certs)
	})
	newBasic, err := bb.Bytes()
	if err != nil {
		return nil, err
	}
	var ob cryptobyte.Builder
	ob.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(status)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(rtype)
				b.AddASN1OctetString(newBasic)
			})
		})
	})
	return ob.Bytes()
}

// maxNonce bounds the nonce we echo: RFC 8954 allows 1 to 32 octets; some
// slack keeps older clients working and refuses floods.
const maxNonce = 64

// OCSPNonce returns the extnValue of the nonce extension of a DER OCSP
// request, or nil when there is none or it is out of bounds. It reads what
// x/crypto/ocsp does not expose: tbsRequest's requestExtensions [2].
func OCSPNonce(der []byte) []byte {
	in := cryptobyte.String(der)
	var req, tbs cryptobyte.String
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !req.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil
	}
	// version [0] and requestorName [1] are optional; requestList follows.
	if !tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) ||
		!tbs.SkipASN1(cbasn1.SEQUENCE) {
		return nil
	}
	var exts, list cryptobyte.String
	var present bool
	if !tbs.ReadOptionalASN1(&exts, &present, cbasn1.Tag(2).Constructed().ContextSpecific()) || !present ||
		!exts.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil
	}
	for !list.Empty() {
		var ext, val cryptobyte.String
		var id asn1.ObjectIdentifier
		if !list.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&id) ||
			!ext.SkipOptionalASN1(cbasn1.BOOLEAN) || !ext.ReadASN1(&val, cbasn1.OCTET_STRING) {
			return nil
		}
		if id.Equal(oidOCSPNonce) {
			if len(val) == 0 || len(val) > maxNonce+2 {
				return nil
			}
			return append([]byte(nil), val...)
		}
	}
	return nil
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
