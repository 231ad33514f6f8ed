package assess

import (
	"crypto/dsa" //nolint:staticcheck // to recognise DSA keys, never to use them
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Severities, lowest first; Rank orders them.
const (
	SevInfo     = "info"
	SevLow      = "low"
	SevMedium   = "medium"
	SevHigh     = "high"
	SevCritical = "critical"
)

var severities = []string{SevInfo, SevLow, SevMedium, SevHigh, SevCritical}

// Rank returns the order of a severity (info 0 … critical 4), -1 if unknown.
func Rank(sev string) int {
	for i, s := range severities {
		if s == sev {
			return i
		}
	}
	return -1
}

// Config tunes the rules. Zero values take the defaults (DefaultConfig).
type Config struct {
	// ExpiryThresholds: an identity expiring within one of these is a
	// finding; the nearest threshold it is within sets the severity
	// (within 30 d medium, within 7 d high, within 1 d critical).
	ExpiryThresholds []time.Duration
	// MaxTLSValidity: longest lifetime of a TLS server certificate (398 d,
	// the CA/Browser Forum limit).
	MaxTLSValidity time.Duration
	MinRSABits     int // 2048
	MinECBits      int // 256
	FermatRounds   int // 100, as Boulder
	// Owners: when set, an owner outside this list is a finding.
	Owners []string
	// AgentStaleAfter: an active agent that has not contacted the server
	// for this long while its current certificate is valid (7 d).
	AgentStaleAfter time.Duration
	// OrphanAfter: a Sigil certificate older than this that discovery never
	// saw anywhere is an orphan (7 d).
	OrphanAfter time.Duration
	// RenewalGrace: how long past its planned renewal point a managed
	// identity may go before the renewal counts as overdue (1 h).
	RenewalGrace time.Duration
	// SupersededGrace: how long an old certificate may still be served
	// after its replacement was issued, for deployment (24 h).
	SupersededGrace time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ExpiryThresholds: []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour},
		MaxTLSValidity:   398 * 24 * time.Hour,
		MinRSABits:       2048,
		MinECBits:        256,
		FermatRounds:     100,
		AgentStaleAfter:  7 * 24 * time.Hour,
		OrphanAfter:      7 * 24 * time.Hour,
		RenewalGrace:     time.Hour,
		SupersededGrace:  24 * time.Hour,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if len(c.ExpiryThresholds) == 0 {
		c.ExpiryThresholds = d.ExpiryThresholds
	}
	if c.MaxTLSValidity <= 0 {
		c.MaxTLSValidity = d.MaxTLSValidity
	}
	if c.MinRSABits <= 0 {
		c.MinRSABits = d.MinRSABits
	}
	if c.MinECBits <= 0 {
		c.MinECBits = d.MinECBits
	}
	if c.FermatRounds <= 0 {
		c.FermatRounds = d.FermatRounds
	}
	if c.AgentStaleAfter <= 0 {
		c.AgentStaleAfter = d.AgentStaleAfter
	}
	if c.OrphanAfter <= 0 {
		c.OrphanAfter = d.OrphanAfter
	}
	if c.RenewalGrace <= 0 {
		c.RenewalGrace = d.RenewalGrace
	}
	if c.SupersededGrace <= 0 {
		c.SupersededGrace = d.SupersededGrace
	}
}

// Rule is one check.
type Rule struct {
	ID          string
	Severity    string // default severity; a Hit may raise or lower it
	Title       string
	Description string
	Remediation string
	Check       func(c *Config, now time.Time, f *Facts) []Hit
}

// Hit is one finding a rule produced about the identity.
type Hit struct {
	Qualifier string // distinguishes several hits of one rule (a threshold, a location)
	Severity  string // empty: the rule's
	Location  string
	Message   string
}

// Rules returns every rule, in a stable order.
func Rules() []Rule { return rules }

// RuleByID returns a rule, or nil.
func RuleByID(id string) *Rule {
	for i := range rules {
		if rules[i].ID == id {
			return &rules[i]
		}
	}
	return nil
}

// live: a certificate that is issued (not revoked or superseded) and not expired.
func live(f *Facts, now time.Time) bool {
	return !f.Revoked && f.SupersededAt.IsZero() && now.Before(f.NotAfter)
}

// days formats a duration for messages: "29d", or "20h" / "45m" under two days.
func days(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d >= time.Hour:
		return strconv.Itoa(int(d.Round(time.Hour)/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d.Round(time.Minute)/time.Minute)) + "m"
}

var rules = []Rule{
	{
		ID: "expiring", Severity: SevMedium, Title: "Certificate expiring",
		Description: "The certificate expires within a configured threshold (30/7/1 days) and nothing renews it on schedule: either nobody manages it, or its managed renewal is already overdue.",
		Remediation: "Renew the certificate and deploy the new one, or let a Sigil agent or ACME client manage it.",
		Check:       checkExpiring,
	},
	{
		ID: "renewal-overdue", Severity: SevHigh, Title: "Managed renewal overdue",
		Description: "An agent, ACME client or the server renews this certificate, but it is past its planned renewal point and no replacement was issued.",
		Remediation: "Check the agent or ACME client that manages it (sigil agent status, its logs); renew manually if it cannot.",
		Check:       checkRenewalOverdue,
	},
	{
		ID: "expired-deployed", Severity: SevCritical, Title: "Expired certificate still deployed",
		Description: "Discovery saw the certificate at a location after its notAfter: clients connecting there fail.",
		Remediation: "Deploy a valid certificate at the location and reload the service.",
		Check:       checkExpiredDeployed,
	},
	{
		ID: "weak-key", Severity: SevHigh, Title: "Weak key",
		Description: "RSA under the minimum size, an elliptic curve under the minimum size, DSA, an RSA modulus with the ROCA fingerprint (CVE-2017-15361) or factorable by Fermat's method (primes too close), or a key on the configured compromised-key list.",
		Remediation: "Generate a new key (ECDSA P-256 or RSA >= 2048 on a sound generator), issue a new certificate for it, and revoke the old one.",
		Check:       checkWeakKey,
	},
	{
		ID: "weak-signature", Severity: SevHigh, Title: "Weak signature algorithm",
		Description: "The certificate is signed with SHA-1 or MD5, which allow forged certificates.",
		Remediation: "Reissue the certificate from a CA signing with SHA-256 or better.",
		Check:       checkWeakSignature,
	},
	{
		ID: "validity-too-long", Severity: SevMedium, Title: "Validity longer than policy",
		Description: "A TLS server certificate valid for longer than the policy maximum (398 days by default, the CA/Browser Forum limit).",
		Remediation: "Reissue with a shorter lifetime (and automate renewal).",
		Check:       checkValidity,
	},
	{
		ID: "untrusted-issuer", Severity: SevMedium, Title: "Self-signed or unknown issuer",
		Description: "A leaf certificate that is self-signed, or whose issuer is neither a Sigil CA nor a configured trust anchor.",
		Remediation: "Replace it with a certificate from a managed CA, or add its CA as a trust anchor if it is legitimate.",
		Check:       checkIssuer,
	},
	{
		ID: "key-reuse", Severity: SevHigh, Title: "Key reuse",
		Description: "One public key is in several certificates, or its private key is on several machines: one compromise spreads.",
		Remediation: "Give each certificate and machine its own key.",
		Check:       checkKeyReuse,
	},
	{
		ID: "revoked-served", Severity: SevCritical, Title: "Revoked certificate still served",
		Description: "Discovery saw a revoked certificate at a location after its revocation time.",
		Remediation: "Deploy the replacement at the location and reload the service.",
		Check:       checkRevokedServed,
	},
	{
		ID: "superseded-served", Severity: SevMedium, Title: "Superseded certificate still served",
		Description: "A renewal of the certificate was issued, but discovery still saw the old one at a location after the replacement's issuance plus a grace period.",
		Remediation: "Deploy the renewed certificate at the location and reload the service.",
		Check:       checkSupersededServed,
	},
	{
		ID: "orphan", Severity: SevLow, Title: "Issued but never seen deployed",
		Description: "Sigil issued the certificate a while ago, but discovery never saw it anywhere.",
		Remediation: "Find where it is used and scan there, or revoke it if it is not needed.",
		Check:       checkOrphan,
	},
	{
		ID: "shadow", Severity: SevMedium, Title: "Deployed but not from a managed CA",
		Description: "A certificate seen on the network or on disk that no managed CA issued (shadow PKI).",
		Remediation: "Replace it with a Sigil-issued certificate, or import its CA as a trust anchor.",
		Check:       checkShadow,
	},
	{
		ID: "no-owner", Severity: SevLow, Title: "No owner",
		Description: "The identity has no owner, or an owner outside the configured owner list: nobody will act on its alerts.",
		Remediation: "Set an owner (sigil inventory owner …) from the owner list.",
		Check:       checkOwner,
	},
	{
		ID: "agent-stale", Severity: SevMedium, Title: "Agent not seen",
		Description: "An enrolled, active agent has not contacted the server for the configured period while its current certificate is still valid.",
		Remediation: "Check the machine and the agent; revoke the certificate if the machine is gone.",
		Check:       checkAgentStale,
	},
	{
		ID: "key-file-permissions", Severity: SevHigh, Title: "Private key readable by others",
		Description: "A private key file is readable or writable by its group or by others.",
		Remediation: "chmod 600 the file (and check who could have read it).",
		Check:       checkKeyPerms,
	},
	{
		ID: "unmatched-private-key", Severity: SevLow, Title: "Private key without a certificate",
		Description: "A private key file whose public key is in no known certificate.",
		Remediation: "Delete the key if unused, or find its certificate and scan it.",
		Check:       checkUnmatchedKey,
	},
	{
		ID: "lint", Severity: SevMedium, Title: "Certificate lint errors",
		Description: "zlint (RFC 5280 and CA/Browser Forum lints) reports errors for the certificate.",
		Remediation: "Reissue from a CA that produces conforming certificates.",
		Check:       checkLint,
	},
	{
		ID: "lint-warning", Severity: SevInfo, Title: "Certificate lint warnings",
		Description: "zlint (RFC 5280 and CA/Browser Forum lints) reports warnings for the certificate: practices the standards advise against.",
		Remediation: "Reissue with the warned-about fields fixed when the certificate is next renewed.",
		Check:       checkLintWarnings,
	},
	{
		ID: "name-mismatch", Severity: SevHigh, Title: "Name mismatch",
		Description: "An endpoint serves the certificate for a server name (SNI) that is not among its names.",
		Remediation: "Serve a certificate that covers the name, or fix the endpoint's configuration.",
		Check:       checkNameMismatch,
	},
}

func checkExpiring(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind != "x509" || f.IsCA || !live(f, now) {
		return nil
	}
	if f.RenewalManaged && !now.After(f.RenewAt.Add(c.RenewalGrace)) {
		return nil // renews on schedule: no page at 30 days
	}
	left := f.NotAfter.Sub(now)
	// The nearest threshold the certificate is within.
	var hit time.Duration
	for _, t := range c.ExpiryThresholds {
		if left <= t && (hit == 0 || t < hit) {
			hit = t
		}
	}
	if hit == 0 {
		return nil
	}
	sev := SevMedium
	switch {
	case hit < 7*24*time.Hour:
		sev = SevCritical
	case hit < 30*24*time.Hour:
		sev = SevHigh
	}
	why := "not managed"
	if f.RenewalManaged {
		why = "managed renewal overdue since " + f.RenewAt.UTC().Format(time.RFC3339)
	}
	return []Hit{{Qualifier: days(hit), Severity: sev, Message: fmt.Sprintf("expires %s (in %s, threshold %s; %s)", f.NotAfter.UTC().Format(time.RFC3339), days(left), days(hit), why)}}
}

func checkRenewalOverdue(c *Config, now time.Time, f *Facts) []Hit {
	if !f.RenewalManaged || !live(f, now) || f.RenewAt.IsZero() || !now.After(f.RenewAt.Add(c.RenewalGrace)) {
		return nil
	}
	return []Hit{{Message: fmt.Sprintf("planned renewal at %s, not renewed; expires %s", f.RenewAt.UTC().Format(time.RFC3339), f.NotAfter.UTC().Format(time.RFC3339))}}
}

func checkExpiredDeployed(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind != "x509" || f.NotAfter.IsZero() || now.Before(f.NotAfter) {
		return nil
	}
	var out []Hit
	for _, l := range f.Locations {
		if l.LastSeen.After(f.NotAfter) {
			out = append(out, Hit{Qualifier: l.String(), Location: l.String(), Message: fmt.Sprintf("expired %s, seen at %s on %s", f.NotAfter.UTC().Format(time.RFC3339), l, l.LastSeen.UTC().Format(time.RFC3339))})
		}
	}
	return out
}

func checkWeakKey(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind == "secret" || (f.Kind == "x509" && !f.NotAfter.IsZero() && now.After(f.NotAfter)) {
		return nil
	}
	var out []Hit
	switch f.KeyAlgorithm {
	case "RSA":
		if f.KeySize > 0 && f.KeySize < c.MinRSABits {
			out = append(out, Hit{Qualifier: "size", Message: fmt.Sprintf("RSA %d bits (minimum %d)", f.KeySize, c.MinRSABits)})
		}
		if f.RSAModulus != nil {
			if ROCAVulnerable(f.RSAModulus) {
				out = append(out, Hit{Qualifier: "roca", Severity: SevCritical, Message: "RSA modulus has the ROCA fingerprint (CVE-2017-15361): the private key can be computed"})
			}
			if p, _ := FermatFactor(f.RSAModulus, c.FermatRounds); p != nil {
				out = append(out, Hit{Qualifier: "fermat", Severity: SevCritical, Message: "RSA modulus factors by Fermat's method (its primes are too close): the private key can be computed"})
			}
		}
		if f.RSAExponent != 0 && f.RSAExponent < 3 {
			out = append(out, Hit{Qualifier: "exponent", Message: fmt.Sprintf("RSA public exponent %d", f.RSAExponent)})
		}
	case "ECDSA":
		if f.KeySize > 0 && f.KeySize < c.MinECBits {
			out = append(out, Hit{Qualifier: "size", Message: fmt.Sprintf("elliptic curve of %d bits (minimum %d)", f.KeySize, c.MinECBits)})
		}
	case "DSA":
		out = append(out, Hit{Qualifier: "dsa", Message: "DSA key: deprecated and unsupported by modern clients"})
	}
	if f.Blocklisted {
		out = append(out, Hit{Qualifier: "blocklist", Severity: SevCritical, Message: "the key is on the compromised-key blocklist"})
	}
	return out
}

func checkWeakSignature(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind != "x509" || f.SelfSigned || now.After(f.NotAfter) {
		return nil // a self-signed root's own signature is not relied on
	}
	a := strings.ToUpper(f.SignatureAlg)
	if strings.Contains(a, "MD5") || strings.Contains(a, "MD2") || strings.Contains(a, "SHA1") {
		return []Hit{{Message: "signed with " + f.SignatureAlg}}
	}
	return nil
}

func checkValidity(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind != "x509" || !f.ServerAuth || f.IsCA || f.NotAfter.IsZero() {
		return nil
	}
	if v := f.NotAfter.Sub(f.NotBefore); v > c.MaxTLSValidity {
		return []Hit{{Message: fmt.Sprintf("TLS server certificate valid for %s (policy %s)", days(v), days(c.MaxTLSValidity))}}
	}
	return nil
}

func checkIssuer(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind != "x509" || f.IsCA || f.Source == "issued" || f.IssuerManaged || now.After(f.NotAfter) {
		return nil
	}
	if f.SelfSigned {
		return []Hit{{Qualifier: "self-signed", Message: "self-signed leaf certificate " + f.Subject}}
	}
	return []Hit{{Qualifier: "unknown", Severity: SevLow, Message: "issuer " + f.Issuer + " is not a managed CA or trust anchor"}}
}

func checkKeyReuse(c *Config, now time.Time, f *Facts) []Hit {
	if f.SPKI == "" || (f.Kind == "x509" && now.After(f.NotAfter)) {
		return nil
	}
	var out []Hit
	if f.Kind == "x509" && f.OtherCertsWithKey > 0 {
		out = append(out, Hit{Qualifier: "certificates", Message: fmt.Sprintf("public key %s… is in %d other certificate(s)", short(f.SPKI), f.OtherCertsWithKey)})
	}
	if f.KeyLocations > 1 {
		out = append(out, Hit{Qualifier: "locations", Message: fmt.Sprintf("private key of %s… found at %d locations", short(f.SPKI), f.KeyLocations)})
	}
	return out
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

func checkRevokedServed(c *Config, now time.Time, f *Facts) []Hit {
	if !f.Revoked {
		return nil
	}
	var out []Hit
	for _, l := range f.Locations {
		if l.Kind == "net" && l.LastSeen.After(f.RevokedAt) {
			out = append(out, Hit{Qualifier: l.String(), Location: l.String(), Message: fmt.Sprintf("revoked %s, served at %s on %s", f.RevokedAt.UTC().Format(time.RFC3339), l, l.LastSeen.UTC().Format(time.RFC3339))})
		}
	}
	return out
}

func checkSupersededServed(c *Config, now time.Time, f *Facts) []Hit {
	if f.Revoked || f.SupersededAt.IsZero() || now.After(f.NotAfter) {
		return nil
	}
	var out []Hit
	for _, l := range f.Locations {
		if l.Kind == "net" && l.LastSeen.After(f.SupersededAt.Add(c.SupersededGrace)) {
			out = append(out, Hit{Qualifier: l.String(), Location: l.String(), Message: fmt.Sprintf("replaced %s, still served at %s on %s", f.SupersededAt.UTC().Format(time.RFC3339), l, l.LastSeen.UTC().Format(time.RFC3339))})
		}
	}
	return out
}

func checkOrphan(c *Config, now time.Time, f *Facts) []Hit {
	if f.Source != "issued" || !f.InventoryActive || len(f.Locations) > 0 || !live(f, now) || f.RenewalManaged {
		return nil
	}
	if f.IssuedAt.IsZero() || now.Sub(f.IssuedAt) < c.OrphanAfter {
		return nil
	}
	return []Hit{{Message: fmt.Sprintf("issued %s, never seen deployed", f.IssuedAt.UTC().Format(time.RFC3339))}}
}

func checkShadow(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind != "x509" || f.Source == "issued" || f.IssuerManaged || f.IsCA || len(f.Locations) == 0 || now.After(f.NotAfter) {
		return nil
	}
	return []Hit{{Message: fmt.Sprintf("deployed at %s, issued by %s (not a managed CA)", f.Locations[0], f.Issuer)}}
}

func checkOwner(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind == "x509" && (f.IsCA || !live(f, now)) {
		return nil
	}
	if f.Owner == "" {
		return []Hit{{Qualifier: "none", Message: "no owner"}}
	}
	if len(c.Owners) > 0 {
		for _, o := range c.Owners {
			if o == f.Owner {
				return nil
			}
		}
		return []Hit{{Qualifier: "unknown", Message: fmt.Sprintf("owner %q is not in the owner list", f.Owner)}}
	}
	return nil
}

func checkAgentStale(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind != "x509" || f.Agent == "" || !live(f, now) || now.Sub(f.AgentLastSeen) <= c.AgentStaleAfter {
		return nil
	}
	return []Hit{{Qualifier: f.Agent, Location: "agent " + f.Agent, Message: fmt.Sprintf("agent %s last seen %s (%s ago) and still holds this valid certificate (expires in %s)",
		f.Agent, f.AgentLastSeen.UTC().Format(time.RFC3339), days(now.Sub(f.AgentLastSeen)), days(f.NotAfter.Sub(now)))}}
}

func checkKeyPerms(c *Config, now time.Time, f *Facts) []Hit {
	var out []Hit
	for _, l := range f.Locations {
		if (l.Kind == "fs" || l.Kind == "agent") && strings.HasPrefix(l.Detail, "private key") && l.FileMode&0o077 != 0 {
			out = append(out, Hit{Qualifier: l.String(), Location: l.String(), Message: fmt.Sprintf("%s has mode %04o", l.Path, l.FileMode&0o7777)})
		}
	}
	return out
}

func checkUnmatchedKey(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind != "private-key" || f.HasCertificate || len(f.Locations) == 0 {
		return nil
	}
	return []Hit{{Message: fmt.Sprintf("private key at %s matches no known certificate", f.Locations[0])}}
}

func checkLint(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind != "x509" || len(f.LintErrors) == 0 || now.After(f.NotAfter) {
		return nil
	}
	return []Hit{{Message: strings.Join(f.LintErrors, "; ")}}
}

func checkLintWarnings(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind != "x509" || len(f.LintWarnings) == 0 || now.After(f.NotAfter) {
		return nil
	}
	return []Hit{{Message: strings.Join(f.LintWarnings, "; ")}}
}

func checkNameMismatch(c *Config, now time.Time, f *Facts) []Hit {
	if f.Kind != "x509" || f.IsCA {
		return nil
	}
	var out []Hit
	for _, l := range f.Locations {
		if l.Kind != "net" || l.SNI == "" || nameMatches(l.SNI, f.DNSNames, f.IPs) {
			continue
		}
		out = append(out, Hit{Qualifier: l.String(), Location: l.String(), Message: fmt.Sprintf("served for %q, which is not among its names %v", l.SNI, append(append([]string{}, f.DNSNames...), f.IPs...))})
	}
	return out
}

// nameMatches applies RFC 6125 matching: exact (ASCII case-insensitive), or
// a leftmost "*" label matching exactly one label.
func nameMatches(name string, dns, ips []string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if ip := net.ParseIP(name); ip != nil {
		for _, s := range ips {
			if x := net.ParseIP(s); x != nil && x.Equal(ip) {
				return true
			}
		}
		return false
	}
	for _, d := range dns {
		d = strings.ToLower(d)
		if d == name {
			return true
		}
		if rest, ok := strings.CutPrefix(d, "*."); ok {
			if _, tail, ok := strings.Cut(name, "."); ok && tail == rest {
				return true
			}
		}
	}
	return false
}

func joinHostPort(h string, p int) string { return net.JoinHostPort(h, strconv.Itoa(p)) }

// setKey fills key facts from a public key.
func setKey(f *Facts, pub any) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		f.KeyAlgorithm, f.KeySize, f.RSAModulus, f.RSAExponent = "RSA", k.N.BitLen(), k.N, k.E
	case *ecdsa.PublicKey:
		f.KeyAlgorithm, f.KeySize = "ECDSA", k.Curve.Params().BitSize
	case ed25519.PublicKey:
		f.KeyAlgorithm, f.KeySize = "Ed25519", 256
	case *dsa.PublicKey:
		f.KeyAlgorithm, f.KeySize = "DSA", k.P.BitLen()
	}
}

// Evaluate runs every rule over one identity.
func Evaluate(c Config, now time.Time, f *Facts) []Result {
	c.fill()
	var out []Result
	for i := range rules {
		r := &rules[i]
		for _, h := range r.Check(&c, now, f) {
			sev := h.Severity
			if sev == "" {
				sev = r.Severity
			}
			id := r.ID + ":" + f.Fingerprint
			if h.Qualifier != "" {
				id += ":" + h.Qualifier
			}
			out = append(out, Result{ID: id, Rule: r.ID, Severity: sev, Subject: f.Fingerprint, Serial: f.Serial, Location: h.Location, Message: h.Message, Qualifier: h.Qualifier})
		}
	}
	return out
}

// Result is a rule's hit, ready to store as a finding.
type Result struct {
	ID, Rule, Severity, Subject, Serial, Location, Message, Qualifier string
}
