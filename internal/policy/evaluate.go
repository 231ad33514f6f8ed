package policy

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
)

// Requester is who asks for the certificate.
type Requester struct {
	Name string
	Role string
}

// Request is what a certificate request asks for, as the policy sees it.
type Request struct {
	CommonName  string
	DNSNames    []string
	IPAddresses []net.IP
	URIs        []*url.URL
	Emails      []string
	KeyType     string        // as returned by identity.KeyTypeOf
	TTL         time.Duration // 0: the profile's default
	Owner       string
	Labels      map[string]string
	Requester   Requester
}

// Decision is what the profile grants to an allowed request.
type Decision struct {
	TTL         time.Duration
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	CommonName  string // normalised: lowercase DNS name or email, canonical IP
}

// Rule values of a Refusal.
const (
	RuleKeyType = "key_type"
	RuleTTL     = "ttl"
	RuleDNS     = "dns"
	RuleIPs     = "ips"
	RuleURIs    = "uris"
	RuleEmails  = "emails"
	RuleNames   = "names" // no names, too many, or a bad common name
	RuleOwner   = "owner"
	RuleLabels  = "labels"
	RuleCEL     = "rule"
	RuleRequest = "request"
)

// Refusal is why a profile refused a request. Detail quotes requested values
// with %q, so it is safe to log.
type Refusal struct {
	Profile string
	Rule    string
	Detail  string
}

func (e *Refusal) Error() string {
	return fmt.Sprintf("profile %q refused the request (rule %s): %s", e.Profile, e.Rule, e.Detail)
}

func (c *Compiled) refuse(rule, format string, args ...any) *Refusal {
	return &Refusal{Profile: c.p.Name, Rule: rule, Detail: fmt.Sprintf(format, args...)}
}

// maxCommonName is ub-common-name from RFC 5280.
const maxCommonName = 64

// emptyLabels stands in for a nil label map in CEL; it is never written.
var emptyLabels = map[string]string{}

// Evaluate decides one request. The error, if any, is a *Refusal. Cheap
// checks run first and the CEL rule last.
func (c *Compiled) Evaluate(r *Request) (*Decision, error) {
	if r == nil {
		return nil, c.refuse(RuleRequest, "no request")
	}
	ki := keyTypeIndex(r.KeyType)
	if ki < 0 || c.keyTypes&(1<<ki) == 0 {
		return nil, c.refuse(RuleKeyType, "key type %q is not allowed (allowed: %s)", r.KeyType, strings.Join(c.p.KeyTypes, ", "))
	}

	ttl := r.TTL
	switch {
	case ttl < 0:
		return nil, c.refuse(RuleTTL, "lifetime %s is negative", ttl)
	case ttl == 0:
		ttl = c.defaultTTL
	case ttl < MinTTL:
		return nil, c.refuse(RuleTTL, "lifetime %s is shorter than %s", ttl, MinTTL)
	case ttl > c.maxTTL:
		return nil, c.refuse(RuleTTL, "lifetime %s exceeds the maximum %s", ttl, Duration(c.maxTTL))
	}

	n := len(r.DNSNames) + len(r.IPAddresses) + len(r.URIs) + len(r.Emails)
	if n == 0 {
		return nil, c.refuse(RuleNames, "the request names no DNS name, IP address, URI or email")
	}
	if n > c.maxNames {
		return nil, c.refuse(RuleNames, "%d names requested, at most %d allowed", n, c.maxNames)
	}
	if ref := c.checkNames(r); ref != nil {
		return nil, ref
	}
	cn, ref := c.commonName(r)
	if ref != nil {
		return nil, ref
	}

	if c.p.RequireOwner && strings.TrimSpace(r.Owner) == "" {
		return nil, c.refuse(RuleOwner, "an owner is required")
	}
	for _, l := range c.p.RequiredLabels {
		if strings.TrimSpace(r.Labels[l]) == "" {
			return nil, c.refuse(RuleLabels, "label %q is required", l)
		}
	}

	if c.rule != nil {
		if err := c.rule.eval(celRequest(r, cn, ttl), map[string]any{"name": r.Requester.Name, "role": r.Requester.Role}); err != nil {
			return nil, c.refuse(RuleCEL, "%v", err)
		}
	}
	return &Decision{TTL: ttl, KeyUsage: c.keyUsage[ki], ExtKeyUsage: slices.Clone(c.eku), CommonName: cn}, nil
}

// checkNames checks every SAN against the profile's patterns.
func (c *Compiled) checkNames(r *Request) *Refusal {
	for _, name := range r.DNSNames {
		switch err := c.dns.allowed(asciiLower(name)); {
		case err == errNotAllowed:
			return c.refuse(RuleDNS, "name %q is not allowed (allowed: %s)", name, c.allowedDNS)
		case err != nil:
			return c.refuse(RuleDNS, "name %q is not a valid DNS name: %v", name, err)
		}
	}
	for _, ip := range r.IPAddresses {
		a, ok := ipAddr(ip)
		if !ok {
			return c.refuse(RuleIPs, "address %q is not a valid IP address", ip.String())
		}
		if !c.ipAllowed(a) {
			return c.refuse(RuleIPs, "address %q is not allowed (allowed: %s)", a.String(), c.allowedIPs)
		}
	}
	for _, u := range r.URIs {
		if err := checkURI(u); err != nil {
			return c.refuse(RuleURIs, "URI %q is not acceptable: %v", uriString(u), err)
		}
		ok := false
		for i := range c.uris {
			if ok = c.uris[i].match(u); ok {
				break
			}
		}
		if !ok {
			return c.refuse(RuleURIs, "URI %q is not allowed (allowed: %s)", u.String(), c.allowedURIs)
		}
	}
	for _, e := range r.Emails {
		local, domain, err := checkEmail(asciiLower(e))
		if err != nil {
			return c.refuse(RuleEmails, "email %q is not a valid address: %v", e, err)
		}
		ok := false
		for i := range c.emails {
			if ok = c.emails[i].match(local, domain); ok {
				break
			}
		}
		if !ok {
			return c.refuse(RuleEmails, "email %q is not allowed (allowed: %s)", e, c.allowedEmail)
		}
	}
	return nil
}

func (c *Compiled) ipAllowed(a netip.Addr) bool {
	for _, p := range c.ips {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func uriString(u *url.URL) string {
	if u == nil {
		return "<nil>"
	}
	return u.String()
}

// commonName returns the normalised CN: the requested one if it equals a
// requested SAN, else the first DNS name that fits in a CN.
func (c *Compiled) commonName(r *Request) (string, *Refusal) {
	cn := r.CommonName
	if cn == "" {
		for _, d := range r.DNSNames {
			if len(d) <= maxCommonName {
				return asciiLower(d), nil
			}
		}
		return "", nil
	}
	if len(cn) > maxCommonName {
		return "", c.refuse(RuleNames, "common name %q is longer than %d bytes", truncate(cn, maxCommonName), maxCommonName)
	}
	for _, d := range r.DNSNames {
		if asciiEqualFold(cn, d) {
			return asciiLower(d), nil
		}
	}
	for _, e := range r.Emails {
		if asciiEqualFold(cn, e) {
			return asciiLower(e), nil
		}
	}
	for _, ip := range r.IPAddresses {
		if a, _ := ipAddr(ip); asciiEqualFold(cn, a.String()) {
			return a.String(), nil
		}
	}
	return "", c.refuse(RuleNames, "common name %q is not among the requested names", cn)
}

// celRequest is the rule's view of the request, with names normalised as
// they were matched. Values are built as CEL values directly: wrapping Go
// slices and maps would cost a reflection call per element access.
func celRequest(r *Request, cn string, ttl time.Duration) map[string]any {
	dns := make([]string, len(r.DNSNames))
	for i, d := range r.DNSNames {
		dns[i] = asciiLower(d)
	}
	ips := make([]string, len(r.IPAddresses))
	for i, ip := range r.IPAddresses {
		a, _ := ipAddr(ip)
		ips[i] = a.String()
	}
	uris := make([]string, len(r.URIs))
	for i, u := range r.URIs {
		uris[i] = u.String()
	}
	emails := make([]string, len(r.Emails))
	for i, e := range r.Emails {
		emails[i] = asciiLower(e)
	}
	labels := r.Labels
	if labels == nil {
		labels = emptyLabels
	}
	a := types.DefaultTypeAdapter
	return map[string]any{
		"common_name": types.String(cn),
		"dns":         types.NewStringList(a, dns),
		"ips":         types.NewStringList(a, ips),
		"uris":        types.NewStringList(a, uris),
		"emails":      types.NewStringList(a, emails),
		"key_type":    types.String(r.KeyType),
		"ttl_seconds": types.Int(ttl / time.Second),
		"owner":       types.String(r.Owner),
		"labels":      types.NewStringStringMap(a, labels),
	}
}
