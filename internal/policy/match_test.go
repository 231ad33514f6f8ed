package policy

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestDNSPatternMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*.test", "bar.test", true},
		{"*.test", "www.bar.test", true},
		{"*.test", "a.b.c.d.test", true},
		{"*.test", "test", false},
		{"*.test", "bar.test2", false},
		{"*.test", "bartest", false},
		{"*.prod.internal", "api.prod.internal", true},
		{"*.prod.internal", "prod.internal", false},
		{"*.prod.internal", "api.staging.internal", false},
		{"*.prod.internal", "api.prodxinternal", false},
		{"localhost", "localhost", true},
		{"localhost", "www.localhost", false},
		{"web-*.prod.internal", "web-1.prod.internal", true},
		{"web-*.prod.internal", "web-.prod.internal", true}, // glob may match nothing; such a label is invalid anyway
		{"web-*.prod.internal", "web-1.x.prod.internal", false},
		{"web-*.prod.internal", "api-1.prod.internal", false},
		{"web-*.prod.internal", "x.web-1.prod.internal", false},
		{"*-web.prod.internal", "a-web.prod.internal", true},
		{"w*b.test", "web.test", true},
		{"w*b.test", "wb.test", true},
		{"w*b.test", "webs.test", false},
		{"a*b*c.test", "axxbyyc.test", true},
		{"a*b*c.test", "axxbyy.test", false},
		{"api.*.internal", "api.prod.internal", true},
		{"api.*.internal", "api.a.b.internal", false},
		{"api.*.internal", "api.internal", false},
		{"*.*.test", "a.b.test", true},
		{"*.*.test", "x.a.b.test", true},
		{"*.*.test", "b.test", false},
		{"*.web-*.test", "a.web-1.test", true},
		{"*.web-*.test", "web-1.test", false},
	}
	for _, tt := range tests {
		p, err := compileDNSPattern(tt.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tt.pattern, err)
		}
		if got := p.match(tt.name); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
		if got := refMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("reference: %q matches %q = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

// refMatch is the documented pattern semantics written as a regexp, to check
// the fast matcher against.
func refMatch(pattern, name string) bool {
	labels := strings.Split(pattern, ".")
	var re strings.Builder
	re.WriteString("^")
	for i, l := range labels {
		if i > 0 {
			re.WriteString(`\.`)
		}
		if i == 0 && l == "*" {
			re.WriteString(`[^.]+(?:\.[^.]+)*`)
			continue
		}
		for j, part := range strings.Split(l, "*") {
			if j > 0 {
				re.WriteString(`[^.]*`)
			}
			re.WriteString(regexp.QuoteMeta(part))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(name)
}

func TestCheckHostname(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		name string
		ok   bool
	}{
		{"a.test", true},
		{"localhost", true},
		{"xn--bcher-kva.example", true},
		{"a-b.c-d.test", true},
		{"1a.test", true},
		{long63 + ".test", true},
		{strings.Repeat("a", 64) + ".test", false},
		{strings.Repeat(long63+".", 4)[:253], true},
		{strings.Repeat(long63+".", 4)[:252] + "ab", false},
		{"", false},
		{"a.test.", false},
		{".a.test", false},
		{"a..test", false},
		{"-a.test", false},
		{"a-.test", false},
		{"a_b.test", false},
		{"a b.test", false},
		{"bücher.test", false},
		{"*.test", false},
		{"10.0.0.1", false},
		{"127.1", false},
		{"a.123", false},
		{"0x7f.test", true},
	}
	for _, tt := range tests {
		if err := checkHostname(tt.name, false); (err == nil) != tt.ok {
			t.Errorf("checkHostname(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestGlobLabel(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"*", "abc", true},
		{"a*", "a", true},
		{"a*", "ba", false},
		{"*a", "ba", true},
		{"*a*", "xay", true},
		{"*ab", "aab", true},
		{"a*a", "a", false},
		{"abc", "abc", true},
		{"abc", "abd", false},
	}
	for _, tt := range tests {
		if got := globLabel(tt.p, tt.s); got != tt.want {
			t.Errorf("globLabel(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}

func TestURIPattern(t *testing.T) {
	tests := []struct {
		pattern, uri string
		want         bool
	}{
		{"spiffe://prod.internal/*", "spiffe://prod.internal/web", true},
		{"spiffe://prod.internal/*", "spiffe://prod.internal/ns/a/sa/b", true},
		{"spiffe://prod.internal/*", "spiffe://prod.internal", false},
		{"spiffe://prod.internal/*", "spiffe://prod.internal/", false},
		{"spiffe://prod.internal/*", "SPIFFE://PROD.Internal/web", true},
		{"spiffe://prod.internal/*", "spiffe://prod.internal.evil/web", false},
		{"spiffe://prod.internal/*", "spiffe://evil/prod.internal/web", false},
		{"spiffe://prod.internal/*", "https://prod.internal/web", false},
		{"spiffe://prod.internal/ns/*/sa/*", "spiffe://prod.internal/ns/a/sa/b", true},
		{"spiffe://prod.internal/ns/*/sa/*", "spiffe://prod.internal/ns/a/sa/b/c", true},
		{"spiffe://prod.internal/ns/*/sa/*", "spiffe://prod.internal/ns/a/x/sa/b", false},
		{"spiffe://prod.internal/ns/*/sa/*", "spiffe://prod.internal/ns/a/sa", false},
		{"spiffe://prod.internal/ns/web-*", "spiffe://prod.internal/ns/web-1", true},
		{"spiffe://prod.internal/ns/web-*", "spiffe://prod.internal/ns/web-1/x", false},
		{"spiffe://prod.internal/web", "spiffe://prod.internal/web", true},
		{"spiffe://prod.internal/web", "spiffe://prod.internal/Web", false},
		{"spiffe://prod.internal", "spiffe://prod.internal", true},
		{"spiffe://prod.internal", "spiffe://prod.internal/", false},
		{"https://svc.test:8443/", "https://svc.test:8443/", true},
		{"https://svc.test:8443/", "https://svc.test/", false},
	}
	for _, tt := range tests {
		p, err := compileURIPattern(tt.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tt.pattern, err)
		}
		u, err := url.Parse(tt.uri)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkURI(u); err != nil {
			if tt.want {
				t.Errorf("%q refused: %v", tt.uri, err)
			}
			continue
		}
		if got := p.match(u); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.uri, got, tt.want)
		}
	}
}

func TestCheckURI(t *testing.T) {
	bad := []string{
		"spiffe://user@prod.internal/web",
		"spiffe://prod.internal/web?x=1",
		"spiffe://prod.internal/web?",
		"spiffe://prod.internal/web#frag",
		"spiffe://prod.internal//web",
		"spiffe://prod.internal/web/",
		"spiffe://prod.internal/./web",
		"spiffe://prod.internal/a/../web",
		"spiffe://prod.internal/a%2Fb",
		"spiffe://prod.internal/a%20b",
		"spiffe://prod.internal/*",
		"urn:uuid:1234",
		"/relative",
	}
	for _, s := range bad {
		u, err := url.Parse(s)
		if err != nil {
			continue
		}
		if checkURI(u) == nil {
			t.Errorf("checkURI(%q) accepted", s)
		}
	}
	if checkURI(nil) == nil {
		t.Error("nil URI accepted")
	}
}

func TestEmailPattern(t *testing.T) {
	tests := []struct {
		pattern, email string
		want           bool
	}{
		{"*@prod.internal", "alice@prod.internal", true},
		{"*@prod.internal", "alice@a.prod.internal", false},
		{"*@*.prod.internal", "alice@a.prod.internal", true},
		{"*@*.prod.internal", "alice@prod.internal", false},
		{"ops@prod.internal", "ops@prod.internal", true},
		{"ops@prod.internal", "dev@prod.internal", false},
		{"OPS@Prod.Internal", "ops@prod.internal", true},
	}
	for _, tt := range tests {
		p, err := compileEmailPattern(tt.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tt.pattern, err)
		}
		local, domain, err := checkEmail(tt.email)
		if err != nil {
			t.Fatalf("%q: %v", tt.email, err)
		}
		if got := p.match(local, domain); got != tt.want {
			t.Errorf("%q matches %q = %v", tt.pattern, tt.email, got)
		}
	}
	for _, bad := range []string{"alice", "@prod.internal", "a@b@prod.internal", "*@prod.internal", "\"a b\"@prod.internal", "a..b@prod.internal", ".a@prod.internal", "a@prod.internal.", "a@", "a@10.0.0.1", "ä@prod.internal", strings.Repeat("a", 65) + "@prod.internal"} {
		if _, _, err := checkEmail(bad); err == nil {
			t.Errorf("checkEmail(%q) accepted", bad)
		}
	}
}

func TestCompilePrefix(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3", "10.1.2.3/32"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"::1", "::1/128"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"10.0.0.1/8", ""},
		{"10.0.0.0/33", ""},
		{"fe80::1%eth0", ""},
		{"::ffff:0.0.0.0/80", ""},
		{"example.com", ""},
	}
	for _, tt := range tests {
		p, err := compilePrefix(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("compilePrefix(%q) accepted as %v", tt.in, p)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("compilePrefix(%q) = %v, %v", tt.in, p, err)
		}
	}
}

func TestASCIIOnlyFolding(t *testing.T) {
	// U+212A KELVIN SIGN lowercases to "k" under Unicode rules.
	if asciiLower("\u212a8s.test") == "k8s.test" || asciiEqualFold("\u212a8s", "k8s") {
		t.Fatal("Unicode case folding used")
	}
	if s := "abc"; asciiLower(s) != s || asciiLower("AbC") != "abc" {
		t.Fatal("asciiLower")
	}
}
