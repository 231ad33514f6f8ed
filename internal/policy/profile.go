package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxDocumentSize bounds the profile document ParseDocument accepts.
const MaxDocumentSize = 1 << 20

// Limits on profile values. A leaf lifetime over ten years is a typo, and the
// cap keeps NotAfter arithmetic far from overflow.
const (
	MinTTL          = time.Minute
	MaxTTLLimit     = 10 * 365 * 24 * time.Hour
	DefaultTTL      = 720 * time.Hour
	DefaultMaxNames = 100
	MaxNamesLimit   = 1000
	MaxRuleLength   = 4096
)

// Duration is a time.Duration written as a Go duration string ("720h",
// "90m"), with a whole-days prefix also accepted ("30d", "1d12h"). Bare
// numbers are refused: nanoseconds or seconds would be a guess.
type Duration time.Duration

// ParseDuration parses the Duration syntax.
func ParseDuration(s string) (Duration, error) {
	in := s
	var days int64
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n < 0 || s[0] == '+' || n > 100*365 {
			return 0, fmt.Errorf("invalid duration %q", in)
		}
		days, s = n, s[i+1:]
		if s == "" {
			return Duration(time.Duration(days) * 24 * time.Hour), nil
		}
		if s[0] == '-' || s[0] == '+' {
			return 0, fmt.Errorf("invalid duration %q", in)
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 720h, 90m or 30d)", in)
	}
	total := time.Duration(days)*24*time.Hour + d
	if total < 0 && d >= 0 {
		return 0, fmt.Errorf("invalid duration %q: too long", in)
	}
	return Duration(total), nil
}

// String formats whole hours as "720h" so documents round-trip readably.
func (d Duration) String() string {
	td := time.Duration(d)
	if td != 0 && td%time.Hour == 0 {
		return strconv.FormatInt(int64(td/time.Hour), 10) + "h"
	}
	return td.String()
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts only a duration string (or null).
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // as in YAML, null leaves the field unset
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"720h\", not %s", truncate(string(b), 32))
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML accepts only a string scalar (720h is one; 3600 is not).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return fmt.Errorf("line %d: duration must be a string such as 720h", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// Profile is one certificate profile as written in the profile document.
// Unset fields take the defaults described in the package documentation.
type Profile struct {
	Name           string   `json:"name" yaml:"name"`
	Issuer         string   `json:"issuer,omitempty" yaml:"issuer,omitempty"`
	KeyTypes       []string `json:"key_types,omitempty" yaml:"key_types,omitempty"`
	DefaultTTL     Duration `json:"default_ttl,omitempty" yaml:"default_ttl,omitempty"`
	MaxTTL         Duration `json:"max_ttl,omitempty" yaml:"max_ttl,omitempty"`
	DNS            []string `json:"dns,omitempty" yaml:"dns,omitempty"`
	IPs            []string `json:"ips,omitempty" yaml:"ips,omitempty"`
	URIs           []string `json:"uris,omitempty" yaml:"uris,omitempty"`
	Emails         []string `json:"emails,omitempty" yaml:"emails,omitempty"`
	KeyUsage       []string `json:"key_usage,omitempty" yaml:"key_usage,omitempty"`
	ExtKeyUsage    []string `json:"ext_key_usage,omitempty" yaml:"ext_key_usage,omitempty"`
	RequireOwner   bool     `json:"require_owner,omitempty" yaml:"require_owner,omitempty"`
	RequiredLabels []string `json:"required_labels,omitempty" yaml:"required_labels,omitempty"`
	MaxNames       int      `json:"max_names,omitempty" yaml:"max_names,omitempty"`
	Rule           string   `json:"rule,omitempty" yaml:"rule,omitempty"`
}

// Document is a profile file.
type Document struct {
	Profiles []Profile `json:"profiles" yaml:"profiles"`
}

// Validate checks the profile completely, including compiling its patterns
// and rule; it does not fill in defaults (Compile does, see Compiled.Profile).
func (p *Profile) Validate() error {
	_, err := compile(p)
	return err
}

// clone deep-copies the slices so a Compiled shares nothing with its caller.
func (p Profile) clone() Profile {
	c := p
	for _, s := range []*[]string{&c.KeyTypes, &c.DNS, &c.IPs, &c.URIs, &c.Emails, &c.KeyUsage, &c.ExtKeyUsage, &c.RequiredLabels} {
		if *s != nil {
			*s = append([]string(nil), (*s)...)
		}
	}
	return c
}

// ParseDocument parses and validates a profile document. YAML and JSON are
// both accepted; JSON (first non-space byte '{') is decoded with
// encoding/json. Either way unknown or duplicate keys are errors, and so is a
// document without profiles or with two profiles of the same name.
func ParseDocument(data []byte) (*Document, error) {
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("profile document is %d bytes, more than the %d allowed", len(data), MaxDocumentSize)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var doc Document
	var err error
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		err = decodeJSON(data, &doc)
	} else {
		err = decodeYAML(data, &doc)
	}
	if err != nil {
		return nil, fmt.Errorf("profile document: %w", err)
	}
	if len(doc.Profiles) == 0 {
		return nil, errors.New("profile document: no profiles defined")
	}
	seen := make(map[string]int, len(doc.Profiles))
	for i := range doc.Profiles {
		p := &doc.Profiles[i]
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("profiles[%d]: %w", i, err)
		}
		if j, dup := seen[p.Name]; dup {
			return nil, fmt.Errorf("profiles[%d]: profile %q: name: already used by profiles[%d]", i, p.Name, j)
		}
		seen[p.Name] = i
	}
	return &doc, nil
}

func decodeYAML(data []byte, doc *Document) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(doc); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty document")
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}

func decodeJSON(data []byte, doc *Document) error {
	// encoding/json matches keys case-insensitively and lets a repeated key
	// win silently; check keys first so JSON is as strict as YAML.
	if err := checkJSONKeys(data); err != nil {
		return err
	}
	var raw struct {
		Profiles []json.RawMessage `json:"profiles"`
	}
	if err := strictJSON(data, &raw); err != nil {
		return err
	}
	// Decoding profiles one by one lets errors say which one is wrong.
	for i, r := range raw.Profiles {
		var p Profile
		if err := strictJSON(r, &p); err != nil {
			return fmt.Errorf("profiles[%d]: %w", i, err)
		}
		doc.Profiles = append(doc.Profiles, p)
	}
	return nil
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON document")
	}
	return nil
}

// checkJSONKeys refuses duplicate object keys, and keys that are not
// lowercase ASCII identifiers (every key in the format is one; anything else
// would only be matched by encoding/json's case folding).
func checkJSONKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		keys   map[string]bool // nil for arrays
		key    string          // current key (objects)
		idx    int             // current element (arrays)
		expect bool            // objects: next token is a key or '}'
	}
	var stack []frame
	// After a value, the enclosing object expects a key and the enclosing
	// array moves to its next element.
	valueDone := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].keys != nil {
				stack[n-1].expect = true
			} else {
				stack[n-1].idx++
			}
		}
	}
	path := func() string {
		var b strings.Builder
		for _, f := range stack[:len(stack)-1] {
			if f.keys == nil {
				fmt.Fprintf(&b, "[%d]", f.idx)
			} else {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			}
		}
		if b.Len() == 0 {
			return ""
		}
		return b.String() + ": "
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil && stack[n-1].expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			key, _ := tok.(string)
			if !isJSONKey(key) {
				return fmt.Errorf("json: %sunknown field %q", path(), key)
			}
			if stack[n-1].keys[key] {
				return fmt.Errorf("json: %sduplicate field %q", path(), key)
			}
			stack[n-1].keys[key] = true
			stack[n-1].key, stack[n-1].expect = key, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{keys: map[string]bool{}, expect: true})
			continue
		case json.Delim('['):
			stack = append(stack, frame{})
			continue
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		valueDone()
	}
}

func isJSONKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
