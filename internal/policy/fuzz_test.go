package policy

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func FuzzParseDocument(f *testing.F) {
	for _, s := range []string{
		exampleYAML, exampleJSON,
		"profiles:\n  - name: a\n    dns: [a.test]\n",
		"profiles:\n  - name: a\n    dns: [a.test]\n    rule: 'request.owner == \"x\"'\n",
		`{"profiles":[{"name":"a","dns":["a.test"],"max_ttl":"1d2h"}]}`,
		`{"profiles":[{"name":"a","name":"a"}]}`,
		"profiles: &a [*a]\n",
		"- [",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := ParseDocument(data)
		if err != nil {
			return
		}
		for _, p := range doc.Profiles {
			if _, err := Compile(p); err != nil {
				t.Fatalf("parsed profile does not compile: %v", err)
			}
		}
		// What parses re-encodes to an equivalent document.
		b1, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		doc2, err := ParseDocument(b1)
		if err != nil {
			t.Fatalf("re-encoded document refused: %v\n%s", err, b1)
		}
		if b2, _ := json.Marshal(doc2); !bytes.Equal(b1, b2) {
			t.Fatalf("round trip differs:\n%s\n%s", b1, b2)
		}
	})
}

var fuzzProfile = func() *Compiled {
	c, err := Compile(Profile{
		Name:   "fuzz",
		DNS:    []string{"*.prod.internal", "web-*.dmz.internal", "api.*.internal", "localhost", "*.*.test"},
		URIs:   []string{"spiffe://prod.internal/ns/*/sa/*"},
		Emails: []string{"*@prod.internal", "ops@*.corp.internal"},
	})
	if err != nil {
		panic(err)
	}
	return c
}()

func FuzzEvaluateNames(f *testing.F) {
	for _, s := range [][2]string{
		{"*.test", "a.b.test"}, {"web-*.test", "web-1.test"}, {"a*b*c.x", "aXbYc.x"},
		{"*.prod.internal", "*.prod.internal"}, {"api.*.internal", "API.x.internal"},
		{"localhost", "localhost."}, {"*.test", "10.0.0.1"}, {"x", "\u212a.prod.internal"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		r := &Request{KeyType: "ecdsa-p256", DNSNames: []string{name}, CommonName: name}
		_, err := fuzzProfile.Evaluate(r)
		if err == nil {
			// An allowed name is either a listed wildcard verbatim or a valid
			// hostname that the reference (regexp) semantics also allow.
			l := asciiLower(name)
			if strings.HasPrefix(l, "*.") {
				if _, ok := fuzzProfile.dns.wildcards[l]; !ok {
					t.Fatalf("unlisted wildcard %q allowed", name)
				}
			} else if checkHostname(l, false) != nil || !refAllowed(fuzzProfile.p.DNS, l) {
				t.Fatalf("%q allowed against the reference", name)
			}
		} else if l := asciiLower(name); checkHostname(l, false) == nil && refAllowed(fuzzProfile.p.DNS, l) {
			t.Fatalf("%q refused though the reference allows it: %v", name, err)
		}
		_, _ = fuzzProfile.Evaluate(&Request{KeyType: "ed25519", Emails: []string{name}})
		if u, err := url.Parse(name); err == nil {
			_, _ = fuzzProfile.Evaluate(&Request{KeyType: "ed25519", URIs: []*url.URL{u}})
		}

		// Fuzzed pattern: compiled matching agrees with the reference.
		p, err := compileDNSPattern(pattern)
		if err != nil {
			if _, cerr := Compile(Profile{Name: "p", DNS: []string{pattern}}); cerr == nil {
				t.Fatalf("pattern %q refused alone but accepted by Compile", pattern)
			}
			return
		}
		l := asciiLower(name)
		if checkHostname(l, false) == nil {
			if got, want := p.match(l), refMatch(asciiLower(pattern), l); got != want {
				t.Fatalf("pattern %q name %q: match %v, reference %v", pattern, name, got, want)
			}
		}
		// A pattern with each star replaced by "x" matches that name.
		inst := strings.ReplaceAll(asciiLower(pattern), "*", "x")
		if checkHostname(inst, false) == nil && !p.match(inst) {
			t.Fatalf("pattern %q does not match its instance %q", pattern, inst)
		}
	})
}

func refAllowed(patterns []string, name string) bool {
	for _, p := range patterns {
		if refMatch(p, name) {
			return true
		}
	}
	return false
}
