package identity

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"testing"
	"time"
)

func TestParseReason(t *testing.T) {
	for _, c := range []struct {
		in   string
		want RevocationReason
		ok   bool
	}{
		{"", ReasonUnspecified, true},
		{"unspecified", ReasonUnspecified, true},
		{"keyCompromise", ReasonKeyCompromise, true},
		{"KEYCOMPROMISE", ReasonKeyCompromise, true},
		{" keycompromise ", ReasonKeyCompromise, true},
		{"cACompromise", ReasonCACompromise, true},
		{"affiliationChanged", ReasonAffiliationChanged, true},
		{"superseded", ReasonSuperseded, true},
		{"cessationOfOperation", ReasonCessationOfOperation, true},
		{"privilegeWithdrawn", ReasonPrivilegeWithdrawn, true},
		{"aACompromise", ReasonAACompromise, true},
		{"0", ReasonUnspecified, true},
		{"1", ReasonKeyCompromise, true},
		{"4", ReasonSuperseded, true},
		{"9", ReasonPrivilegeWithdrawn, true},
		{"10", ReasonAACompromise, true},

		{"certificateHold", 0, false},
		{"certificatehold", 0, false},
		{"6", 0, false},
		{"removeFromCRL", 0, false},
		{"8", 0, false},
		{"7", 0, false}, // unused in RFC 5280
		{"11", 0, false},
		{"-1", 0, false},
		{"01", 0, false},
		{"compromised", 0, false},
		{"key Compromise", 0, false},
	} {
		got, err := ParseReason(c.in)
		switch {
		case c.ok && (err != nil || got != c.want):
			t.Errorf("ParseReason(%q) = %v, %v; want %v", c.in, got, err, c.want)
		case !c.ok && err == nil:
			t.Errorf("ParseReason(%q) = %v, want an error", c.in, got)
		}
	}
	// Every name String gives back parses to the same reason, apart from the
	// two suspension reasons Sigil refuses.
	for r := ReasonUnspecified; r <= ReasonAACompromise; r++ {
		got, err := ParseReason(r.String())
		refused := r == ReasonCertificateHold || r == ReasonRemoveFromCRL || r == 7
		if refused != (err != nil) || (!refused && got != r) {
			t.Errorf("ParseReason(%q) = %v, %v", r.String(), got, err)
		}
	}
	if s := RevocationReason(7).String(); s != "reason(7)" {
		t.Errorf("String of an unused code = %q", s)
	}
}

// rsaKey is an RSA public key of exactly bits bits; KeyTypeOf only looks at
// the modulus size and exponent, so there is no need to generate one.
func rsaKey(bits, e int) *rsa.PublicKey {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	return &rsa.PublicKey{N: n.Add(n, big.NewInt(1)), E: e}
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func TestKeyTypeOf(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	xPub, _ := ecdh.X25519().GenerateKey(rand.Reader)
	for _, c := range []struct {
		name string
		pub  crypto.PublicKey
		want string // "": refused
	}{
		{"RSA 1024", rsaKey(1024, 65537), ""},
		{"RSA 2047", rsaKey(2047, 65537), ""},
		{"RSA 2048", rsaKey(2048, 65537), KeyRSA2048},
		{"RSA 3072", rsaKey(3072, 65537), KeyRSA3072},
		{"RSA 4096", rsaKey(4096, 65537), KeyRSA4096},
		{"RSA 8192", rsaKey(8192, 65537), "rsa-8192"},
		{"RSA 8193", rsaKey(8193, 65537), ""},
		{"RSA exponent 3", rsaKey(2048, 3), KeyRSA2048},
		{"RSA exponent 1", rsaKey(2048, 1), ""},
		{"RSA even exponent", rsaKey(2048, 65536), ""},
		{"P-224", ecKey(t, elliptic.P224()), ""},
		{"P-256", ecKey(t, elliptic.P256()), KeyECDSAP256},
		{"P-384", ecKey(t, elliptic.P384()), KeyECDSAP384},
		{"P-521", ecKey(t, elliptic.P521()), KeyECDSAP521},
		{"Ed25519", edPub, KeyEd25519},
		{"X25519", xPub.PublicKey(), ""},
		{"nil", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := KeyTypeOf(c.pub)
			if c.want == "" {
				if err == nil {
					t.Fatalf("KeyTypeOf = %q, want an error", got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("KeyTypeOf = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestFingerprints(t *testing.T) {
	if got := Fingerprint([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("Fingerprint(abc) = %s", got)
	}
	a, b := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P256())
	fa, err := SPKIFingerprint(a)
	if err != nil || len(fa) != 64 {
		t.Fatalf("SPKIFingerprint = %q, %v", fa, err)
	}
	if fb, _ := SPKIFingerprint(b); fb == fa {
		t.Error("two keys share an SPKI fingerprint")
	}
	if again, _ := SPKIFingerprint(a); again != fa {
		t.Error("SPKIFingerprint is not deterministic")
	}
	if _, err := SPKIFingerprint("not a key"); err == nil {
		t.Error("SPKIFingerprint accepted a non-key")
	}
}

func TestRoles(t *testing.T) {
	for _, s := range []string{"admin", "operator", "auditor"} {
		if r, err := ParseRole(s); err != nil || string(r) != s {
			t.Errorf("ParseRole(%q) = %q, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "Admin", "root", " admin"} {
		if _, err := ParseRole(s); err == nil {
			t.Errorf("ParseRole(%q) accepted", s)
		}
	}
}

func TestTokenActiveAndScope(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		tok  Token
		at   time.Time
		want bool
	}{
		{"no expiry", Token{}, now.AddDate(50, 0, 0), true},
		{"before expiry", Token{ExpiresAt: now.Add(time.Hour)}, now, true},
		{"at expiry", Token{ExpiresAt: now}, now, false},
		{"after expiry", Token{ExpiresAt: now}, now.Add(time.Nanosecond), false},
		{"revoked", Token{RevokedAt: now}, now.Add(-time.Hour), false},
		{"revoked, not expired", Token{RevokedAt: now, ExpiresAt: now.Add(time.Hour)}, now, false},
	} {
		if got := c.tok.Active(c.at); got != c.want {
			t.Errorf("%s: Active = %v, want %v", c.name, got, c.want)
		}
	}
	all, scoped := Token{}, Token{Profiles: []string{"web", "db"}}
	for _, c := range []struct {
		tok     Token
		profile string
		want    bool
	}{
		{all, "anything", true},
		{scoped, "web", true},
		{scoped, "db", true},
		{scoped, "other", false},
		{scoped, "Web", false},
		{scoped, "", false},
	} {
		if got := c.tok.AllowsProfile(c.profile); got != c.want {
			t.Errorf("Token%v.AllowsProfile(%q) = %v, want %v", c.tok.Profiles, c.profile, got, c.want)
		}
	}
}

func TestEffectiveStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		status   CertStatus
		notAfter time.Time
		want     string
	}{
		{StatusIssued, now.Add(time.Hour), "issued"},
		{StatusIssued, now, "issued"}, // NotAfter is inclusive
		{StatusIssued, now.Add(-time.Second), "expired"},
		{StatusRevoked, now.Add(-time.Hour), "revoked"},
		{StatusPlanned, now.Add(-time.Hour), "planned"},
	} {
		c2 := Certificate{Status: c.status, NotAfter: c.notAfter}
		if got := c2.EffectiveStatus(now); got != c.want {
			t.Errorf("%s, not after %v: EffectiveStatus = %q, want %q", c.status, c.notAfter, got, c.want)
		}
	}
}
