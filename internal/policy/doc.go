// Package policy decides whether Sigil may issue a certificate. A profile
// (declared in YAML or JSON, see ParseDocument) says which names, key types,
// lifetimes and usages a certificate may have; Compile turns it into an
// immutable *Compiled whose Evaluate checks one request. Everything here is a
// pure function: no I/O, no clock, no global mutable state.
//
// # Name matching
//
// Names are compared lowercased. Requested DNS names must be plain LDH
// hostnames (labels of 1-63 letters, digits and inner hyphens, 253 bytes at
// most, no trailing dot, a top-level label that is not all digits, so that no
// IP address can pass as a DNS name). IDNA names are accepted in their A-label
// ("xn--") form only.
//
// A DNS pattern is a list of labels:
//
//   - a leftmost label that is exactly "*" matches ONE OR MORE labels:
//     "*.test" allows "bar.test" and "www.bar.test" but not "test";
//   - a "*" inside a label ("web-*.prod.internal"), or a "*" label in any other
//     position ("api.*.internal"), matches characters within exactly one label;
//   - any other label matches itself only.
//
// The team chose the subdomain-at-any-depth meaning of a leading "*" on
// purpose: a profile usually delegates a whole zone. The rightmost label of a
// pattern may not contain "*", so no pattern can allow every domain.
//
// A requested wildcard name such as "*.prod.internal" is allowed only when the
// identical string is listed in the profile's dns patterns: being allowed to
// name hosts of a zone is not being allowed a certificate for all of them.
//
// IP addresses must lie in one of the profile's CIDRs (a bare address is a
// single-address prefix); IPv4-mapped IPv6 addresses are compared as IPv4.
//
// URI patterns are "scheme://host/path": scheme and host (with any port) must
// be equal, ignoring case; in the path, "*" matches characters within one
// segment, and a final "/*" segment matches one or more segments. Requested
// URIs with user info, a query or a fragment are refused, as are paths with
// empty, "." or ".." segments, percent-encoding or "*", so that what is
// matched is exactly what is encoded in the certificate.
//
// Email patterns are "local@domain" or "*@domain"; the domain follows the DNS
// pattern rules above. Quoted or non-ASCII local parts are refused.
//
// # Defaults
//
// When a profile leaves them out: key_types allows every key type but
// ecdsa-p521; default_ttl is min(max_ttl, 720h) and max_ttl is default_ttl
// (both 720h when neither is set); ext_key_usage is [server_auth, client_auth];
// key_usage is digital_signature, plus key_encipherment for RSA keys; max_names
// is 100. A listed key_usage is narrowed per key type to what the key can do
// (no key_encipherment for ECDSA or Ed25519, no key_agreement for RSA or
// Ed25519). No profile can allow cert_sign, crl_sign, ocsp_signing or the "any"
// extended usage: a profile never mints a CA or an OCSP responder.
//
// # Rules
//
// A profile may carry a CEL expression (rule) that must evaluate to true. It
// sees two maps: request (common_name, dns, ips, uris, emails, key_type,
// ttl_seconds, owner, labels) and requester (name, role). Names in request are
// the normalised forms that were matched (lowercase DNS names and emails,
// canonical IP strings), so a rule cannot be dodged by changing case. The rule
// must type-check to bool when the profile is compiled and its evaluation is
// bounded by a cost limit; an evaluation error refuses the request.
package policy
