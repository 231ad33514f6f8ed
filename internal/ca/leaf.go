package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/sigil-pki/sigil/internal/identity"
)

// Linter checks a certificate before the real key signs it. A nil error
// means no error-level findings.
type Linter interface {
	Lint(der []byte) error
}

// ErrLint wraps lint failures: the certificate was not signed.
var ErrLint = errors.New("certificate failed lint")

// lintError reports lint findings; errors.Is(err, ErrLint) holds.
type lintError struct{ err error }

func (e *lintError) Error() string {
	if msg := e.err.Error(); strings.HasPrefix(msg, ErrLint.Error()) {
		return msg
	}
	return ErrLint.Error() + ": " + e.err.Error()
}
func (e *lintError) Unwrap() []error { return []error{ErrLint, e.err} }

// ErrUnknownIssuer is returned for an issuer ID the CA does not hold.
var ErrUnknownIssuer = errors.New("unknown issuer")

// CA holds the issuers and signs with them.
type CA struct {
	issuers   map[string]*Issuer
	shapes    map[string]*leafShape // by issuer ID
	defaultID string
	linter    Linter
	urls      URLs
}

// New builds a CA over issuers; defaultID names the issuer used when a
// profile names none (or names "default").
func New(issuers []*Issuer, defaultID string, linter Linter, urls URLs) (*CA, error) {
	m := make(map[string]*Issuer, len(issuers))
	shapes := make(map[string]*leafShape, len(issuers))
	for _, i := range issuers {
		m[i.ID] = i
		s, err := newLeafShape(i, urls)
		if err != nil {
			return nil, err
		}
		shapes[i.ID] = s
	}
	if _, ok := m[defaultID]; !ok {
		return nil, fmt.Errorf("default issuer %q: %w", defaultID, ErrUnknownIssuer)
	}
	if linter == nil {
		return nil, errors.New("a linter is required: every certificate is linted before signing")
	}
	return &CA{issuers: m, shapes: shapes, defaultID: defaultID, linter: linter, urls: urls}, nil
}

// Issuer returns an issuer by ID; "" and "default" mean the default issuer.
func (c *CA) Issuer(id string) (*Issuer, error) {
	if id == "" || id == "default" {
		id = c.defaultID
	}
	i, ok := c.issuers[id]
	if !ok {
		return nil, fmt.Errorf("issuer %q: %w", id, ErrUnknownIssuer)
	}
	return i, nil
}

// Issuers returns all issuers.
func (c *CA) Issuers() []*Issuer {
	out := make([]*Issuer, 0, len(c.issuers))
	for _, i := range c.issuers {
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b *Issuer) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// URLs returns the public URLs placed in certificates.
func (c *CA) URLs() URLs { return c.urls }

// LeafRequest is an end-entity certificate to build. Every field must already
// have passed policy: the CA copies nothing else from a CSR.
type LeafRequest struct {
	PublicKey   crypto.PublicKey
	CommonName  string
	DNSNames    []string
	IPAddresses []net.IP
	URIs        []*url.URL
	Emails      []string
	NotBefore   time.Time
	TTL         time.Duration
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
}

// Prepared is a linted to-be-signed certificate. It can be signed once.
type Prepared struct {
	issuer    *Issuer
	serial    *big.Int
	tbs       []byte
	sigAlg    []byte // DER AlgorithmIdentifier
	notBefore time.Time
	notAfter  time.Time
	redeemed  atomic.Bool
}

// Serial returns the reserved serial.
func (p *Prepared) Serial() identity.Serial { return identity.SerialFromBig(p.serial) }

// TBS returns the exact to-be-signed bytes the real key will sign.
func (p *Prepared) TBS() []byte { return p.tbs }

// Issuer returns the issuer that will sign.
func (p *Prepared) Issuer() *Issuer { return p.issuer }

// Validity returns NotBefore and NotAfter.
func (p *Prepared) Validity() (time.Time, time.Time) { return p.notBefore, p.notAfter }

// Prepare builds the certificate's TBS (tbs.go: byte for byte what
// crypto/x509 would encode), lints it wrapped as a certificate with a
// placeholder signature, and keeps it for the real signature. The real key
// never signs anything that failed lint. Validity is exact: X.509 validity
// includes both ends, so NotAfter = NotBefore + TTL - 1s. It never exceeds
// the issuer's NotAfter.
func (c *CA) Prepare(issuerID string, r *LeafRequest) (*Prepared, error) {
	iss, err := c.Issuer(issuerID)
	if err != nil {
		return nil, err
	}
	shape := c.shapes[iss.ID]
	if r.TTL < time.Second {
		return nil, fmt.Errorf("validity %s is too short", r.TTL)
	}
	serial, err := identity.NewSerial()
	if err != nil {
		return nil, err
	}
	nb := r.NotBefore.UTC().Truncate(time.Second)
	na := nb.Add(r.TTL - time.Second)
	if na.After(iss.Cert.NotAfter) {
		na = iss.Cert.NotAfter
	}
	if !na.After(nb) {
		return nil, fmt.Errorf("issuer %q expires before the certificate would start", iss.ID)
	}
	spki, err := x509.MarshalPKIXPublicKey(r.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("building certificate: %w", err)
	}
	tbs, err := shape.tbs(&leafTBS{
		serial:      serial,
		commonName:  r.CommonName,
		notBefore:   nb,
		notAfter:    na,
		spki:        spki,
		keyUsage:    r.KeyUsage,
		extKeyUsage: r.ExtKeyUsage,
		dnsNames:    r.DNSNames,
		emails:      r.Emails,
		ips:         r.IPAddresses,
		uris:        r.URIs,
	})
	if err != nil {
		return nil, fmt.Errorf("building certificate: %w", err)
	}
	lintDER, err := shape.lintCertificate(tbs)
	if err != nil {
		return nil, fmt.Errorf("building certificate: %w", err)
	}
	if err := c.linter.Lint(lintDER); err != nil {
		return nil, &lintError{err}
	}
	return &Prepared{issuer: iss, serial: serial, tbs: tbs, sigAlg: shape.sigAlg, notBefore: nb, notAfter: na}, nil
}

// Sign signs a prepared certificate with the issuer's real key, checks the
// signature with the issuer's public key, and returns the certificate DER.
func (c *CA) Sign(p *Prepared) ([]byte, error) {
	if !p.redeemed.CompareAndSwap(false, true) {
		return nil, errors.New("prepared certificate already signed")
	}
	iss := p.issuer
	msg := p.tbs
	if iss.hash != 0 {
		h := iss.hash.New()
		h.Write(p.tbs)
		msg = h.Sum(nil)
	}
	sig, err := iss.Signer.Sign(rand.Reader, msg, iss.hash)
	if err != nil {
		return nil, fmt.Errorf("signing with issuer %q: %w", iss.ID, err)
	}
	if err := verify(iss.Cert.PublicKey, iss.hash, msg, sig); err != nil {
		return nil, fmt.Errorf("issuer %q produced an invalid signature: %w", iss.ID, err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(p.tbs)
		b.AddBytes(p.sigAlg)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

func verify(pub crypto.PublicKey, h crypto.Hash, msg, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, msg, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, h, msg, sig)
	case ed25519.PublicKey:
		if !ed25519.Verify(k, msg, sig) {
			return errors.New("Ed25519 signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unsupported issuer key %T", pub)
}
