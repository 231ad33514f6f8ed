package inventory

import (
	"crypto"
	"crypto/dsa" //nolint:staticcheck // recognising old DSA keys found on disk, never generating them
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sigil-pki/sigil/internal/store"
)

// Hostile certificates carry absurd fields: strings and lists are bounded so
// one certificate cannot bloat the inventory.
const (
	maxField = 1024
	maxSANs  = 256
)

func clip(s string) string {
	if len(s) <= maxField {
		return s
	}
	return strings.ToValidUTF8(s[:maxField], "") + "…"
}

// SHA256Hex is the lowercase hex SHA-256 of b.
func SHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// KeyInfo names a public key's algorithm and size in bits.
func KeyInfo(pub crypto.PublicKey) (alg string, bits int) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RSA", k.N.BitLen()
	case *ecdsa.PublicKey:
		if k.Curve == nil {
			return "ECDSA", 0
		}
		return "ECDSA", k.Curve.Params().BitSize
	case ed25519.PublicKey:
		return "Ed25519", 256
	case *dsa.PublicKey:
		if k.P == nil {
			return "DSA", 0
		}
		return "DSA", k.P.BitLen()
	case *ecdh.PublicKey:
		if k.Curve() == ecdh.X25519() {
			return "X25519", 256
		}
		return "ECDH", len(k.Bytes()) * 4
	}
	return "unknown", 0
}

// SPKIHex is the hex SHA-256 of pub's DER SubjectPublicKeyInfo, or "" when
// X.509 cannot encode it.
func SPKIHex(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	return SHA256Hex(der)
}

// FromCertificate describes a parsed certificate as a discovered identity.
func FromCertificate(c *x509.Certificate) Identity {
	id := Identity{
		Fingerprint: SHA256Hex(c.Raw), Kind: store.KindX509, Source: store.SourceDiscovered,
		Subject: clip(c.Subject.String()), Issuer: clip(c.Issuer.String()),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), IsCA: c.IsCA,
		SignatureAlg: c.SignatureAlgorithm.String(), SPKISHA256: SHA256Hex(c.RawSubjectPublicKeyInfo),
		DER: c.Raw,
	}
	if c.SerialNumber != nil {
		id.Serial = clip(strings.ToLower(c.SerialNumber.Text(16)))
	}
	id.KeyAlgorithm, id.KeySize = KeyInfo(c.PublicKey)
	if c.PublicKey == nil {
		id.KeyAlgorithm = c.PublicKeyAlgorithm.String()
	}
	add := func(s string) {
		if len(id.SANs) < maxSANs {
			id.SANs = append(id.SANs, clip(s))
		}
	}
	for _, n := range c.DNSNames {
		add(n)
	}
	for _, ip := range c.IPAddresses {
		add(ip.String())
	}
	for _, u := range c.URIs {
		add((*url.URL)(u).String())
	}
	for _, e := range c.EmailAddresses {
		add(e)
	}
	return id
}

// FromPublicKey describes a private key found on disk by its public half.
func FromPublicKey(pub crypto.PublicKey) (Identity, bool) {
	spki := SPKIHex(pub)
	if spki == "" {
		return Identity{}, false
	}
	id := Identity{Fingerprint: spki, Kind: store.KindPrivateKey, Source: store.SourceDiscovered, SPKISHA256: spki}
	id.KeyAlgorithm, id.KeySize = KeyInfo(pub)
	return id, true
}

// FromSSHPublicKey describes an SSH public key (or an OpenSSH certificate).
func FromSSHPublicKey(k ssh.PublicKey, comment string) Identity {
	id := Identity{Fingerprint: SHA256Hex(k.Marshal()), Kind: store.KindSSHKey, Source: store.SourceDiscovered,
		Subject: clip(comment)}
	if c, ok := k.(*ssh.Certificate); ok {
		id.Kind = store.KindSSHCert
		id.Subject = clip(c.KeyId)
		if c.SignatureKey != nil {
			id.Issuer = SHA256Hex(c.SignatureKey.Marshal())
		}
		for _, p := range c.ValidPrincipals {
			if len(id.SANs) < maxSANs {
				id.SANs = append(id.SANs, clip(p))
			}
		}
		id.Serial = uitoa(c.Serial)
		if c.ValidAfter != 0 && c.ValidAfter < 1<<62 {
			id.NotBefore = unixUTC(int64(c.ValidAfter))
		}
		if c.ValidBefore != ssh.CertTimeInfinity && c.ValidBefore < 1<<62 {
			id.NotAfter = unixUTC(int64(c.ValidBefore))
		}
		k = c.Key
	}
	if ck, ok := k.(ssh.CryptoPublicKey); ok {
		pub := ck.CryptoPublicKey()
		id.KeyAlgorithm, id.KeySize = KeyInfo(pub)
		id.SPKISHA256 = SPKIHex(pub)
	} else {
		id.KeyAlgorithm = k.Type()
	}
	return id
}

// SSHFingerprintFromHex turns a hex SHA-256 into OpenSSH's "SHA256:…" form.
func SSHFingerprintFromHex(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return ""
	}
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(b)
}

// NormalizeFingerprint accepts a hex SHA-256 (any case, optional colons) or
// an OpenSSH "SHA256:…" fingerprint and returns lowercase hex, or "" if it is neither.
func NormalizeFingerprint(s string) string {
	s = strings.TrimSpace(s)
	if b64, ok := strings.CutPrefix(s, "SHA256:"); ok {
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
		if err != nil || len(b) != sha256.Size {
			return ""
		}
		return hex.EncodeToString(b)
	}
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if !isHex64(s) {
		return ""
	}
	return s
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func uitoa(v uint64) string { return strconv.FormatUint(v, 10) }

func unixUTC(s int64) time.Time { return time.Unix(s, 0).UTC() }
