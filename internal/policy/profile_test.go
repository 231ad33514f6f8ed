package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const exampleYAML = `
profiles:
  - name: web
    issuer: default
    key_types: [ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, ed25519]
    default_ttl: 720h
    max_ttl: 2160h
    dns: ["*.prod.internal", "*.test", "localhost"]
    ips: ["127.0.0.0/8", "10.0.0.0/8"]
    uris: ["spiffe://prod.internal/*"]
    emails: ["*@prod.internal"]
    key_usage: [digital_signature, key_encipherment]
    ext_key_usage: [server_auth, client_auth]
    require_owner: false
    required_labels: [env]
    max_names: 100
    rule: 'size(request.dns) <= 10'
  - name: mtls
    max_ttl: 30d
    uris: ["spiffe://prod.internal/ns/*/sa/*"]
    ext_key_usage: [client_auth]
`

const exampleJSON = `{
  "profiles": [
    {
      "name": "web",
      "issuer": "default",
      "key_types": ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "ed25519"],
      "default_ttl": "720h",
      "max_ttl": "2160h",
      "dns": ["*.prod.internal", "*.test", "localhost"],
      "ips": ["127.0.0.0/8", "10.0.0.0/8"],
      "uris": ["spiffe://prod.internal/*"],
      "emails": ["*@prod.internal"],
      "key_usage": ["digital_signature", "key_encipherment"],
      "ext_key_usage": ["server_auth", "client_auth"],
      "require_owner": false,
      "required_labels": ["env"],
      "max_names": 100,
      "rule": "size(request.dns) <= 10"
    },
    {"name": "mtls", "max_ttl": "30d", "uris": ["spiffe://prod.internal/ns/*/sa/*"], "ext_key_usage": ["client_auth"]}
  ]
}`

func TestParseDocumentYAMLAndJSONAgree(t *testing.T) {
	y, err := ParseDocument([]byte(exampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	j, err := ParseDocument([]byte(exampleJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(y, j) {
		t.Fatalf("YAML and JSON differ:\n%+v\n%+v", y, j)
	}
	if got := time.Duration(y.Profiles[1].MaxTTL); got != 30*24*time.Hour {
		t.Errorf("30d = %v", got)
	}
	// Both forms compile to the same effective profiles and decisions.
	for i := range y.Profiles {
		cy, err := Compile(y.Profiles[i])
		if err != nil {
			t.Fatal(err)
		}
		cj, _ := Compile(j.Profiles[i])
		if !reflect.DeepEqual(cy.Profile(), cj.Profile()) {
			t.Errorf("compiled profiles differ")
		}
	}
	// A document marshalled back to JSON and YAML parses to itself.
	jb, _ := json.Marshal(y)
	yb, _ := yaml.Marshal(y)
	for _, b := range [][]byte{jb, yb} {
		d, err := ParseDocument(b)
		if err != nil {
			t.Fatalf("round trip: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(d, y) {
			t.Errorf("round trip differs:\n%s", b)
		}
	}
}

func TestParseDocumentStrict(t *testing.T) {
	const ok = "profiles:\n  - name: a\n    dns: [a.test]\n"
	if _, err := ParseDocument([]byte(ok)); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", ok + "    colour: red\n", "colour"},
		{"unknown top key", ok + "extra: 1\n", "extra"},
		{"bad duration", ok + "    max_ttl: forever\n", "invalid duration"},
		{"numeric duration", ok + "    max_ttl: 3600\n", "must be a string"},
		{"duplicate names", ok + "  - name: a\n    dns: [b.test]\n", `profile "a": name: already used`},
		{"bad CIDR", ok + "    ips: [10.0.0.0/33]\n", `profile "a": ips`},
		{"CIDR host bits", ok + "    ips: [10.0.0.1/8]\n", "host bits"},
		{"bad CEL", ok + "    rule: 'request.dns +'\n", `profile "a": rule: does not compile`},
		{"non-boolean CEL", ok + "    rule: 'size(request.dns)'\n", "must evaluate to bool"},
		{"dyn CEL", ok + "    rule: 'request.owner'\n", "must evaluate to bool"},
		{"undeclared CEL var", ok + "    rule: 'foo == 1'\n", "does not compile"},
		{"empty", "", "empty document"},
		{"no profiles", "profiles: []\n", "no profiles"},
		{"two documents", ok + "---\n" + ok, "more than one"},
		{"duplicate YAML key", "profiles:\n  - name: a\n    name: b\n    dns: [a.test]\n", "already defined"},
		{"bad name", "profiles:\n  - name: Web\n    dns: [a.test]\n", `profile "Web": name`},
		{"unknown key type", ok + "    key_types: [rsa-1024]\n", "key_types: unknown key type"},
		{"cert_sign", ok + "    key_usage: [cert_sign]\n", "never issues CA"},
		{"crl_sign", ok + "    key_usage: [crl_sign]\n", "never issues CA"},
		{"ocsp", ok + "    ext_key_usage: [ocsp_signing]\n", "not allowed"},
		{"any eku", ok + "    ext_key_usage: [any]\n", "not allowed"},
		{"unknown eku", ok + "    ext_key_usage: [smtp]\n", "unknown extended"},
		{"ku not for key", ok + "    key_types: [ed25519]\n    key_usage: [key_encipherment]\n", "none of the listed usages"},
		{"default > max", ok + "    default_ttl: 48h\n    max_ttl: 24h\n", "exceeds max_ttl"},
		{"negative ttl", ok + "    max_ttl: -1h\n", "negative"},
		{"tiny ttl", ok + "    max_ttl: 30s\n", "shorter than"},
		{"huge ttl", ok + "    max_ttl: 87700h\n", "longer than"},
		{"bad dns pattern", "profiles:\n  - name: a\n    dns: ['foo..test']\n", "empty label"},
		{"tld wildcard", "profiles:\n  - name: a\n    dns: ['*']\n", "rightmost"},
		{"trailing dot pattern", "profiles:\n  - name: a\n    dns: ['a.test.']\n", "trailing dot"},
		{"IP as dns pattern", "profiles:\n  - name: a\n    dns: ['10.0.0.1']\n", "all digits"},
		{"bad uri pattern", "profiles:\n  - name: a\n    uris: ['spiffe://x/a?b']\n", "query"},
		{"opaque uri pattern", "profiles:\n  - name: a\n    uris: ['urn:x:y']\n", "scheme://host"},
		{"bad email pattern", "profiles:\n  - name: a\n    emails: ['prod.internal']\n", "missing '@'"},
		{"no names", "profiles:\n  - name: a\n", "allows no names"},
		{"max_names", ok + "    max_names: -1\n", "max_names"},
		{"max_names big", ok + "    max_names: 5000\n", "max_names"},
		{"bad label", ok + "    required_labels: [' env']\n", "required_labels"},
		{"bad issuer", ok + "    issuer: 'a b'\n", "issuer"},
		{"bool as string", ok + "    require_owner: maybe\n", "bool"},
		{"too big", "# " + strings.Repeat("x", MaxDocumentSize) + "\n" + ok, "bytes"},
		{"rule too long", ok + "    rule: '" + strings.Repeat("true && ", 600) + "true'\n", "longer than"},

		{"JSON unknown key", `{"profiles":[{"name":"a","dns":["a.test"],"colour":1}]}`, "unknown field"},
		{"JSON case folded key", `{"profiles":[{"NAME":"a","dns":["a.test"]}]}`, `profiles[0]: unknown field "NAME"`},
		{"JSON kelvin key", `{"profiles":[{"name":"a","dns":["a.test"],"\u212aey_types":["rsa-1024"]}]}`, "unknown field"},
		{"JSON duplicate key", `{"profiles":[{"name":"a","name":"b","dns":["a.test"]}]}`, "duplicate field"},
		{"JSON duplicate nested", `{"profiles":[{"name":"a","dns":["a.test"]}],"profiles":[]}`, "duplicate field"},
		{"JSON trailing", `{"profiles":[{"name":"a","dns":["a.test"]}]} {}`, "trailing"},
		{"JSON bad duration", `{"profiles":[{"name":"a","dns":["a.test"],"max_ttl":3600}]}`, "must be a string"},
		{"JSON syntax", `{"profiles":[`, "profile document"},
		{"JSON second profile", `{"profiles":[{"name":"a","dns":["a.test"]},{"name":"b","dns":["b.test"],"max_ttl":"x"}]}`, `profiles[1]: invalid duration "x"`},
		{"JSON null profile", `{"profiles":[null]}`, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDocument([]byte(tt.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseDocumentJSONNested(t *testing.T) {
	// Keys in different objects may repeat; the checker must track nesting.
	doc := `{"profiles":[{"name":"a","dns":["a.test"]},{"name":"b","dns":["b.test"],"ips":["10.0.0.0/8"]}]}`
	d, err := ParseDocument([]byte(" \n" + doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Profiles) != 2 || d.Profiles[1].IPs[0] != "10.0.0.0/8" {
		t.Fatalf("%+v", d)
	}
}

func TestNullDurationIsUnset(t *testing.T) {
	y, err := ParseDocument([]byte("profiles:\n  - name: a\n    dns: [a.test]\n    max_ttl: ~\n"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := ParseDocument([]byte(`{"profiles":[{"name":"a","dns":["a.test"],"max_ttl":null}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(y, j) || y.Profiles[0].MaxTTL != 0 {
		t.Fatalf("%+v %+v", y, j)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"720h", 720 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"30d", 30 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"0d", 0, false},
		{"", 0, true},
		{"d", 0, true},
		{"-1d", 0, true},
		{"+1d", 0, true},
		{"1d-1h", 0, true},
		{"1.5d", 0, true},
		{"99999999d", 0, true},
		{"1w", 0, true},
		{"12", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.bad || time.Duration(got) != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v", tt.in, time.Duration(got), err)
		}
	}
	if s := Duration(720 * time.Hour).String(); s != "720h" {
		t.Errorf("String = %q", s)
	}
	if s := Duration(90 * time.Minute).String(); s != "1h30m0s" {
		t.Errorf("String = %q", s)
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		def, max         time.Duration
		wantDef, wantMax time.Duration
	}{
		{0, 0, 720 * time.Hour, 720 * time.Hour},
		{0, 2160 * time.Hour, 720 * time.Hour, 2160 * time.Hour},
		{0, 24 * time.Hour, 24 * time.Hour, 24 * time.Hour},
		{48 * time.Hour, 0, 48 * time.Hour, 48 * time.Hour},
		{time.Hour, 2 * time.Hour, time.Hour, 2 * time.Hour},
	}
	for _, tt := range tests {
		c, err := Compile(Profile{Name: "p", DNS: []string{"a.test"}, DefaultTTL: Duration(tt.def), MaxTTL: Duration(tt.max)})
		if err != nil {
			t.Fatal(err)
		}
		p := c.Profile()
		if time.Duration(p.DefaultTTL) != tt.wantDef || time.Duration(p.MaxTTL) != tt.wantMax {
			t.Errorf("def %v max %v: got %v %v", tt.def, tt.max, p.DefaultTTL, p.MaxTTL)
		}
		if !reflect.DeepEqual(p.KeyTypes, defaultKeyTypes) || !reflect.DeepEqual(p.ExtKeyUsage, defaultExtKeyUsage) || p.MaxNames != 100 {
			t.Errorf("defaults not filled: %+v", p)
		}
		// Compiling the effective profile is idempotent.
		c2, err := Compile(p)
		if err != nil || !reflect.DeepEqual(c2.Profile(), p) {
			t.Errorf("recompile: %v", err)
		}
	}
}

func TestCompileCopiesProfile(t *testing.T) {
	p := Profile{Name: "p", DNS: []string{"a.test"}}
	c, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	p.DNS[0] = "evil.test"
	got := c.Profile()
	got.DNS[0] = "other.test"
	if c.Profile().DNS[0] != "a.test" {
		t.Fatal("Compiled shares slices with callers")
	}
	if _, err := c.Evaluate(&Request{DNSNames: []string{"a.test"}, KeyType: "ecdsa-p256"}); err != nil {
		t.Fatal(err)
	}
}

func TestValidateDoesNotMutate(t *testing.T) {
	p := Profile{Name: "p", DNS: []string{"A.test"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.KeyTypes != nil || p.MaxTTL != 0 || p.DNS[0] != "A.test" {
		t.Fatalf("Validate changed the profile: %+v", p)
	}
}
