package policy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// checkHostname reports why a lowercase name is not an LDH hostname. With
// star set, '*' is accepted as a label character (for patterns).
func checkHostname(name string, star bool) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 253 {
		return errors.New("name longer than 253 bytes")
	}
	if name[len(name)-1] == '.' {
		return errors.New("trailing dot")
	}
	start, tld := 0, ""
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			c := name[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || star && c == '*') {
				return fmt.Errorf("invalid character %q", c)
			}
			continue
		}
		label := name[start:i]
		switch {
		case label == "":
			return errors.New("empty label")
		case len(label) > 63:
			return errors.New("label longer than 63 bytes")
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		case star && strings.Contains(label, "**"):
			return fmt.Errorf("label %q has consecutive stars", label)
		}
		start, tld = i+1, label
	}
	if allDigits(tld) {
		return errors.New("top-level label is all digits (use ips for addresses)")
	}
	return nil
}

// asciiLower lowercases ASCII letters only: Unicode folding would let
// "\u212a" (Kelvin sign) pass as "k". It does not allocate for lowercase input.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// asciiEqualFold compares ignoring ASCII case only.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if y >= 'A' && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// dnsPattern is a compiled DNS pattern; labels are stored rightmost first.
type dnsPattern struct {
	labels []string // "*" or glob or literal
	multi  bool     // leftmost label is "*": one or more labels
}

func compileDNSPattern(s string) (dnsPattern, error) {
	s = asciiLower(s)
	if err := checkHostname(s, true); err != nil {
		return dnsPattern{}, err
	}
	parts := strings.Split(s, ".")
	if strings.Contains(parts[len(parts)-1], "*") {
		return dnsPattern{}, errors.New("the rightmost label may not contain '*'")
	}
	var p dnsPattern
	if parts[0] == "*" {
		p.multi = true
		parts = parts[1:]
	}
	for i := len(parts) - 1; i >= 0; i-- {
		p.labels = append(p.labels, parts[i])
	}
	return p, nil
}

// match reports whether a valid lowercase hostname matches the pattern.
func (p *dnsPattern) match(name string) bool {
	rest := name
	for _, l := range p.labels {
		if rest == "" {
			return false
		}
		var label string
		if i := strings.LastIndexByte(rest, '.'); i >= 0 {
			label, rest = rest[i+1:], rest[:i]
		} else {
			label, rest = rest, ""
		}
		if !globLabel(l, label) {
			return false
		}
	}
	if p.multi {
		return rest != ""
	}
	return rest == ""
}

// globLabel matches s against pattern, where '*' matches any run of
// characters. Classic linear backtracking on the last star: O(len*len) at
// worst, and both are at most 63 bytes.
func globLabel(pattern, s string) bool {
	if strings.IndexByte(pattern, '*') < 0 {
		return pattern == s
	}
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pattern) && pattern[pi] == '*':
			starP, starS = pi, si
			pi++
		case pi < len(pattern) && pattern[pi] == s[si]:
			pi++
			si++
		case starP >= 0:
			starS++
			pi, si = starP+1, starS
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}

// dnsSet is a profile's DNS patterns with literal names in a map.
type dnsSet struct {
	exact     map[string]struct{}
	patterns  []dnsPattern
	wildcards map[string]struct{} // listed patterns a request may name verbatim
}

func compileDNSSet(list []string) (dnsSet, error) {
	s := dnsSet{exact: map[string]struct{}{}, wildcards: map[string]struct{}{}}
	for _, v := range list {
		v = asciiLower(v)
		p, err := compileDNSPattern(v)
		if err != nil {
			return dnsSet{}, fmt.Errorf("pattern %q: %w", v, err)
		}
		if !strings.Contains(v, "*") {
			s.exact[v] = struct{}{}
			continue
		}
		s.patterns = append(s.patterns, p)
		if strings.HasPrefix(v, "*.") {
			s.wildcards[v] = struct{}{}
		}
	}
	return s, nil
}

// allowed checks one requested DNS name, already lowercased.
func (s *dnsSet) allowed(name string) error {
	if strings.HasPrefix(name, "*.") {
		if err := checkHostname(name[2:], false); err != nil {
			return err
		}
		if _, ok := s.wildcards[name]; ok {
			return nil
		}
		return errNotAllowed
	}
	if err := checkHostname(name, false); err != nil {
		return err
	}
	if _, ok := s.exact[name]; ok {
		return nil
	}
	for i := range s.patterns {
		if s.patterns[i].match(name) {
			return nil
		}
	}
	return errNotAllowed
}

var errNotAllowed = errors.New("not allowed")

// compilePrefix parses a CIDR or a bare address; IPv4-mapped prefixes become
// IPv4 so they compare like the (unmapped) requested addresses.
func compilePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, err
		}
		if p != p.Masked() {
			return p, fmt.Errorf("host bits set (did you mean %s?)", p.Masked())
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, err
		}
		if a.Zone() != "" {
			return p, errors.New("zones are not allowed")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return p, errors.New("IPv4-mapped prefix shorter than /96")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}

// ipAddr converts a requested address, refusing ones of the wrong length.
func ipAddr(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// emailPattern is "*@domain" or "local@domain".
type emailPattern struct {
	local  string // "" for any
	domain dnsPattern
}

func compileEmailPattern(s string) (emailPattern, error) {
	s = asciiLower(s)
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return emailPattern{}, errors.New("missing '@'")
	}
	var p emailPattern
	if local != "*" {
		if err := checkLocalPart(local); err != nil {
			return p, err
		}
		p.local = local
	}
	d, err := compileDNSPattern(domain)
	if err != nil {
		return p, fmt.Errorf("domain: %w", err)
	}
	p.domain = d
	return p, nil
}

// checkLocalPart accepts an unquoted RFC 5322 dot-atom of ASCII atext, minus
// '*' so that a requested address can never look like a pattern.
func checkLocalPart(s string) error {
	if s == "" || len(s) > 64 {
		return errors.New("local part must be 1 to 64 bytes")
	}
	if s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return errors.New("local part has a misplaced dot")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".!#$%&'+-/=?^_`{|}~", c) >= 0 {
			continue
		}
		return fmt.Errorf("local part has invalid character %q", c)
	}
	return nil
}

// checkEmail validates a lowercased requested address and splits it.
func checkEmail(s string) (local, domain string, err error) {
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return "", "", errors.New("missing '@'")
	}
	if err := checkLocalPart(local); err != nil {
		return "", "", err
	}
	if err := checkHostname(domain, false); err != nil {
		return "", "", fmt.Errorf("domain: %w", err)
	}
	return local, domain, nil
}

func (p *emailPattern) match(local, domain string) bool {
	return (p.local == "" || p.local == local) && p.domain.match(domain)
}

// uriPattern is scheme://host/path with a segment-glob path.
type uriPattern struct {
	scheme, host string
	segs         []string // path segments after the leading '/'
	rooted       bool     // path is non-empty
	multi        bool     // last segment "*": one or more segments
}

func compileURIPattern(s string) (uriPattern, error) {
	u, err := url.Parse(s)
	if err != nil {
		return uriPattern{}, err
	}
	if u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return uriPattern{}, errors.New("must be scheme://host[/path]")
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "?#") {
		return uriPattern{}, errors.New("user info, query and fragment are not allowed")
	}
	p := uriPattern{scheme: asciiLower(u.Scheme), host: asciiLower(u.Host)}
	if err := checkURIHost(p.host); err != nil {
		return p, err
	}
	path := u.EscapedPath()
	if path == "" {
		return p, nil
	}
	if !validURIPath(path, true) {
		return p, fmt.Errorf("invalid path %q", path)
	}
	p.rooted = true
	if path == "/" {
		p.segs = []string{}
		return p, nil
	}
	p.segs = strings.Split(path[1:], "/")
	if p.segs[len(p.segs)-1] == "*" {
		p.multi = true
		p.segs = p.segs[:len(p.segs)-1]
	}
	return p, nil
}

// checkURIHost accepts a hostname, a bracketed IPv6 address or an IPv4
// address, with an optional port.
func checkURIHost(host string) error {
	h, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		h, port = host[:i], host[i+1:]
		if port == "" || len(port) > 5 || !allDigits(port) {
			return fmt.Errorf("invalid port in host %q", host)
		}
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		if a, err := netip.ParseAddr(h[1 : len(h)-1]); err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Errorf("invalid IPv6 host %q", host)
		}
		return nil
	}
	if a, err := netip.ParseAddr(h); err == nil && a.Is4() {
		return nil
	}
	if err := checkHostname(h, false); err != nil {
		return fmt.Errorf("host %q: %w", host, err)
	}
	return nil
}

// validURIPath accepts "/" or "/seg/seg" with segments of unreserved and
// sub-delim characters, ':' and '@' (and '*' in patterns), and no empty, "."
// or ".." segment.
func validURIPath(path string, star bool) bool {
	if path == "/" {
		return true
	}
	if path[0] != '/' {
		return false
	}
	start := 1
	for i := 1; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			c := path[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
				strings.IndexByte("-._~!$&'()+,;=:@", c) >= 0 || star && c == '*') {
				return false
			}
			continue
		}
		if seg := path[start:i]; seg == "" || seg == "." || seg == ".." {
			return false
		}
		start = i + 1
	}
	return true
}

// checkURI refuses the URI forms whose matching would be ambiguous.
func checkURI(u *url.URL) error {
	switch {
	case u == nil:
		return errors.New("nil URI")
	case u.Scheme == "" || u.Host == "" || u.Opaque != "":
		return errors.New("must be scheme://host[/path]")
	case u.User != nil:
		return errors.New("user info is not allowed")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("a query is not allowed")
	case u.Fragment != "" || u.RawFragment != "":
		return errors.New("a fragment is not allowed")
	}
	if p := u.EscapedPath(); p != "" && !validURIPath(p, false) {
		return errors.New("path has empty, dot, percent-encoded or unusual segments")
	}
	return nil
}

func (p *uriPattern) match(u *url.URL) bool {
	if !asciiEqualFold(p.scheme, u.Scheme) || !asciiEqualFold(p.host, u.Host) {
		return false
	}
	path := u.EscapedPath()
	if !p.rooted {
		return path == ""
	}
	if path == "" {
		return false
	}
	rest := path[1:] // "" for "/"
	for _, seg := range p.segs {
		if rest == "" {
			return false
		}
		var s string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			s, rest = rest[:i], rest[i+1:]
		} else {
			s, rest = rest, ""
		}
		if !globLabel(seg, s) {
			return false
		}
	}
	if p.multi {
		return rest != ""
	}
	return rest == ""
}
