package policy

import (
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func webProfile() Profile {
	return Profile{
		Name:        "web",
		KeyTypes:    []string{"ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "ed25519"},
		DefaultTTL:  Duration(720 * time.Hour),
		MaxTTL:      Duration(2160 * time.Hour),
		DNS:         []string{"*.prod.internal", "*.test", "localhost", "web-*.dmz.internal"},
		IPs:         []string{"127.0.0.0/8", "10.0.0.0/8", "2001:db8::/32"},
		URIs:        []string{"spiffe://prod.internal/*"},
		Emails:      []string{"*@prod.internal"},
		ExtKeyUsage: []string{"server_auth", "client_auth"},
	}
}

func mustCompile(t testing.TB, p Profile) *Compiled {
	t.Helper()
	c, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func baseRequest() Request {
	return Request{DNSNames: []string{"api.prod.internal"}, KeyType: "ecdsa-p256"}
}

// check evaluates and compares the refusal rule ("" for allowed).
func check(t *testing.T, c *Compiled, r *Request, wantRule string) *Decision {
	t.Helper()
	d, err := c.Evaluate(r)
	if wantRule == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return d
	}
	var ref *Refusal
	if !errors.As(err, &ref) {
		t.Fatalf("want refusal (rule %s), got %v", wantRule, err)
	}
	if ref.Rule != wantRule || ref.Profile != c.Profile().Name {
		t.Fatalf("refusal %+v, want rule %s", ref, wantRule)
	}
	if d != nil {
		t.Fatal("decision with a refusal")
	}
	return nil
}

func TestEvaluateNames(t *testing.T) {
	c := mustCompile(t, webProfile())
	tests := []struct {
		name string
		mod  func(r *Request)
		rule string
	}{
		{"dns ok", func(r *Request) {}, ""},
		{"dns deep", func(r *Request) { r.DNSNames = []string{"a.b.prod.internal", "x.test", "localhost"} }, ""},
		{"dns upper", func(r *Request) { r.DNSNames = []string{"API.Prod.Internal"} }, ""},
		{"dns glob", func(r *Request) { r.DNSNames = []string{"web-7.dmz.internal"} }, ""},
		{"dns glob one label", func(r *Request) { r.DNSNames = []string{"web-7.x.dmz.internal"} }, RuleDNS},
		{"dns zone apex", func(r *Request) { r.DNSNames = []string{"prod.internal"} }, RuleDNS},
		{"dns evil", func(r *Request) { r.DNSNames = []string{"evil.com"} }, RuleDNS},
		{"dns suffix trick", func(r *Request) { r.DNSNames = []string{"evilprod.internal"} }, RuleDNS},
		{"dns one bad of many", func(r *Request) { r.DNSNames = []string{"a.test", "evil.com"} }, RuleDNS},
		{"dns trailing dot", func(r *Request) { r.DNSNames = []string{"api.prod.internal."} }, RuleDNS},
		{"dns empty label", func(r *Request) { r.DNSNames = []string{"api..prod.internal"} }, RuleDNS},
		{"dns underscore", func(r *Request) { r.DNSNames = []string{"a_b.prod.internal"} }, RuleDNS},
		{"dns unicode", func(r *Request) { r.DNSNames = []string{"bücher.prod.internal"} }, RuleDNS},
		{"dns kelvin", func(r *Request) { r.DNSNames = []string{"\u212a8s.prod.internal"} }, RuleDNS},
		{"dns long label", func(r *Request) { r.DNSNames = []string{strings.Repeat("a", 64) + ".prod.internal"} }, RuleDNS},
		{"dns IP literal", func(r *Request) { r.DNSNames = []string{"10.0.0.1"} }, RuleDNS},
		{"dns empty", func(r *Request) { r.DNSNames = []string{""} }, RuleDNS},
		{"dns wildcard listed", func(r *Request) { r.DNSNames = []string{"*.prod.internal"} }, ""},
		{"dns wildcard upper", func(r *Request) { r.DNSNames = []string{"*.PROD.internal"} }, ""},
		{"dns wildcard unlisted", func(r *Request) { r.DNSNames = []string{"*.a.prod.internal"} }, RuleDNS},
		{"dns wildcard glob", func(r *Request) { r.DNSNames = []string{"*.dmz.internal"} }, RuleDNS},
		{"dns inner star", func(r *Request) { r.DNSNames = []string{"web-*.dmz.internal"} }, RuleDNS},
		{"dns double star", func(r *Request) { r.DNSNames = []string{"*.*.test"} }, RuleDNS},

		{"ip ok", func(r *Request) { r.IPAddresses = []net.IP{net.ParseIP("10.1.2.3")} }, ""},
		{"ip 4-byte", func(r *Request) { r.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1).To4()} }, ""},
		{"ip mapped", func(r *Request) { r.IPAddresses = []net.IP{net.ParseIP("::ffff:10.1.2.3")} }, ""},
		{"ip v6", func(r *Request) { r.IPAddresses = []net.IP{net.ParseIP("2001:db8::1")} }, ""},
		{"ip outside", func(r *Request) { r.IPAddresses = []net.IP{net.ParseIP("192.168.1.1")} }, RuleIPs},
		{"ip v6 outside", func(r *Request) { r.IPAddresses = []net.IP{net.ParseIP("2001:db9::1")} }, RuleIPs},
		{"ip nil", func(r *Request) { r.IPAddresses = []net.IP{nil} }, RuleIPs},
		{"ip bad length", func(r *Request) { r.IPAddresses = []net.IP{{1, 2, 3}} }, RuleIPs},

		{"uri ok", func(r *Request) { r.URIs = []*url.URL{mustURL("spiffe://prod.internal/ns/a/sa/b")} }, ""},
		{"uri other host", func(r *Request) { r.URIs = []*url.URL{mustURL("spiffe://staging.internal/a")} }, RuleURIs},
		{"uri userinfo", func(r *Request) { r.URIs = []*url.URL{mustURL("spiffe://x@prod.internal/a")} }, RuleURIs},
		{"uri query", func(r *Request) { r.URIs = []*url.URL{mustURL("spiffe://prod.internal/a?b")} }, RuleURIs},
		{"uri fragment", func(r *Request) { r.URIs = []*url.URL{mustURL("spiffe://prod.internal/a#b")} }, RuleURIs},
		{"uri dotdot", func(r *Request) { r.URIs = []*url.URL{mustURL("spiffe://prod.internal/a/../b")} }, RuleURIs},
		{"uri nil", func(r *Request) { r.URIs = []*url.URL{nil} }, RuleURIs},

		{"email ok", func(r *Request) { r.Emails = []string{"alice@prod.internal"} }, ""},
		{"email upper", func(r *Request) { r.Emails = []string{"Alice@PROD.internal"} }, ""},
		{"email subdomain", func(r *Request) { r.Emails = []string{"alice@a.prod.internal"} }, RuleEmails},
		{"email other", func(r *Request) { r.Emails = []string{"alice@evil.com"} }, RuleEmails},
		{"email invalid", func(r *Request) { r.Emails = []string{"alice"} }, RuleEmails},

		{"no names", func(r *Request) { r.DNSNames = nil }, RuleNames},
		{"too many", func(r *Request) {
			r.DNSNames = nil
			for i := 0; i < 101; i++ {
				r.DNSNames = append(r.DNSNames, "a.test")
			}
		}, RuleNames},
		{"max names mixed", func(r *Request) {
			r.DNSNames = make([]string, 99)
			for i := range r.DNSNames {
				r.DNSNames[i] = "a.test"
			}
			r.IPAddresses = []net.IP{net.ParseIP("10.0.0.1")}
			r.Emails = []string{"a@prod.internal"}
		}, RuleNames},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := baseRequest()
			tt.mod(&r)
			check(t, c, &r, tt.rule)
		})
	}
}

func TestEvaluateSANTypeNotInProfile(t *testing.T) {
	c := mustCompile(t, Profile{Name: "dns-only", DNS: []string{"*.test"}})
	for name, r := range map[string]Request{
		RuleIPs:    {DNSNames: []string{"a.test"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}},
		RuleURIs:   {DNSNames: []string{"a.test"}, URIs: []*url.URL{mustURL("spiffe://a.test/x")}},
		RuleEmails: {DNSNames: []string{"a.test"}, Emails: []string{"a@a.test"}},
	} {
		r.KeyType = "rsa-2048"
		check(t, c, &r, name)
	}
	c = mustCompile(t, Profile{Name: "ip-only", IPs: []string{"10.0.0.0/8"}})
	check(t, c, &Request{KeyType: "rsa-2048", DNSNames: []string{"a.test"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}}, RuleDNS)
	d := check(t, c, &Request{KeyType: "rsa-2048", IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}}, "")
	if d.CommonName != "" {
		t.Errorf("CN %q", d.CommonName)
	}
}

func TestEvaluateCommonName(t *testing.T) {
	c := mustCompile(t, webProfile())
	long := strings.Repeat("a", 60) + ".prod.internal"
	tests := []struct {
		cn    string
		dns   []string
		ips   []net.IP
		email []string
		want  string // "" with rule set
		rule  string
	}{
		{"", []string{"API.prod.internal", "b.test"}, nil, nil, "api.prod.internal", ""},
		{"", nil, []net.IP{net.ParseIP("10.0.0.1")}, nil, "", ""},
		{"", []string{long, "b.test"}, nil, nil, "b.test", ""},
		{"b.test", []string{"a.test", "B.test"}, nil, nil, "b.test", ""},
		{"B.TEST", []string{"a.test", "b.test"}, nil, nil, "b.test", ""},
		{"10.0.0.1", []string{"a.test"}, []net.IP{net.ParseIP("10.0.0.1")}, nil, "10.0.0.1", ""},
		{"2001:DB8::1", nil, []net.IP{net.ParseIP("2001:db8::1")}, nil, "2001:db8::1", ""},
		{"Bob@prod.internal", nil, nil, []string{"bob@prod.internal"}, "bob@prod.internal", ""},
		{"c.test", []string{"a.test"}, nil, nil, "", RuleNames},
		{"evil.com", []string{"a.test"}, nil, nil, "", RuleNames},
		{long, []string{long}, nil, nil, "", RuleNames},
		{"\u212a.test", []string{"k.test"}, nil, nil, "", RuleNames},
	}
	for _, tt := range tests {
		r := &Request{CommonName: tt.cn, DNSNames: tt.dns, IPAddresses: tt.ips, Emails: tt.email, KeyType: "ed25519"}
		d := check(t, c, r, tt.rule)
		if tt.rule == "" && d.CommonName != tt.want {
			t.Errorf("CN %q: got %q, want %q", tt.cn, d.CommonName, tt.want)
		}
	}
}

func TestEvaluateKeyTypeAndUsage(t *testing.T) {
	c := mustCompile(t, webProfile())
	tests := []struct {
		kt   string
		ku   x509.KeyUsage
		rule string
	}{
		{"ecdsa-p256", x509.KeyUsageDigitalSignature, ""},
		{"ed25519", x509.KeyUsageDigitalSignature, ""},
		{"rsa-2048", x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ""},
		{"rsa-4096", 0, RuleKeyType},   // known, not listed
		{"ecdsa-p521", 0, RuleKeyType}, // known, not listed
		{"rsa-1024", 0, RuleKeyType},
		{"rsa-8192", 0, RuleKeyType},
		{"", 0, RuleKeyType},
	}
	for _, tt := range tests {
		r := baseRequest()
		r.KeyType = tt.kt
		d := check(t, c, &r, tt.rule)
		if d != nil {
			if d.KeyUsage != tt.ku {
				t.Errorf("%s: key usage %v", tt.kt, d.KeyUsage)
			}
			if !reflect.DeepEqual(d.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
				t.Errorf("eku %v", d.ExtKeyUsage)
			}
			d.ExtKeyUsage[0] = x509.ExtKeyUsageAny // must not leak into the profile
		}
	}
	d := check(t, c, &Request{DNSNames: []string{"a.test"}, KeyType: "rsa-3072"}, "")
	if d.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatal("decision aliases the profile's EKU slice")
	}

	// Listed usages are narrowed to what each key type can do.
	p := webProfile()
	p.KeyUsage = []string{"digital_signature", "key_encipherment", "key_agreement"}
	c = mustCompile(t, p)
	for kt, want := range map[string]x509.KeyUsage{
		"rsa-2048":   x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		"ecdsa-p384": x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		"ed25519":    x509.KeyUsageDigitalSignature,
	} {
		d := check(t, c, &Request{DNSNames: []string{"a.test"}, KeyType: kt}, "")
		if d.KeyUsage != want {
			t.Errorf("%s: %v, want %v", kt, d.KeyUsage, want)
		}
		if d.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
			t.Fatal("CA usage granted")
		}
	}
}

func TestEvaluateTTL(t *testing.T) {
	c := mustCompile(t, webProfile())
	tests := []struct {
		ttl, want time.Duration
		rule      string
	}{
		{0, 720 * time.Hour, ""},
		{time.Minute, time.Minute, ""},
		{2160 * time.Hour, 2160 * time.Hour, ""},
		{2160*time.Hour + 1, 0, RuleTTL},
		{time.Minute - 1, 0, RuleTTL},
		{time.Second, 0, RuleTTL},
		{-time.Hour, 0, RuleTTL},
	}
	for _, tt := range tests {
		r := baseRequest()
		r.TTL = tt.ttl
		if d := check(t, c, &r, tt.rule); d != nil && d.TTL != tt.want {
			t.Errorf("ttl %v: got %v", tt.ttl, d.TTL)
		}
	}
}

func TestEvaluateOwnerAndLabels(t *testing.T) {
	p := webProfile()
	p.RequireOwner = true
	p.RequiredLabels = []string{"env", "team"}
	c := mustCompile(t, p)
	tests := []struct {
		owner  string
		labels map[string]string
		rule   string
	}{
		{"alice", map[string]string{"env": "prod", "team": "web"}, ""},
		{"", map[string]string{"env": "prod", "team": "web"}, RuleOwner},
		{"  ", map[string]string{"env": "prod", "team": "web"}, RuleOwner},
		{"alice", map[string]string{"env": "prod"}, RuleLabels},
		{"alice", map[string]string{"env": "prod", "team": " "}, RuleLabels},
		{"alice", nil, RuleLabels},
	}
	for _, tt := range tests {
		r := baseRequest()
		r.Owner, r.Labels = tt.owner, tt.labels
		check(t, c, &r, tt.rule)
	}
}

func TestEvaluateRule(t *testing.T) {
	tests := []struct {
		rule string
		mod  func(r *Request)
		want string
	}{
		{`size(request.dns) <= 1`, func(r *Request) {}, ""},
		{`size(request.dns) <= 1`, func(r *Request) { r.DNSNames = append(r.DNSNames, "b.test") }, RuleCEL},
		{`request.key_type.startsWith("ecdsa-")`, func(r *Request) {}, ""},
		{`request.key_type.startsWith("ecdsa-")`, func(r *Request) { r.KeyType = "rsa-2048" }, RuleCEL},
		{`request.ttl_seconds <= 86400`, func(r *Request) {}, RuleCEL},
		{`request.ttl_seconds <= 86400`, func(r *Request) { r.TTL = time.Hour }, ""},
		{`requester.role == "admin" || request.owner == requester.name`, func(r *Request) { r.Owner = "bob"; r.Requester = Requester{"bob", "operator"} }, ""},
		{`requester.role == "admin" || request.owner == requester.name`, func(r *Request) { r.Owner = "eve"; r.Requester = Requester{"bob", "operator"} }, RuleCEL},
		{`request.labels.env == "prod"`, func(r *Request) { r.Labels = map[string]string{"env": "prod"} }, ""},
		{`request.labels.env == "prod"`, func(r *Request) {}, RuleCEL}, // missing key: evaluation error
		{`!("env" in request.labels) || request.labels.env == "prod"`, func(r *Request) {}, ""},
		// Names reach the rule lowercased, so a deny rule cannot be dodged by case.
		{`!request.dns.exists(n, n == "admin.prod.internal")`, func(r *Request) { r.DNSNames = []string{"ADMIN.prod.internal"} }, RuleCEL},
		{`request.common_name == "api.prod.internal"`, func(r *Request) { r.CommonName = "API.prod.internal" }, ""},
		{`request.ips == ["10.0.0.1"]`, func(r *Request) { r.IPAddresses = []net.IP{net.ParseIP("::ffff:10.0.0.1")} }, ""},
		{`request.uris.all(u, u.endsWith("/web"))`, func(r *Request) { r.URIs = []*url.URL{mustURL("spiffe://prod.internal/web")} }, ""},
		{`request.emails == ["bob@prod.internal"]`, func(r *Request) { r.Emails = []string{"Bob@prod.internal"} }, ""},
		{`request.dns.all(a, request.dns.all(b, request.dns.all(c, a + b + c != "")))`, func(r *Request) {
			r.DNSNames = make([]string, 100)
			for i := range r.DNSNames {
				r.DNSNames[i] = "a.test"
			}
		}, RuleCEL}, // 10^6 iterations: over the cost limit
		{`request.dns.all(a, request.dns.all(b, a != ""))`, func(r *Request) {
			r.DNSNames = make([]string, 100)
			for i := range r.DNSNames {
				r.DNSNames[i] = "a.test"
			}
		}, ""}, // all pairs of 100 names fit in the budget
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			p := webProfile()
			p.Rule = tt.rule
			c := mustCompile(t, p)
			r := baseRequest()
			tt.mod(&r)
			check(t, c, &r, tt.want)
		})
	}
}

func TestRefusalMessage(t *testing.T) {
	p := webProfile()
	p.DNS = []string{"*.prod.internal", "*.test", "localhost"}
	c := mustCompile(t, p)
	_, err := c.Evaluate(&Request{DNSNames: []string{"evil.com"}, KeyType: "ecdsa-p256"})
	want := `profile "web" refused the request (rule dns): name "evil.com" is not allowed (allowed: *.prod.internal, *.test, localhost)`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	_, err = c.Evaluate(&Request{DNSNames: []string{"evil\n.com"}, KeyType: "ecdsa-p256"})
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("unquoted name in %q", err)
	}
	p.Rule = `size(request.dns) < 1`
	c = mustCompile(t, p)
	_, err = c.Evaluate(&Request{DNSNames: []string{"a.test"}, KeyType: "ecdsa-p256"})
	if err == nil || !strings.Contains(err.Error(), "size(request.dns) < 1") {
		t.Fatalf("rule refusal does not name the expression: %v", err)
	}
	check(t, c, nil, RuleRequest)
}

func TestEvaluateConcurrent(t *testing.T) {
	p := webProfile()
	p.Rule = `request.dns.all(n, n.endsWith(".test") || n.endsWith(".internal"))`
	c := mustCompile(t, p)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				r := &Request{DNSNames: []string{"a.test", "b.prod.internal"}, KeyType: "ecdsa-p256", Labels: map[string]string{"i": "x"}}
				if (i+j)%2 == 0 {
					r.DNSNames = append(r.DNSNames, "evil.com")
				}
				_, err := c.Evaluate(r)
				if (err == nil) != ((i+j)%2 == 1) {
					t.Errorf("unexpected result %v", err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
}
