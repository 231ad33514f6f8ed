// Package assess is Sigil's findings engine: rules are pure functions of a
// Facts value (one identity, where it was seen, its revocation and
// replacement status, owner, key and renewal information) and the time, so
// each is unit-testable without a store. Engine (engine.go) builds Facts
// from the store, runs every rule and keeps findings open from first seen
// until resolved.
package assess

import (
	"crypto/x509"
	"math/big"
	"time"
)

// Facts is everything the rules know about one identity.
type Facts struct {
	// Fingerprint identifies the identity: SHA-256 of the certificate DER
	// (x509), or the inventory fingerprint of other kinds.
	Fingerprint string
	Kind        string // "x509", "private-key", "ssh-key", "ssh-cert", "secret"
	Source      string // "issued" (by Sigil), "imported", "discovered"
	Serial      string // Sigil serial when Sigil issued it

	// Certificate fields (x509).
	Subject, Issuer string
	DNSNames        []string
	IPs             []string
	NotBefore       time.Time
	NotAfter        time.Time
	IsCA            bool
	SelfSigned      bool
	ServerAuth      bool   // usable as a TLS server certificate
	SignatureAlg    string // x509.SignatureAlgorithm.String()
	// IssuerManaged: issued by a Sigil issuer or a configured trust anchor.
	IssuerManaged bool

	// Key.
	KeyAlgorithm string   // "RSA", "ECDSA", "Ed25519", "DSA", …
	KeySize      int      // bits: RSA modulus, EC curve
	RSAModulus   *big.Int // nil unless RSA and known
	RSAExponent  int
	SPKI         string // hex SHA-256 of the SubjectPublicKeyInfo

	// Lifecycle (Sigil-issued certificates).
	Revoked      bool
	RevokedAt    time.Time
	SupersededAt time.Time // a renewal with the same names was issued at this time
	// RenewalManaged: an agent, ACME client or the server itself renews it on
	// schedule; RenewAt is its planned renewal point.
	RenewalManaged bool
	RenewAt        time.Time
	IssuedAt       time.Time
	// Agent: the active enrolled agent (the agents table) whose current
	// certificate this is, and when that agent last contacted the server.
	Agent         string
	AgentLastSeen time.Time

	Owner string

	// Where it was seen (empty when discovery never saw it).
	Locations []Location
	// InventoryActive: discovery has reported anything at all, so "never
	// seen" means something (orphan rule).
	InventoryActive bool

	// Key reuse: other certificates with the same public key, and how many
	// locations hold its private key.
	OtherCertsWithKey int
	KeyLocations      int
	// HasCertificate: for private keys, some certificate has this key.
	HasCertificate bool

	// LintErrors: zlint error/fatal results; LintWarnings: its warnings
	// ("name (details)").
	LintErrors   []string
	LintWarnings []string
	// Blocklisted: the key is on the configured compromised-key list.
	Blocklisted bool
}

// Location is one place an identity was seen.
type Location struct {
	Kind      string // "net", "fs", "agent"
	Host      string
	Port      int
	Path      string
	SNI       string
	FirstSeen time.Time
	LastSeen  time.Time
	FileMode  uint32 // fs: permission bits
	Detail    string // e.g. "private key"
}

// String names a location for humans: host:port (sni), host:path.
func (l Location) String() string {
	switch l.Kind {
	case "net":
		s := l.Host
		if l.Port != 0 {
			s = joinHostPort(l.Host, l.Port)
		}
		if l.SNI != "" {
			s += " (SNI " + l.SNI + ")"
		}
		return s
	default:
		return l.Host + ":" + l.Path
	}
}

// lastSeen is the latest time the identity was seen anywhere.
func (f *Facts) lastSeen() time.Time {
	var t time.Time
	for _, l := range f.Locations {
		if l.LastSeen.After(t) {
			t = l.LastSeen
		}
	}
	return t
}

// FromCertificate fills certificate and key facts from a parsed certificate.
func FromCertificate(f *Facts, c *x509.Certificate) {
	f.Kind = "x509"
	f.Subject, f.Issuer = c.Subject.String(), c.Issuer.String()
	f.DNSNames = c.DNSNames
	f.IPs = nil
	for _, ip := range c.IPAddresses {
		f.IPs = append(f.IPs, ip.String())
	}
	f.NotBefore, f.NotAfter = c.NotBefore, c.NotAfter
	f.IsCA = c.IsCA
	f.SelfSigned = string(c.RawIssuer) == string(c.RawSubject) && c.CheckSignatureFrom(c) == nil
	f.SignatureAlg = c.SignatureAlgorithm.String()
	f.ServerAuth = !c.IsCA && (len(c.ExtKeyUsage) == 0 && len(c.DNSNames) > 0 || hasEKU(c, x509.ExtKeyUsageServerAuth) || hasEKU(c, x509.ExtKeyUsageAny))
	setKey(f, c.PublicKey)
}

func hasEKU(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	for _, e := range c.ExtKeyUsage {
		if e == u {
			return true
		}
	}
	return false
}
