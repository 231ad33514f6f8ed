package agent

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/keys"
)

func TestParseFingerprint(t *testing.T) {
	sum := sha256.Sum256([]byte("root"))
	plain := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(plain); i += 2 {
		colons = append(colons, strings.ToUpper(plain[i:i+2]))
	}
	for _, c := range []struct {
		in string
		ok bool
	}{
		{plain, true},
		{strings.ToUpper(plain), true},
		{strings.Join(colons, ":"), true},
		{"sha256 Fingerprint=" + strings.Join(colons, ":"), true}, // openssl's whole line
		{"  " + plain + "\n", true},
		{plain[:62], false},
		{plain + "00", false},
		{"zz" + plain[2:], false},
		{"", false},
	} {
		got, err := ParseFingerprint(c.in)
		if c.ok != (err == nil) || c.ok && hex.EncodeToString(got) != plain {
			t.Errorf("ParseFingerprint(%q) = %x, %v", c.in, got, err)
		}
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add("AB:CD")
	f.Add(strings.Repeat("ab", 32))
	f.Add("sha256 Fingerprint=" + strings.Repeat("AB:", 31) + "AB")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseFingerprint(s)
		if err == nil && len(b) != sha256.Size {
			t.Fatalf("accepted %q as %d bytes", s, len(b))
		}
	})
}

func TestRenewAt(t *testing.T) {
	nb := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(90 * time.Minute)
	for _, c := range []struct {
		fraction, jitter, u float64
		want                time.Duration
	}{
		{2.0 / 3, 0, 0.5, 60 * time.Minute},
		{2.0 / 3, 0.1, 0, 60 * time.Minute},
		{2.0 / 3, 0.1, 0.999999, 51 * time.Minute},
		{0.5, 0.1, 0.5, 40*time.Minute + 30*time.Second},
		{0.1, 0.09, 0.99, 4*time.Minute + 30*time.Second}, // 0.0109 is clamped to 5% of the lifetime
	} {
		got := RenewAt(nb, na, c.fraction, c.jitter, c.u).Sub(nb)
		if (got - c.want).Abs() > time.Second {
			t.Errorf("RenewAt(%.2f, %.2f, u=%.2f) = %s, want %s", c.fraction, c.jitter, c.u, got, c.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		n        int
		life     time.Duration
		u        float64
		min, max time.Duration
	}{
		{0, time.Hour, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{0, time.Hour, 0.9999, 500 * time.Millisecond, time.Second},
		{3, time.Hour, 0, 4 * time.Second, 4 * time.Second},
		{20, time.Hour, 0.9999, 3 * time.Minute, 6 * time.Minute}, // capped at life/10 = 6m
		{20, 90 * 24 * time.Hour, 0.9999, 2*time.Minute + 30*time.Second, 5 * time.Minute},
		{20, time.Minute, 0.9999, 3 * time.Second, 6 * time.Second}, // a 1-minute certificate still gets retries
		{20, 10 * time.Second, 0, time.Second, time.Second},         // floor of 2s
	} {
		got := Backoff(c.n, c.life, c.u)
		if got < c.min || got > c.max {
			t.Errorf("Backoff(%d, %s, %.2f) = %s, want in [%s, %s]", c.n, c.life, c.u, got, c.min, c.max)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		return Config{Server: "https://ca.internal:8443", StateDir: t.TempDir(), Certificates: []CertConfig{{Name: "Web-01.prod.internal"}}}
	}
	c := good()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.CheckInterval != 30*time.Second || c.RenewAt < 0.66 || c.RenewAt > 0.67 || *c.Jitter != 0.1 || c.Certificates[0].KeyType != "ecdsa-p256" || c.Certificates[0].Name != "web-01.prod.internal" {
		t.Fatalf("defaults: %+v", c)
	}
	bigJitter := 0.7
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no server", func(c *Config) { c.Server = "" }, "no server"},
		{"http", func(c *Config) { c.Server = "http://ca.internal" }, "https"},
		{"no state", func(c *Config) { c.StateDir = "" }, "state"},
		{"bad fingerprint", func(c *Config) { c.RootFingerprint = "abc" }, "fingerprint"},
		{"renew-at", func(c *Config) { c.RenewAt = 1.2 }, "renew-at"},
		{"jitter", func(c *Config) { c.Jitter = &bigJitter }, "jitter"},
		{"no certificates", func(c *Config) { c.Certificates = nil }, "no certificate"},
		{"twice", func(c *Config) { c.Certificates = append(c.Certificates, CertConfig{Name: "web-01.prod.internal"}) }, "twice"},
		{"key type", func(c *Config) { c.Certificates[0].KeyType = "dsa" }, "key type"},
		{"owner", func(c *Config) { c.Certificates[0].Owner = "no-such-user-sigil" }, "owner"},
		{"token file", func(c *Config) { c.Certificates[0].JoinTokenFile = "/nonexistent/t" }, "join token"},
		{"fullchain over the key", func(c *Config) {
			c.Certificates[0].Key, c.Certificates[0].FullChain = "/etc/ssl/a.pem", "/etc/ssl/a.pem"
		}, "fullchain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfigStrict(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "agent.yaml")
	os.WriteFile(good, []byte(`server: https://ca.internal:8443
state: /var/lib/sigil-agent
check-interval: 15s
certificates:
  - name: a.prod.internal
    cert: /etc/ssl/a.crt
    key: /etc/ssl/a.key
    fullchain: /etc/ssl/a.fullchain.pem
  - name: b.prod.internal
    sans: [www.prod.internal]
`), 0o600)
	c, err := LoadConfig(good)
	if err != nil || len(c.Certificates) != 2 || c.CheckInterval != 15*time.Second || c.Certificates[1].SANs[0] != "www.prod.internal" ||
		c.Certificates[0].FullChain != "/etc/ssl/a.fullchain.pem" {
		t.Fatalf("%+v %v", c, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("server: https://x\ncertificats: []\n"), 0o600)
	if _, err := LoadConfig(bad); err == nil || !strings.Contains(err.Error(), "certificats") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestWriteAtomicModes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k.pem")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(p, []byte("new"), 0o600, Ownership{UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	b, _ := os.ReadFile(p)
	if fi.Mode().Perm() != 0o600 || string(b) != "new" {
		t.Fatalf("mode %v, content %q", fi.Mode(), b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temp files left behind: %v", ents)
	}
	if err := writeAtomic(filepath.Join(dir, "missing", "x"), nil, 0o600, Ownership{UID: -1, GID: -1}); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

// FuzzCheckIssued: whatever the server answers, the agent installs nothing
// that is not a certificate for its key chaining to the pinned root.
func FuzzCheckIssued(f *testing.F) {
	key, err := keys.GenerateKey("ecdsa-p256")
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "a.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	self := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	f.Add(self, "")
	f.Add("", "")
	f.Add("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", self)
	f.Add(self[:len(self)/2], self)
	roots := x509.NewCertPool() // empty: nothing may pass
	f.Fuzz(func(t *testing.T, cert, chain string) {
		if leaf, err := CheckIssued(&Issued{Certificate: cert, Chain: chain}, key, roots); err == nil {
			t.Fatalf("accepted %v without a trusted root", leaf.Subject)
		}
	})
}
