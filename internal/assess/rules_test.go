package assess

import (
	"crypto/rand"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// base is a healthy, deployed, owned, unmanaged TLS certificate issued by Sigil.
func base() *Facts {
	return &Facts{
		Fingerprint: "fp", Kind: "x509", Source: "issued", Serial: "1f",
		Subject: "CN=app.test", Issuer: "CN=Sigil Intermediate CA", DNSNames: []string{"app.test", "*.web.test"},
		NotBefore: now.Add(-10 * day), NotAfter: now.Add(80 * day), ServerAuth: true, SignatureAlg: "ECDSA-SHA256",
		IssuerManaged: true, KeyAlgorithm: "ECDSA", KeySize: 256, SPKI: "aaaabbbbccccddddeeee",
		IssuedAt: now.Add(-10 * day), Owner: "team-a", InventoryActive: true,
		Locations: []Location{{Kind: "net", Host: "10.0.0.1", Port: 443, SNI: "app.test", FirstSeen: now.Add(-9 * day), LastSeen: now.Add(-time.Hour)}},
	}
}

func hits(rule string, f *Facts, c Config) []Result {
	var out []Result
	for _, r := range Evaluate(c, now, f) {
		if r.Rule == rule {
			out = append(out, r)
		}
	}
	return out
}

// closePrimes returns an RSA-like modulus of two primes close together.
func closePrimes(t *testing.T) *big.Int {
	p, err := rand.Prime(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	q := new(big.Int).Add(p, big.NewInt(2))
	for !q.ProbablyPrime(20) {
		q.Add(q, big.NewInt(2))
	}
	return new(big.Int).Mul(p, q)
}

// rocaModulus builds N = p*q with p, q of the form k*M + (65537^a mod M),
// the structure of Infineon RSALib primes (primality is irrelevant to the
// fingerprint).
func rocaModulus() *big.Int {
	m := big.NewInt(2)
	for _, p := range rocaPrimes {
		m.Mul(m, big.NewInt(p))
	}
	part := func(k, a int64) *big.Int {
		g := new(big.Int).Exp(big.NewInt(65537), big.NewInt(a), m)
		return g.Add(g, new(big.Int).Mul(big.NewInt(k), m))
	}
	return new(big.Int).Mul(part(1234567, 77), part(7654321, 1001))
}

func randomModulus(t *testing.T) *big.Int {
	p, _ := rand.Prime(rand.Reader, 1024)
	q, _ := rand.Prime(rand.Reader, 1024)
	return new(big.Int).Mul(p, q)
}

func TestRules(t *testing.T) {
	cfg := DefaultConfig()
	closeN := closePrimes(t)
	farN := randomModulus(t)
	for _, tc := range []struct {
		rule    string
		name    string
		mutate  func(f *Facts)
		cfg     func(c *Config)
		want    int    // hits
		sev     string // severity of the first hit, when want > 0
		message string // substring of the first hit's message
	}{
		{rule: "expiring", name: "80 days left", mutate: func(f *Facts) {}},
		{rule: "expiring", name: "20 days left, unmanaged", mutate: func(f *Facts) { f.NotAfter = now.Add(20 * day) }, want: 1, sev: SevMedium, message: "threshold 30d"},
		{rule: "expiring", name: "5 days left, unmanaged", mutate: func(f *Facts) { f.NotAfter = now.Add(5 * day) }, want: 1, sev: SevHigh, message: "threshold 7d"},
		{rule: "expiring", name: "12 hours left", mutate: func(f *Facts) { f.NotAfter = now.Add(12 * time.Hour) }, want: 1, sev: SevCritical, message: "threshold 24h"},
		{rule: "expiring", name: "managed, renewing on schedule", mutate: func(f *Facts) {
			f.NotAfter, f.RenewalManaged, f.RenewAt = now.Add(5*day), true, now.Add(day)
		}},
		{rule: "expiring", name: "managed, renewal overdue", mutate: func(f *Facts) {
			f.NotAfter, f.RenewalManaged, f.RenewAt = now.Add(5*day), true, now.Add(-2*day)
		}, want: 1, sev: SevHigh, message: "overdue"},
		{rule: "expiring", name: "custom thresholds", cfg: func(c *Config) { c.ExpiryThresholds = []time.Duration{90 * day} }, mutate: func(f *Facts) {}, want: 1, sev: SevMedium},
		{rule: "expiring", name: "superseded", mutate: func(f *Facts) { f.NotAfter, f.SupersededAt = now.Add(3*day), now.Add(-day) }},
		{rule: "renewal-overdue", name: "on schedule", mutate: func(f *Facts) { f.RenewalManaged, f.RenewAt = true, now.Add(day) }},
		{rule: "renewal-overdue", name: "overdue", mutate: func(f *Facts) { f.RenewalManaged, f.RenewAt = true, now.Add(-3*time.Hour) }, want: 1, sev: SevHigh},
		{rule: "expired-deployed", name: "valid", mutate: func(f *Facts) {}},
		{rule: "expired-deployed", name: "expired, last seen before expiry", mutate: func(f *Facts) { f.NotAfter = now.Add(-time.Minute); f.Locations[0].LastSeen = now.Add(-time.Hour) }},
		{rule: "expired-deployed", name: "expired, seen after", mutate: func(f *Facts) { f.NotAfter = now.Add(-2 * time.Hour) }, want: 1, sev: SevCritical, message: "10.0.0.1:443"},
		{rule: "weak-key", name: "P-256", mutate: func(f *Facts) {}},
		{rule: "weak-key", name: "P-224", mutate: func(f *Facts) { f.KeySize = 224 }, want: 1, sev: SevHigh},
		{rule: "weak-key", name: "RSA 1024", mutate: func(f *Facts) { f.KeyAlgorithm, f.KeySize = "RSA", 1024 }, want: 1, message: "RSA 1024"},
		{rule: "weak-key", name: "RSA 2048 random", mutate: func(f *Facts) { f.KeyAlgorithm, f.KeySize, f.RSAModulus = "RSA", 2048, farN }},
		{rule: "weak-key", name: "ROCA", mutate: func(f *Facts) { f.KeyAlgorithm, f.KeySize, f.RSAModulus = "RSA", 2048, rocaModulus() }, want: 1, sev: SevCritical, message: "ROCA"},
		{rule: "weak-key", name: "Fermat", mutate: func(f *Facts) { f.KeyAlgorithm, f.KeySize, f.RSAModulus = "RSA", 2048, closeN }, want: 1, sev: SevCritical, message: "Fermat"},
		{rule: "weak-key", name: "blocklisted", mutate: func(f *Facts) { f.Blocklisted = true }, want: 1, sev: SevCritical},
		{rule: "weak-key", name: "DSA", mutate: func(f *Facts) { f.KeyAlgorithm = "DSA" }, want: 1},
		{rule: "weak-signature", name: "SHA-256", mutate: func(f *Facts) {}},
		{rule: "weak-signature", name: "SHA-1", mutate: func(f *Facts) { f.SignatureAlg = "SHA1-RSA" }, want: 1, sev: SevHigh},
		{rule: "weak-signature", name: "MD5", mutate: func(f *Facts) { f.SignatureAlg = "MD5-RSA" }, want: 1},
		{rule: "weak-signature", name: "SHA-1 self-signed root", mutate: func(f *Facts) { f.SignatureAlg, f.SelfSigned, f.IsCA = "SHA1-RSA", true, true }},
		{rule: "validity-too-long", name: "90 days", mutate: func(f *Facts) {}},
		{rule: "validity-too-long", name: "2 years", mutate: func(f *Facts) { f.NotAfter = f.NotBefore.Add(730 * day) }, want: 1, message: "730d"},
		{rule: "validity-too-long", name: "2-year client cert", mutate: func(f *Facts) { f.NotAfter, f.ServerAuth = f.NotBefore.Add(730*day), false }},
		{rule: "untrusted-issuer", name: "managed", mutate: func(f *Facts) { f.Source = "discovered" }},
		{rule: "untrusted-issuer", name: "self-signed leaf", mutate: func(f *Facts) { f.Source, f.IssuerManaged, f.SelfSigned = "discovered", false, true }, want: 1, sev: SevMedium},
		{rule: "untrusted-issuer", name: "unknown CA", mutate: func(f *Facts) { f.Source, f.IssuerManaged = "discovered", false }, want: 1, sev: SevLow},
		{rule: "key-reuse", name: "own key", mutate: func(f *Facts) { f.KeyLocations = 1 }},
		{rule: "key-reuse", name: "shared with another certificate", mutate: func(f *Facts) { f.OtherCertsWithKey = 2 }, want: 1, message: "2 other"},
		{rule: "key-reuse", name: "private key on two machines", mutate: func(f *Facts) { f.KeyLocations = 2 }, want: 1},
		{rule: "revoked-served", name: "revoked, gone", mutate: func(f *Facts) { f.Revoked, f.RevokedAt = true, now.Add(-30*time.Minute) }},
		{rule: "revoked-served", name: "revoked, still served", mutate: func(f *Facts) { f.Revoked, f.RevokedAt = true, now.Add(-2*time.Hour) }, want: 1, sev: SevCritical},
		{rule: "superseded-served", name: "within grace", mutate: func(f *Facts) { f.SupersededAt = now.Add(-2 * time.Hour) }},
		{rule: "superseded-served", name: "past grace", mutate: func(f *Facts) { f.SupersededAt = now.Add(-3 * day) }, want: 1, sev: SevMedium},
		{rule: "orphan", name: "deployed", mutate: func(f *Facts) {}},
		{rule: "orphan", name: "never seen", mutate: func(f *Facts) { f.Locations = nil }, want: 1, sev: SevLow},
		{rule: "orphan", name: "never seen, young", mutate: func(f *Facts) { f.Locations, f.IssuedAt = nil, now.Add(-day) }},
		{rule: "orphan", name: "no discovery at all", mutate: func(f *Facts) { f.Locations, f.InventoryActive = nil, false }},
		{rule: "shadow", name: "managed", mutate: func(f *Facts) { f.Source = "discovered" }},
		{rule: "shadow", name: "unmanaged CA deployed", mutate: func(f *Facts) { f.Source, f.IssuerManaged = "discovered", false }, want: 1},
		{rule: "no-owner", name: "owned", mutate: func(f *Facts) {}},
		{rule: "no-owner", name: "no owner", mutate: func(f *Facts) { f.Owner = "" }, want: 1, message: "no owner"},
		{rule: "no-owner", name: "owner not in list", cfg: func(c *Config) { c.Owners = []string{"team-b"} }, mutate: func(f *Facts) {}, want: 1, message: "team-a"},
		{rule: "no-owner", name: "owner in list", cfg: func(c *Config) { c.Owners = []string{"team-a"} }, mutate: func(f *Facts) {}},
		{rule: "agent-stale", name: "no agent", mutate: func(f *Facts) {}},
		{rule: "agent-stale", name: "fresh agent", mutate: func(f *Facts) { f.Agent, f.AgentLastSeen = "m1", now.Add(-day) }},
		{rule: "agent-stale", name: "stale agent", mutate: func(f *Facts) { f.Agent, f.AgentLastSeen = "m1", now.Add(-10*day) }, want: 1, sev: SevMedium, message: "agent m1 last seen"},
		{rule: "agent-stale", name: "stale agent, custom period", cfg: func(c *Config) { c.AgentStaleAfter = 30 * day }, mutate: func(f *Facts) { f.Agent, f.AgentLastSeen = "m1", now.Add(-10*day) }},
		{rule: "agent-stale", name: "stale agent, revoked certificate", mutate: func(f *Facts) {
			f.Agent, f.AgentLastSeen, f.Revoked, f.RevokedAt = "m1", now.Add(-10*day), true, now.Add(-day)
		}},
		{rule: "agent-stale", name: "stale agent, expired certificate", mutate: func(f *Facts) {
			f.Agent, f.AgentLastSeen, f.NotAfter = "m1", now.Add(-10*day), now.Add(-time.Hour)
		}},
		{rule: "key-file-permissions", name: "0600", mutate: func(f *Facts) {
			f.Locations = []Location{{Kind: "fs", Host: "m1", Path: "/etc/k.pem", FileMode: 0o600, Detail: "private key", LastSeen: now}}
		}},
		{rule: "key-file-permissions", name: "0644", mutate: func(f *Facts) {
			f.Locations = []Location{{Kind: "fs", Host: "m1", Path: "/etc/k.pem", FileMode: 0o644, Detail: "private key", LastSeen: now}}
		}, want: 1, sev: SevHigh, message: "0644"},
		{rule: "key-file-permissions", name: "0644 certificate", mutate: func(f *Facts) {
			f.Locations = []Location{{Kind: "fs", Host: "m1", Path: "/etc/c.pem", FileMode: 0o644, LastSeen: now}}
		}},
		{rule: "unmatched-private-key", name: "matched", mutate: func(f *Facts) { f.Kind, f.HasCertificate = "private-key", true }},
		{rule: "unmatched-private-key", name: "unmatched", mutate: func(f *Facts) { f.Kind = "private-key" }, want: 1},
		{rule: "lint", name: "clean", mutate: func(f *Facts) {}},
		{rule: "lint", name: "errors", mutate: func(f *Facts) { f.LintErrors = []string{"e_dnsname_empty_label"} }, want: 1, message: "e_dnsname_empty_label"},
		{rule: "lint", name: "warnings only", mutate: func(f *Facts) { f.LintWarnings = []string{"w_ext_subject_key_identifier_missing_sub_cert"} }},
		{rule: "lint-warning", name: "clean", mutate: func(f *Facts) {}},
		{rule: "lint-warning", name: "errors only", mutate: func(f *Facts) { f.LintErrors = []string{"e_dnsname_empty_label"} }},
		{rule: "lint-warning", name: "warnings", mutate: func(f *Facts) { f.LintWarnings = []string{"w_ext_subject_key_identifier_missing_sub_cert"} }, want: 1, message: "w_ext_subject_key_identifier_missing_sub_cert"},
		{rule: "name-mismatch", name: "exact", mutate: func(f *Facts) {}},
		{rule: "name-mismatch", name: "wildcard one label", mutate: func(f *Facts) { f.Locations[0].SNI = "API.web.test" }},
		{rule: "name-mismatch", name: "wildcard two labels", mutate: func(f *Facts) { f.Locations[0].SNI = "a.b.web.test" }, want: 1},
		{rule: "name-mismatch", name: "other name", mutate: func(f *Facts) { f.Locations[0].SNI = "evil.test" }, want: 1, sev: SevHigh, message: "evil.test"},
	} {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			if RuleByID(tc.rule) == nil {
				t.Fatalf("no rule %q", tc.rule)
			}
			c := cfg
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			f := base()
			tc.mutate(f)
			got := hits(tc.rule, f, c)
			if len(got) != tc.want {
				t.Fatalf("%d hits, want %d: %+v", len(got), tc.want, got)
			}
			if tc.want == 0 {
				return
			}
			if tc.sev != "" && got[0].Severity != tc.sev {
				t.Errorf("severity %s, want %s", got[0].Severity, tc.sev)
			}
			if !strings.Contains(got[0].Message, tc.message) {
				t.Errorf("message %q does not mention %q", got[0].Message, tc.message)
			}
			if !strings.HasPrefix(got[0].ID, tc.rule+":fp") {
				t.Errorf("finding ID %q", got[0].ID)
			}
		})
	}
}

// The healthy base fixture has no findings at all: every rule's "does not
// trigger" case in one.
func TestHealthyIdentityHasNoFindings(t *testing.T) {
	if got := Evaluate(DefaultConfig(), now, base()); len(got) != 0 {
		t.Fatalf("findings for a healthy identity: %+v", got)
	}
}

func TestEveryRuleDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		if r.ID == "" || r.Title == "" || r.Description == "" || r.Remediation == "" || Rank(r.Severity) < 0 || r.Check == nil {
			t.Errorf("rule %q is incomplete", r.ID)
		}
		if seen[r.ID] {
			t.Errorf("duplicate rule %q", r.ID)
		}
		seen[r.ID] = true
	}
	if !slices.Equal(severities, []string{"info", "low", "medium", "high", "critical"}) {
		t.Fatal("severity order changed")
	}
}

func TestFermatAndROCA(t *testing.T) {
	n := closePrimes(t)
	p, q := FermatFactor(n, 100)
	if p == nil || new(big.Int).Mul(p, q).Cmp(n) != 0 {
		t.Fatalf("close primes not factored")
	}
	if p, _ := FermatFactor(randomModulus(t), 100); p != nil {
		t.Fatal("a random modulus factored by Fermat in 100 rounds")
	}
	if !ROCAVulnerable(rocaModulus()) {
		t.Fatal("ROCA-structured modulus not detected")
	}
	for range 20 {
		if ROCAVulnerable(randomModulus(t)) {
			t.Fatal("random modulus flagged as ROCA")
		}
	}
	// The published first markers (crocs-muni/roca): 6, 30, 126, 1026 for 3, 5, 7, 11.
	for i, want := range []int64{6, 30, 126, 1026} {
		var got int64
		for r := range rocaMarkers()[i] {
			got |= 1 << r
		}
		if got != want {
			t.Errorf("marker of %d = %d, want %d", rocaPrimes[i], got, want)
		}
	}
}
