package lint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	zl "github.com/zmap/zlint/v3/lint"
	"github.com/zmap/zlint/v3/util"
)

var (
	linterOnce sync.Once
	linterVal  *Linter
	linterErr  error
)

func getLinter(t testing.TB) *Linter {
	t.Helper()
	linterOnce.Do(func() { linterVal, linterErr = New() })
	if linterErr != nil {
		t.Fatalf("New: %v", linterErr)
	}
	return linterVal
}

// otherCA builds a root + intermediate pair whose keys are of the given kind,
// for checking certificates signed with Ed25519, RSA and P-384 CA keys.
func otherCA(t testing.TB, signer crypto.Signer) (rootDER, interDER []byte, inter *x509.Certificate) {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	rt := rootTemplate(now, signer.Public())
	rootDER, err := x509.CreateCertificate(rand.Reader, rt, rt, signer.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	// The intermediate reuses the root key: only the algorithms matter here.
	it := intermediateTemplate(now, signer.Public())
	interDER, err = x509.CreateCertificate(rand.Reader, it, root, signer.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	inter, err = x509.ParseCertificate(interDER)
	if err != nil {
		t.Fatal(err)
	}
	return rootDER, interDER, inter
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// leafWith issues a Sigil-shaped leaf, modified by f, with a subject key of
// kind k.
func leafWith(t testing.TB, k keyKind, f func(*x509.Certificate)) []byte {
	t.Helper()
	tmpl := leafTemplate(getCA(t))
	if f != nil {
		f(tmpl)
	}
	return issueLeaf(t, tmpl, subjectKey(t, k))
}

// intermediateWith issues a Sigil-shaped intermediate under the test root,
// modified by f.
func intermediateWith(t testing.TB, f func(*x509.Certificate)) []byte {
	t.Helper()
	ca := getCA(t)
	tmpl := intermediateTemplate(time.Now().Truncate(time.Second), &ca.interKey.PublicKey)
	if f != nil {
		f(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, &ca.interKey.PublicKey, ca.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

type certCase struct {
	name string
	der  func(t testing.TB) []byte
}

// acceptCases are certificates Sigil legitimately issues or creates.
func acceptCases() []certCase {
	leaf := func(k keyKind, f func(*x509.Certificate)) func(testing.TB) []byte {
		return func(t testing.TB) []byte { return leafWith(t, k, f) }
	}
	byCAKey := func(mk func() (crypto.Signer, error), which string) func(testing.TB) []byte {
		return func(t testing.TB) []byte {
			signer, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			rootDER, interDER, inter := otherCA(t, signer)
			switch which {
			case "root":
				return rootDER
			case "intermediate":
				return interDER
			}
			der, err := x509.CreateCertificate(rand.Reader, leafTemplate(getCA(t)), inter, subjectKey(t, keyP256), signer)
			if err != nil {
				t.Fatal(err)
			}
			return der
		}
	}
	ed25519CA := func() (crypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err }
	rsaCA := func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }
	p384CA := func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) }
	return []certCase{
		// The shapes named in the brief.
		{"leaf ecdsa-p256", leaf(keyP256, nil)},
		{"leaf ecdsa-p384", leaf(keyP384, nil)},
		{"leaf rsa-2048", leaf(keyRSA2048, nil)},
		{"leaf ed25519", leaf(keyEd25519, nil)},
		{"root", func(t testing.TB) []byte { return getCA(t).rootDER }},
		{"intermediate", func(t testing.TB) []byte { return getCA(t).interDER }},

		// Other legitimate private-CA shapes, each tied to an exclusion or a
		// deliberate keep.
		{"leaf rsa-2048 with keyEncipherment", leaf(keyRSA2048, func(c *x509.Certificate) {
			c.KeyUsage |= x509.KeyUsageKeyEncipherment
		})},
		{"leaf wildcard", leaf(keyP256, func(c *x509.Certificate) {
			c.DNSNames = []string{"*.bar.test", "bar.test"}
			c.Subject.CommonName = "*.bar.test"
		})},
		{"leaf kubernetes names", leaf(keyP256, func(c *x509.Certificate) {
			c.DNSNames = []string{"redis.default.svc.cluster.local", "redis.default.svc", "redis"}
			c.Subject.CommonName = c.DNSNames[0]
		})},
		{"leaf single-label names that are IANA TLDs", leaf(keyP256, func(c *x509.Certificate) {
			c.DNSNames = []string{"app", "dev"}
			c.Subject.CommonName = "app"
		})},
		{"leaf private IPs", leaf(keyP256, func(c *x509.Certificate) {
			c.IPAddresses = []net.IP{net.ParseIP("10.1.2.3"), net.ParseIP("192.168.1.1"), net.ParseIP("fd00::1")}
		})},
		{"leaf IP only, CN is the IP", leaf(keyP256, func(c *x509.Certificate) {
			c.DNSNames, c.URIs = nil, nil
			c.Subject = pkix.Name{CommonName: "10.1.2.3"}
			c.IPAddresses = []net.IP{net.ParseIP("10.1.2.3")}
		})},
		{"leaf IP only, empty subject", leaf(keyP256, func(c *x509.Certificate) {
			c.DNSNames, c.URIs = nil, nil
			c.Subject = pkix.Name{}
			c.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		})},
		{"leaf no CN", leaf(keyP256, func(c *x509.Certificate) { c.Subject = pkix.Name{} })},
		{"leaf SPIFFE-only client cert", leaf(keyP256, func(c *x509.Certificate) {
			c.DNSNames, c.IPAddresses = nil, nil
			c.Subject = pkix.Name{}
			c.URIs = []*url.URL{mustURL("spiffe://prod.internal/ns/default/sa/web")}
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		})},
		{"leaf email SAN", leaf(keyP256, func(c *x509.Certificate) { c.EmailAddresses = []string{"alice@prod.internal"} })},
		{"leaf O and OU in subject", leaf(keyP256, func(c *x509.Certificate) {
			c.Subject.Organization = []string{"Acme"}
			c.Subject.OrganizationalUnit = []string{"Platform"}
		})},
		{"leaf full postal address in subject", leaf(keyP256, func(c *x509.Certificate) {
			c.Subject.Country = []string{"DE"}
			c.Subject.Province = []string{"Berlin"}
			c.Subject.Locality = []string{"Berlin"}
			c.Subject.StreetAddress = []string{"Main St 1"}
			c.Subject.PostalCode = []string{"10115"}
			c.Subject.Organization = []string{"Acme"}
		})},
		{"leaf two-year validity", leaf(keyP256, func(c *x509.Certificate) {
			c.NotAfter = c.NotBefore.Add(2 * 365 * 24 * time.Hour)
		})},
		{"leaf backdated five minutes", leaf(keyP256, func(c *x509.Certificate) {
			c.NotBefore = c.NotBefore.Add(-5 * time.Minute)
		})},
		{"leaf internal AIA/CRL host names", leaf(keyP256, func(c *x509.Certificate) {
			c.OCSPServer = []string{"http://ca.prod.internal/ocsp"}
			c.IssuingCertificateURL = []string{"http://ca.prod.internal/ca/default.crt"}
			c.CRLDistributionPoints = []string{"http://ca.prod.internal/crl/default.crl"}
		})},
		{"leaf IDN", leaf(keyP256, func(c *x509.Certificate) {
			c.DNSNames = []string{"xn--bcher-kva.test"}
			c.Subject.CommonName = c.DNSNames[0]
		})},
		{"leaf ecdsa-p521", func(t testing.TB) []byte {
			k, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			return issueLeaf(t, leafTemplate(getCA(t)), &k.PublicKey)
		}},
		{"delegated OCSP responder", leaf(keyP256, func(c *x509.Certificate) {
			c.DNSNames, c.IPAddresses, c.URIs = nil, nil, nil
			c.Subject = pkix.Name{CommonName: "Sigil OCSP Responder"}
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
			c.OCSPServer, c.CRLDistributionPoints = nil, nil
			// id-pkix-ocsp-nocheck, value NULL
			c.ExtraExtensions = []pkix.Extension{{Id: []int{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}, Value: []byte{5, 0}}}
		})},
		{"root ed25519", byCAKey(ed25519CA, "root")},
		{"intermediate ed25519", byCAKey(ed25519CA, "intermediate")},
		{"leaf signed by ed25519 intermediate", byCAKey(ed25519CA, "leaf")},
		{"root rsa-2048", byCAKey(rsaCA, "root")},
		{"leaf signed by rsa-2048 intermediate", byCAKey(rsaCA, "leaf")},
		{"leaf signed by ecdsa-p384 intermediate", byCAKey(p384CA, "leaf")},
		{"intermediate name-constrained to private space", func(t testing.TB) []byte {
			return intermediateWith(t, func(c *x509.Certificate) {
				_, n, _ := net.ParseCIDR("10.0.0.0/8")
				c.PermittedDNSDomainsCritical = true
				c.PermittedDNSDomains = []string{"prod.internal", ".prod.internal"}
				c.PermittedIPRanges = []*net.IPNet{n}
			})
		}},
		{"intermediate with OU, no O, no C", func(t testing.TB) []byte {
			return intermediateWith(t, func(c *x509.Certificate) {
				c.Subject = pkix.Name{OrganizationalUnit: []string{"Platform"}, CommonName: "Platform Intermediate"}
			})
		}},
	}
}

func TestLintAccepts(t *testing.T) {
	l := getLinter(t)
	for _, tc := range acceptCases() {
		t.Run(tc.name, func(t *testing.T) {
			if err := l.Lint(tc.der(t)); err != nil {
				t.Fatalf("Lint = %v, want nil", err)
			}
		})
	}
}

type rejectCase struct {
	name string
	der  func(t testing.TB) []byte
	want []string // lint names that must be among the findings
}

func rejectCases() []rejectCase {
	leaf := func(k keyKind, f func(*x509.Certificate)) func(testing.TB) []byte {
		return func(t testing.TB) []byte { return leafWith(t, k, f) }
	}
	addDNS := func(name string) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.DNSNames = append(c.DNSNames, name) }
	}
	return []rejectCase{
		{"underscore in DNS name", leaf(keyP256, addDNS("bad_name.test")),
			[]string{"e_underscore_not_permissible_in_dnsname"}},
		{"empty DNS label", leaf(keyP256, addDNS("a..b.test")),
			[]string{"e_dnsname_empty_label", "e_rfc_dnsname_empty_label", "e_dnsname_bad_character_in_label"}},
		{"trailing dot in DNS name", leaf(keyP256, addDNS("bar.test.")),
			[]string{"e_dnsname_empty_label", "e_rfc_dnsname_empty_label"}},
		{"invalid character in DNS name", leaf(keyP256, addDNS("a!b.test")),
			[]string{"e_dnsname_bad_character_in_label"}},
		{"space in DNS name", leaf(keyP256, addDNS("a b.test")),
			[]string{"e_dnsname_bad_character_in_label"}},
		{"DNS label over 63 octets", leaf(keyP256, addDNS(strings.Repeat("a", 64)+".test")),
			[]string{"e_dnsname_label_too_long", "e_rfc_dnsname_label_too_long"}},
		{"wildcard not in left-most label", leaf(keyP256, addDNS("a.*.test")),
			[]string{"e_dnsname_wildcard_only_in_left_label"}},
		{"empty subject and no SANs", leaf(keyP256, func(c *x509.Certificate) {
			c.Subject = pkix.Name{}
			c.DNSNames, c.IPAddresses, c.URIs = nil, nil, nil
		}), []string{"e_subject_empty_without_san", "e_ext_san_missing"}},
		{"CN not among the SANs", leaf(keyP256, func(c *x509.Certificate) { c.Subject.CommonName = "other.test" }),
			[]string{"e_subject_common_name_not_exactly_from_san"}},
		{"CN over 64 characters", leaf(keyP256, func(c *x509.Certificate) {
			n := strings.Repeat("a", 60) + ".bar.test"
			c.DNSNames = []string{n}
			c.Subject.CommonName = n
		}), []string{"e_subject_common_name_max_length"}},
		{"leaf with keyCertSign but not a CA", leaf(keyP256, func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign }),
			[]string{"e_ext_key_usage_cert_sign_without_ca", "e_sub_cert_key_usage_cert_sign_bit_set"}},
		{"CA:TRUE without keyCertSign", leaf(keyP256, func(c *x509.Certificate) {
			c.IsCA = true
			c.KeyUsage = x509.KeyUsageDigitalSignature
		}), []string{"e_ca_key_cert_sign_not_set", "e_ca_crl_sign_not_set"}},
		{"RSA-1024 subject key", leaf(keyRSA1024, nil),
			[]string{"e_rsa_mod_less_than_2048_bits"}},
		{"ECDSA key with keyEncipherment", leaf(keyP256, func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageKeyEncipherment }),
			[]string{"e_ecdsa_allowed_ku", "e_cabf_ecc_allowed_key_usages"}},
		{"serverAuth with emailProtection EKU", leaf(keyP256, func(c *x509.Certificate) {
			c.ExtKeyUsage = append(c.ExtKeyUsage, x509.ExtKeyUsageEmailProtection)
		}), []string{"e_sub_cert_eku_check"}},
		{"server leaf without EKU", leaf(keyP256, func(c *x509.Certificate) { c.ExtKeyUsage = nil }),
			[]string{"e_sub_cert_eku_missing"}},
		{"no AIA", leaf(keyP256, func(c *x509.Certificate) { c.OCSPServer, c.IssuingCertificateURL = nil, nil }),
			[]string{"e_sub_cert_aia_missing"}},
		{"non-HTTP OCSP URL", leaf(keyP256, func(c *x509.Certificate) { c.OCSPServer = []string{"ldap://ca.test/ocsp"} }),
			[]string{"e_aia_ocsp_must_have_http_only"}},
		{"non-HTTP CRL URL", leaf(keyP256, func(c *x509.Certificate) { c.CRLDistributionPoints = []string{"ldap://ca.test/crl"} }),
			[]string{"e_crl_distrib_points_not_http"}},
		{"relative URI SAN", leaf(keyP256, func(c *x509.Certificate) { c.URIs = append(c.URIs, &url.URL{Path: "relative/path"}) }),
			[]string{"e_ext_san_uri_relative"}},
		{"URI SAN with single-label host", leaf(keyP256, func(c *x509.Certificate) {
			c.URIs = []*url.URL{mustURL("spiffe://prod/ns/default/sa/web")}
		}), []string{"e_ext_san_uri_host_not_fqdn_or_ip"}},
		// RFC lints run on client-only certificates, where the CA/B ones do not.
		{"client-only leaf with empty DNS label", leaf(keyP256, func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
			c.DNSNames = append(c.DNSNames, "a..b.test")
		}), []string{"e_rfc_dnsname_empty_label"}},
		{"intermediate without CRL distribution point", func(t testing.TB) []byte {
			return intermediateWith(t, func(c *x509.Certificate) { c.CRLDistributionPoints = nil })
		}, []string{"e_sub_ca_crl_distribution_points_missing"}},
		{"intermediate with invalid country", func(t testing.TB) []byte {
			return intermediateWith(t, func(c *x509.Certificate) { c.Subject.Country = []string{"ZZ"} })
		}, []string{"e_ca_country_name_invalid"}},
	}
}

func TestLintRejects(t *testing.T) {
	l := getLinter(t)
	for _, tc := range rejectCases() {
		t.Run(tc.name, func(t *testing.T) {
			err := l.Lint(tc.der(t))
			var lerr *Error
			if !errors.As(err, &lerr) {
				t.Fatalf("Lint = %v (%T), want *Error", err, err)
			}
			var got []string
			for _, f := range lerr.Lints {
				got = append(got, f.Name)
				if f.Status != "error" && f.Status != "fatal" {
					t.Errorf("finding %s has status %q", f.Name, f.Status)
				}
			}
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("findings %v do not include %s", got, w)
				}
				if !strings.Contains(err.Error(), w+": ") {
					t.Errorf("Error() = %q does not name %s", err.Error(), w)
				}
			}
		})
	}
}

func TestLintUnparseable(t *testing.T) {
	l := getLinter(t)
	der := sampleLeaf(t)
	for name, in := range map[string][]byte{
		"nil":       nil,
		"garbage":   []byte("not a certificate"),
		"truncated": der[:len(der)/2],
	} {
		err := l.Lint(in)
		var lerr *Error
		if err == nil || errors.As(err, &lerr) {
			t.Errorf("%s: Lint = %v, want a non-*Error parse error", name, err)
		}
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Lints: []Finding{
		{Name: "e_dnsname_empty_label", Status: "error"},
		{Name: "e_underscore_not_permissible_in_dnsname", Status: "error", Details: "The DNS name 'a_b.test' contains an underscore (_) character"},
		{Name: "e_not_a_real_lint", Status: "fatal", Details: "boom"},
	}}
	want := "certificate failed lint: " +
		"e_dnsname_empty_label: DNSNames should not have an empty label.; " +
		"e_underscore_not_permissible_in_dnsname: DNSNames MUST NOT contain underscore characters (The DNS name 'a_b.test' contains an underscore (_) character); " +
		"e_not_a_real_lint: boom"
	if got := e.Error(); got != want {
		t.Errorf("Error() =\n%q\nwant\n%q", got, want)
	}
}

func TestNames(t *testing.T) {
	l := getLinter(t)
	names := l.Names()
	if !sort.StringsAreSorted(names) {
		t.Error("Names() not sorted")
	}
	if len(names) < 150 {
		t.Errorf("only %d lints in the set", len(names))
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "e_") {
			t.Errorf("%s: only e_ lints can fail a certificate", n)
		}
		if _, ok := excluded[n]; ok {
			t.Errorf("%s is excluded but in the set", n)
		}
	}
	for _, n := range []string{
		"e_underscore_not_permissible_in_dnsname", "e_rsa_mod_less_than_2048_bits",
		"e_ext_key_usage_cert_sign_without_ca", "e_sub_cert_aia_does_not_contain_ocsp_url",
		"e_missing_crl_distrib_point", "e_ca_key_cert_sign_not_set", "e_ecdsa_allowed_ku",
		"e_rsa_allowed_ku_ee", "e_international_dns_name_not_nfc", "e_serial_number_not_positive",
	} {
		if !slices.Contains(names, n) {
			t.Errorf("%s missing from the set", n)
		}
	}
	names[0] = "mutated"
	if l.Names()[0] == "mutated" {
		t.Error("Names() exposes internal state")
	}
}

// Every excluded name must exist (New relies on zlint's Filter to fail
// otherwise) and carry a reason.
func TestExcluded(t *testing.T) {
	if m := Excluded(); len(m) != len(excluded) {
		t.Errorf("Excluded() has %d entries, want %d", len(m), len(excluded))
	} else {
		clear(m)
		if len(excluded) == 0 {
			t.Error("Excluded() exposes internal state")
		}
	}
	reg := zl.GlobalRegistry().CertificateLints()
	for n, why := range excluded {
		cl := reg.ByName(n)
		if cl == nil {
			t.Errorf("excluded lint %s unknown to zlint", n)
			continue
		}
		if !slices.Contains(sources, cl.Source) {
			t.Errorf("excluded lint %s is from %s, not an included source", n, cl.Source)
		}
		if strings.TrimSpace(why) == "" {
			t.Errorf("excluded lint %s has no reason", n)
		}
	}
}

// Sharing instances is what makes Lint fast; a zlint upgrade that adds a
// stateful lint must be audited (see sharedStateful) rather than silently
// slowing every issuance down.
func TestAllInstancesShared(t *testing.T) {
	l := getLinter(t)
	for _, c := range l.lints {
		if c.shared == nil {
			t.Errorf("%s is constructed per call: audit it and add it to sharedStateful if its fields are read-only", c.meta.Name)
		}
	}
}

// The fast path must agree with zlint's own execution of the same lints.
func TestMatchesZlintExecution(t *testing.T) {
	l := getLinter(t)
	reg, err := zl.GlobalRegistry().Filter(zl.FilterOptions{IncludeNames: l.Names()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := reg.GetConfiguration()
	var cases []certCase
	cases = append(cases, acceptCases()...)
	for _, rc := range rejectCases() {
		cases = append(cases, certCase{rc.name, rc.der})
	}
	for _, tc := range cases {
		der := tc.der(t)
		cert, err := zx509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, cl := range reg.CertificateLints().Lints() {
			if r := cl.Execute(cert, cfg); r.Status == zl.Error || r.Status == zl.Fatal {
				want = append(want, cl.Name)
			}
		}
		sort.Strings(want)
		var got []string
		var lerr *Error
		if err := l.Lint(der); errors.As(err, &lerr) {
			for _, f := range lerr.Lints {
				got = append(got, f.Name)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Lint found %v, zlint %v", tc.name, got, want)
		}
	}
}

// e_cert_ext_invalid_der is excluded for cost on the premise that
// crypto/x509 never encodes critical=FALSE; check that premise, including for
// an extra extension explicitly marked non-critical.
func TestExcludedInvalidDERPremise(t *testing.T) {
	cl := zl.GlobalRegistry().CertificateLints().ByName("e_cert_ext_invalid_der")
	if cl == nil {
		t.Fatal("e_cert_ext_invalid_der unknown to zlint")
	}
	cfg := zl.GlobalRegistry().GetConfiguration()
	var cases []certCase
	cases = append(cases, acceptCases()...)
	for _, rc := range rejectCases() {
		cases = append(cases, certCase{rc.name, rc.der})
	}
	cases = append(cases, certCase{"extra non-critical extension", func(t testing.TB) []byte {
		return leafWith(t, keyP256, func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{{Id: []int{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: false, Value: []byte{5, 0}}}
		})
	}})
	for _, tc := range cases {
		cert, err := zx509.ParseCertificate(tc.der(t))
		if err != nil {
			t.Fatal(err)
		}
		if r := cl.Execute(cert, cfg); r.Status != zl.Pass {
			t.Errorf("%s: e_cert_ext_invalid_der = %v %s", tc.name, r.Status, r.Details)
		}
	}
}

func TestLintConcurrent(t *testing.T) {
	l := getLinter(t)
	good := sampleLeaf(t)
	bad := leafWith(t, keyP256, func(c *x509.Certificate) { c.DNSNames = append(c.DNSNames, "bad_name.test") })
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if err := l.Lint(good); err != nil {
					t.Errorf("good: %v", err)
					return
				}
				if err := l.Lint(bad); err == nil {
					t.Error("bad: nil")
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestProfileLintCost runs each lint of the candidate sources individually
// over the sample leaf and lists the most expensive, both the way zlint runs
// them (constructor and configuration per call) and the way Lint does
// (shared instance), plus the parse and whole-Lint cost. Each figure is the
// best of several rounds, to filter out other load on the machine. zcrypto
// caches PSL parsing of DNS names in the certificate, so the PSL-based lints
// (all excluded) look cheaper here than they are.
// Run with: SIGIL_LINT_PROFILE=1 go test -run ProfileLintCost -v ./internal/lint/
func TestProfileLintCost(t *testing.T) {
	if os.Getenv("SIGIL_LINT_PROFILE") == "" {
		t.Skip("set SIGIL_LINT_PROFILE=1 to profile")
	}
	der := sampleLeaf(t)
	const rounds, n = 7, 400
	best := func(f func()) time.Duration {
		var b time.Duration
		for r := 0; r < rounds; r++ {
			start := time.Now()
			for i := 0; i < n; i++ {
				f()
			}
			if d := time.Since(start) / n; r == 0 || d < b {
				b = d
			}
		}
		return b
	}
	parse := func() *zx509.Certificate {
		c, err := zx509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Logf("zcrypto ParseCertificate: %v per certificate", best(func() { parse() }))

	l := getLinter(t)
	t.Logf("Lint, parse included (%d lints): %v per certificate", len(l.Names()), best(func() {
		if err := l.Lint(der); err != nil {
			t.Fatal(err)
		}
	}))
	// Process CPU time (all threads, GC included) per Lint call: the figure
	// that counts against a per-CPU-core-second issuance target.
	cpu0 := processCPU(t)
	for range 5 * n {
		_ = l.Lint(der)
	}
	t.Logf("Lint, parse included: %v process CPU per certificate (GC included)", (processCPU(t)-cpu0)/(5*n))

	reg, err := zl.GlobalRegistry().Filter(zl.FilterOptions{IncludeSources: sources})
	if err != nil {
		t.Fatal(err)
	}
	cfg := reg.GetConfiguration()
	shared := map[string]*compiledLint{}
	for i := range l.lints {
		shared[l.lints[i].meta.Name] = &l.lints[i]
	}
	type cost struct {
		name          string
		zlint, shared time.Duration
	}
	var costs []cost
	var zlintTotal, sharedTotal time.Duration
	for _, cl := range reg.CertificateLints().Lints() {
		c := cost{name: cl.Name}
		cert := parse()
		c.zlint = best(func() { cl.Execute(cert, cfg) })
		zlintTotal += c.zlint
		if sl := shared[cl.Name]; sl != nil {
			cert := parse()
			if !sl.serverAuthOnly || util.IsServerAuthCert(cert) {
				c.shared = best(func() { sl.run(cert) })
			}
			sharedTotal += c.shared
		}
		costs = append(costs, c)
	}
	sort.Slice(costs, func(i, j int) bool { return costs[i].zlint > costs[j].zlint })
	t.Logf("all %d lints of %v run zlint-style: %v per certificate; the %d in the set, shared instances: %v",
		len(costs), sources, zlintTotal, len(l.lints), sharedTotal)
	t.Logf("%10s %10s  %s", "zlint", "shared", "lint")
	for _, c := range costs[:20] {
		sh := "not run" // w_/n_ lint
		if _, ok := shared[c.name]; ok {
			sh = c.shared.String()
		} else if _, ok := excluded[c.name]; ok {
			sh = "excluded"
		}
		t.Logf("%10v %10s  %s", c.zlint, sh, c.name)
	}
}

func processCPU(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkLint(b *testing.B) {
	l := getLinter(b)
	der := sampleLeaf(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Lint(der); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLintParallel(b *testing.B) {
	l := getLinter(b)
	der := sampleLeaf(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Lint(der); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParse is the zcrypto parsing floor included in BenchmarkLint.
func BenchmarkParse(b *testing.B) {
	der := sampleLeaf(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := zx509.ParseCertificate(der); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkZlintExecution runs the same lint set the way zlint does (a fresh
// lint instance and configuration per lint per certificate, framework filter
// per lint), for comparison with BenchmarkLint.
func BenchmarkZlintExecution(b *testing.B) {
	l := getLinter(b)
	reg, err := zl.GlobalRegistry().Filter(zl.FilterOptions{IncludeNames: l.Names()})
	if err != nil {
		b.Fatal(err)
	}
	cfg := reg.GetConfiguration()
	der := sampleLeaf(b)
	b.ReportAllocs()
	for b.Loop() {
		c, err := zx509.ParseCertificate(der)
		if err != nil {
			b.Fatal(err)
		}
		for _, cl := range reg.CertificateLints().Lints() {
			cl.Execute(c, cfg)
		}
	}
}
