package policy

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
)

// Key types a profile may name, indexed for a bitmask.
var keyTypeNames = [...]string{
	identity.KeyECDSAP256, identity.KeyECDSAP384, identity.KeyECDSAP521,
	identity.KeyEd25519, identity.KeyRSA2048, identity.KeyRSA3072, identity.KeyRSA4096,
}

// defaultKeyTypes leaves out P-521, which few TLS stacks accept.
var defaultKeyTypes = []string{
	identity.KeyECDSAP256, identity.KeyECDSAP384,
	identity.KeyRSA2048, identity.KeyRSA3072, identity.KeyRSA4096, identity.KeyEd25519,
}

func keyTypeIndex(s string) int {
	for i, n := range keyTypeNames {
		if n == s {
			return i
		}
	}
	return -1
}

// keyUsageCapable is what a key of each type can do: RSA encrypts but does not
// agree keys; ECDSA keys can do ECDH but not encryption; Ed25519 only signs.
func keyUsageCapable(kt string) (capable, def x509.KeyUsage) {
	const sign = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	switch {
	case strings.HasPrefix(kt, "rsa-"):
		return sign | x509.KeyUsageKeyEncipherment, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	case strings.HasPrefix(kt, "ecdsa-"):
		return sign | x509.KeyUsageKeyAgreement, x509.KeyUsageDigitalSignature
	}
	return sign, x509.KeyUsageDigitalSignature
}

var keyUsageNames = map[string]x509.KeyUsage{
	"digital_signature":  x509.KeyUsageDigitalSignature,
	"key_encipherment":   x509.KeyUsageKeyEncipherment,
	"key_agreement":      x509.KeyUsageKeyAgreement,
	"content_commitment": x509.KeyUsageContentCommitment,
}

var extKeyUsageNames = map[string]x509.ExtKeyUsage{
	"server_auth":      x509.ExtKeyUsageServerAuth,
	"client_auth":      x509.ExtKeyUsageClientAuth,
	"code_signing":     x509.ExtKeyUsageCodeSigning,
	"email_protection": x509.ExtKeyUsageEmailProtection,
	"time_stamping":    x509.ExtKeyUsageTimeStamping,
}

var defaultExtKeyUsage = []string{"server_auth", "client_auth"}

// Compiled is a validated profile ready to evaluate requests. It is immutable
// and safe for concurrent use.
type Compiled struct {
	p            Profile // normalised: defaults filled in
	keyTypes     uint16  // bit i: keyTypeNames[i] allowed
	keyUsage     [len(keyTypeNames)]x509.KeyUsage
	eku          []x509.ExtKeyUsage
	defaultTTL   time.Duration
	maxTTL       time.Duration
	maxNames     int
	dns          dnsSet
	ips          []netip.Prefix
	uris         []uriPattern
	emails       []emailPattern
	rule         *celRule
	allowedDNS   string // for refusal messages
	allowedIPs   string
	allowedURIs  string
	allowedEmail string
}

// Compile validates a profile and compiles its patterns, CIDRs and rule.
func Compile(p Profile) (*Compiled, error) { return compile(&p) }

// Profile returns a copy of the profile with its defaults filled in:
// key_types, default_ttl, max_ttl, ext_key_usage and max_names. An empty
// key_usage stays empty, meaning "by key type".
func (c *Compiled) Profile() Profile { return c.p.clone() }

// validName is ^[a-z0-9][a-z0-9._-]{0,62}$.
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-') {
			continue
		}
		return false
	}
	return true
}

func compile(in *Profile) (*Compiled, error) {
	p := in.clone()
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("profile %q: %s: %s", p.Name, field, fmt.Sprintf(format, args...))
	}
	c := &Compiled{}
	if !validName(p.Name) {
		return nil, fail("name", "must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if p.Issuer != "" && !validName(p.Issuer) {
		return nil, fail("issuer", "%q must be 1-63 lowercase letters, digits, '.', '_' or '-'", p.Issuer)
	}

	if len(p.KeyTypes) == 0 {
		p.KeyTypes = append([]string(nil), defaultKeyTypes...)
	}
	for _, kt := range p.KeyTypes {
		i := keyTypeIndex(kt)
		if i < 0 {
			return nil, fail("key_types", "unknown key type %q (known: %s)", kt, strings.Join(keyTypeNames[:], ", "))
		}
		c.keyTypes |= 1 << i
	}

	if err := c.compileTTL(&p, fail); err != nil {
		return nil, err
	}

	var ku x509.KeyUsage
	for _, n := range p.KeyUsage {
		u, ok := keyUsageNames[n]
		switch {
		case n == "cert_sign" || n == "crl_sign":
			return nil, fail("key_usage", "%q is not allowed: a profile never issues CA certificates", n)
		case !ok:
			return nil, fail("key_usage", "unknown key usage %q (known: digital_signature, key_encipherment, key_agreement, content_commitment)", n)
		}
		ku |= u
	}
	for i, kt := range keyTypeNames {
		if c.keyTypes&(1<<i) == 0 {
			continue
		}
		capable, def := keyUsageCapable(kt)
		c.keyUsage[i] = def
		if len(p.KeyUsage) > 0 {
			if c.keyUsage[i] = ku & capable; c.keyUsage[i] == 0 {
				return nil, fail("key_usage", "none of the listed usages applies to %s keys", kt)
			}
		}
	}

	if len(p.ExtKeyUsage) == 0 {
		p.ExtKeyUsage = append([]string(nil), defaultExtKeyUsage...)
	}
	for _, n := range p.ExtKeyUsage {
		u, ok := extKeyUsageNames[n]
		switch {
		case n == "ocsp_signing" || n == "any":
			return nil, fail("ext_key_usage", "%q is not allowed in a profile", n)
		case !ok:
			return nil, fail("ext_key_usage", "unknown extended key usage %q (known: server_auth, client_auth, code_signing, email_protection, time_stamping)", n)
		}
		if !containsEKU(c.eku, u) {
			c.eku = append(c.eku, u)
		}
	}

	var err error
	if c.dns, err = compileDNSSet(p.DNS); err != nil {
		return nil, fail("dns", "%v", err)
	}
	for _, s := range p.IPs {
		pr, err := compilePrefix(s)
		if err != nil {
			return nil, fail("ips", "CIDR %q: %v", s, err)
		}
		c.ips = append(c.ips, pr)
	}
	for _, s := range p.URIs {
		u, err := compileURIPattern(s)
		if err != nil {
			return nil, fail("uris", "pattern %q: %v", s, err)
		}
		c.uris = append(c.uris, u)
	}
	for _, s := range p.Emails {
		e, err := compileEmailPattern(s)
		if err != nil {
			return nil, fail("emails", "pattern %q: %v", s, err)
		}
		c.emails = append(c.emails, e)
	}
	if len(p.DNS)+len(p.IPs)+len(p.URIs)+len(p.Emails) == 0 {
		return nil, fail("dns", "the profile allows no names: set at least one of dns, ips, uris or emails")
	}
	c.allowedDNS, c.allowedIPs = allowedList(p.DNS), allowedList(p.IPs)
	c.allowedURIs, c.allowedEmail = allowedList(p.URIs), allowedList(p.Emails)

	for _, l := range p.RequiredLabels {
		if l == "" || strings.TrimSpace(l) != l {
			return nil, fail("required_labels", "label name %q is empty or has surrounding spaces", l)
		}
	}

	switch {
	case p.MaxNames < 0 || p.MaxNames > MaxNamesLimit:
		return nil, fail("max_names", "%d is not between 1 and %d", p.MaxNames, MaxNamesLimit)
	case p.MaxNames == 0:
		p.MaxNames = DefaultMaxNames
	}
	c.maxNames = p.MaxNames

	if p.Rule != "" {
		if c.rule, err = compileRule(p.Rule); err != nil {
			return nil, fail("rule", "%v", err)
		}
	}
	c.p = p
	return c, nil
}

// compileTTL fills in and checks the lifetimes (see the package doc).
func (c *Compiled) compileTTL(p *Profile, fail func(string, string, ...any) error) error {
	def, hi := time.Duration(p.DefaultTTL), time.Duration(p.MaxTTL)
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"default_ttl", def}, {"max_ttl", hi}} {
		switch {
		case f.d < 0:
			return fail(f.name, "must not be negative")
		case f.d > 0 && f.d < MinTTL:
			return fail(f.name, "%s is shorter than the minimum %s", Duration(f.d), Duration(MinTTL))
		case f.d > MaxTTLLimit:
			return fail(f.name, "%s is longer than the maximum %s", Duration(f.d), Duration(MaxTTLLimit))
		}
	}
	switch {
	case def == 0 && hi == 0:
		def, hi = DefaultTTL, DefaultTTL
	case def == 0:
		def = min(hi, DefaultTTL)
	case hi == 0:
		hi = def
	}
	if def > hi {
		return fail("default_ttl", "%s exceeds max_ttl %s", Duration(def), Duration(hi))
	}
	c.defaultTTL, c.maxTTL = def, hi
	p.DefaultTTL, p.MaxTTL = Duration(def), Duration(hi)
	return nil
}

func containsEKU(l []x509.ExtKeyUsage, u x509.ExtKeyUsage) bool {
	for _, v := range l {
		if v == u {
			return true
		}
	}
	return false
}

// allowedList renders patterns for refusal messages, capped so a long list
// does not flood logs.
func allowedList(l []string) string {
	const show = 10
	if len(l) == 0 {
		return "none"
	}
	if len(l) <= show {
		return strings.Join(l, ", ")
	}
	return strings.Join(l[:show], ", ") + fmt.Sprintf(", and %d more", len(l)-show)
}

// Usages returns the key usage and extended key usages a certificate for a
// key of keyType would get under this profile; ok is false if the profile
// does not allow keyType. The RA lints a sample certificate of each shape
// when a profile is applied.
func (c *Compiled) Usages(keyType string) (ku x509.KeyUsage, eku []x509.ExtKeyUsage, ok bool) {
	i := keyTypeIndex(keyType)
	if i < 0 || c.keyTypes&(1<<i) == 0 {
		return 0, nil, false
	}
	return c.keyUsage[i], slices.Clone(c.eku), true
}

// DefaultTTL returns the profile's default certificate lifetime.
func (c *Compiled) DefaultTTL() time.Duration { return c.defaultTTL }
