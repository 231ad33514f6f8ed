// Package lint checks every certificate with zlint before Sigil signs it with
// a real CA key, and is fast enough to sit on the issuance hot path.
//
// # Usage
//
// Build one [Linter] with [New] at start-up and share it: it is safe for
// concurrent use. [Linter.Lint] takes a DER certificate (in Sigil, the
// to-be-signed certificate wrapped with a placeholder signature by
// internal/ca, so that the real CA key never signs anything that fails lint;
// no lint of the set reads the signature value), parses it with
// github.com/zmap/zcrypto/x509 and runs the lint set. It returns nil, an
// [*Error] naming every lint that reported Error or Fatal, or a plain error if
// the DER does not parse. Any non-nil result means "do not sign". Warnings and
// notices never fail a certificate.
//
// The same Linter is used on leaf certificates and on Sigil's own root and
// intermediate certificates when they are created: each zlint lint decides by
// itself (CheckApplies) whether it applies to a CA or subscriber certificate.
//
// # Lint set
//
// Included sources: zlint's RFC5280 and CABF_BR, plus the three tiny RFC
// sources that check key-usage/key-type consistency and IDN normalisation
// (RFC3279, RFC8813, RFC5891: five lints, under 1 µs together). About 200
// lints in all; [Linter.Names] lists them. As in zlint itself, CA/B BR lints
// only run on certificates zlint considers server-auth capable (serverAuth or
// anyEKU or no EKU at all, which includes Sigil's roots and intermediates);
// RFC lints run on every certificate, client-only ones included.
//
// Only lints whose name starts with "e_" are run. "w_" and "n_" lints may
// only report Warn/Notice (zlint's naming contract), which Lint ignores, so
// running them would be pure cost. (A handful of them can also return
// Fatal/Error, but only for encodings that zcrypto's parser or an e_ lint
// already rejects.)
//
// Not included: Community (its e_cert_issued_by_compromised_emudhra_ca alone
// costs ~4.3 ms per certificate and e_ecdsa_small_private_key ~90 µs, for
// checks about third-party issuers and keys that Sigil's own key-type checks
// cover), the root-program policies (Mozilla, Apple, Chrome), EV, S/MIME BR,
// code-signing BR, ETSI and the CT lints (RFC 6962): none of them describe
// what a private CA issues.
//
// Excluded by name ([Excluded] gives the reason for each), because they are
// wrong for a private CA and fire on legitimate private certificates:
//
//   - Public-suffix-list, IANA TLD and "reserved IP" checks: names like
//     api.prod.internal, bar.test, localhost, redis or app, and addresses like
//     127.0.0.1, 10.0.0.0/8 and ::1 are the normal case here.
//   - The CA/B SAN-type restriction for URI and rfc822Name SANs (SPIFFE IDs
//     and e-mail addresses are issued here). RFC 5280 syntax checks on them
//     stay.
//   - Certificate-policy presence: the CA/B reserved policy OIDs assert
//     Web-PKI validation, which a private CA must not claim.
//   - CA/B subject-attribute rules that constrain *validated* organisation and
//     address data (e.g. "countryName MUST appear if O is present", no OU, the
//     CA/B attribute order that Go's encoder does not follow); subject
//     attributes are Sigil profile policy.
//   - Validity-period caps: maximum lifetime is Sigil profile policy.
//   - The CA/B algorithm allow-lists that reject Ed25519 keys and signatures
//     (RFC 8410), which Sigil supports.
//   - e_cert_ext_invalid_der, for cost: the most expensive lint of the set
//     (~6-8 µs), and it cannot fire on anything crypto/x509 encodes.
//
// Kept on purpose although Web-PKI flavoured: AIA OCSP/caIssuers and CRL
// distribution point presence and "HTTP only" rules (so every leaf needs an
// OCSP URL and every intermediate a CRL URL), the EKU rules for server
// certificates (serverAuth may only be combined with clientAuth; a leaf
// without EKU fails), CN must be one of the SANs and at most 64 characters,
// URI SAN hosts must be dotted FQDNs or IPs (so spiffe://prod/... fails),
// and the DNS syntax rules (underscores, empty labels, wildcard placement,
// label length). No included lint consults the public suffix list, so
// DNS names are never looked up in it.
//
// # Cost
//
// Measured on the 2-core development machine (Intel Xeon, Go 1.26.8, one
// core, GC included, best of several runs on a sometimes busy machine) over a
// Sigil-shaped ECDSA P-256 leaf:
//
//	all of zlint (450 lints), zlint.LintCertificateEx, with parse       ~4.5 ms
//	RFC5280 + CABF_BR (300 lints), zlint.LintCertificateEx              ~229 µs
//	this set run zlint's way (BenchmarkZlintExecution)              ~150-156 µs
//	Lint (BenchmarkLint; ~1340 allocs, ~47 KB)                      ~110-120 µs
//	  of which zcrypto ParseCertificate (BenchmarkParse)              ~36-40 µs
//
// The ~75-80 µs left for the lints is mostly zlint's own: its GetExtFromCert,
// called by most CheckApplies, stringifies the extension OID with repeated
// concatenation (~20 µs per certificate); the URI-host FQDN regexp of
// e_ext_san_uri_host_not_fqdn_or_ip (~5-9 µs per URI SAN); and the GC work
// for ~30 KB of garbage. Going lower would need changes to zlint or zcrypto
// themselves. Every remaining lint costs under ~2 µs; running
// "SIGIL_LINT_PROFILE=1 go test -run ProfileLintCost -v" lists them.
//
// The speed comes from:
//   - filtering zlint's registry once, in New, and skipping w_/n_ lints;
//   - constructing and configuring every lint once, in New, instead of once
//     per lint per certificate as zlint does (e_dnsname_bad_character_in_label
//     compiles a regular expression in its constructor: ~10 µs per
//     certificate);
//   - evaluating zlint's CA/B server-auth pre-filter once per certificate
//     rather than once per lint, and the cheap effective-date check before
//     CheckApplies;
//   - not building zlint's per-certificate ResultSet map.
//
// Lint instances are shared between goroutines only if they are stateless
// (no fields) or on an audited list of lints whose fields are set at
// construction/configuration and only read afterwards; any other lint (for
// instance one added by a future zlint upgrade) is constructed per call, as
// zlint does, and a test fails to flag it for audit. Nothing is cached across
// certificates: every call parses the DER afresh.
package lint

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/zmap/zcrypto/x509"
	zl "github.com/zmap/zlint/v3/lint"
	// Register only the lint packages this package can use: lints/rfc holds
	// the RFC 5280/3279/5891/8813 lints, lints/cabf_br the CA/B BR ones.
	_ "github.com/zmap/zlint/v3/lints/cabf_br"
	_ "github.com/zmap/zlint/v3/lints/rfc"
	"github.com/zmap/zlint/v3/util"
)

// sources are the zlint lint sources the Linter draws from.
var sources = zl.SourceList{
	zl.RFC5280,
	zl.RFC3279,
	zl.RFC5891,
	zl.RFC8813,
	zl.CABFBaselineRequirements,
}

// excluded maps each lint excluded by name to the reason it is wrong for
// Sigil's private CA. New fails if zlint no longer knows one of these names
// (zlint's Filter rejects unknown names), so a zlint upgrade that renames a
// lint cannot silently re-enable it under its new name unnoticed by tests.
var excluded = map[string]string{
	// Public suffix list / IANA TLD / reserved-address checks.
	"e_dnsname_not_valid_tld":             "requires an IANA TLD; internal names (api.prod.internal, bar.test, localhost) have none",
	"e_dnsname_contains_bare_iana_suffix": "rejects single-label names that happen to be IANA TLDs (app, dev, cloud), which are ordinary short host names on a private network",
	"e_ext_san_contains_reserved_ip":      "rejects loopback, RFC 1918 and ULA addresses in the SAN, which are the normal case for a private CA",
	"e_subject_contains_reserved_ip":      "same as e_ext_san_contains_reserved_ip, for an IP address in the subject CN",
	"e_ext_nc_intersects_reserved_ip":     "rejects iPAddress name constraints on private ranges, which is exactly how a private intermediate is constrained (e.g. to 10.0.0.0/8)",
	"e_dnsname_hyphen_in_sld":             "finds the 'SLD' through the public suffix list, which is meaningless for private names, and returns NA for the whole certificate if any name (e.g. localhost) is not PSL-parseable",
	"e_rfc_dnsname_hyphen_in_sld":         "as e_dnsname_hyphen_in_sld (public suffix list)",
	"e_dnsname_underscore_in_sld":         "as e_dnsname_hyphen_in_sld (public suffix list); underscores are still rejected by e_underscore_not_permissible_in_dnsname",
	"e_rfc_dnsname_underscore_in_sld":     "as e_dnsname_hyphen_in_sld (public suffix list); underscores are still rejected by e_underscore_not_permissible_in_dnsname",

	// CA/B SAN name-type restriction (DNS and IP only).
	"e_ext_san_uniform_resource_identifier_present": "Sigil issues URI SANs (SPIFFE IDs such as spiffe://prod.internal/web); RFC 5280 URI syntax is still checked by the e_ext_san_uri_* lints",
	"e_ext_san_rfc822_name_present":                 "Sigil issues e-mail SANs; their syntax is still checked by e_ext_san_rfc822_format_invalid",

	// Certificate policies: the CA/B reserved OIDs assert Web-PKI validation.
	"e_sub_cert_certificate_policies_missing":               "requires a certificatePolicies extension; a private CA must not assert the CA/B reserved policy OIDs and needs no policy of its own",
	"e_sub_cert_cert_policy_empty":                          "requires a CA/B reserved policy OID in leaves, which a private CA must not assert",
	"e_sub_ca_certificate_policies_missing":                 "requires certificatePolicies in intermediates; same reason as e_sub_cert_certificate_policies_missing",
	"e_invalid_ca_certificate_policies":                     "requires CA/B reserved policy OIDs in TLS intermediates, which a private CA must not assert",
	"e_sub_cert_given_name_surname_contains_correct_policy": "requires the CA/B individual-validated policy OID when givenName/surname are present",

	// CA/B subject-attribute rules for validated organisation/address data.
	"e_ca_country_name_missing":                                            "CA/B requires countryName in CA subjects; a private CA's name is its own choice (RFC 5280 requires no country), an invalid country is still caught by e_ca_country_name_invalid",
	"e_ca_organization_name_missing":                                       "CA/B requires organizationName in CA subjects; a private CA's name is its own choice",
	"e_subj_orgunit_in_ca_cert":                                            "CA/B forbids OU in CA subjects; internal CAs are commonly named after a team or unit",
	"e_organizational_unit_name_prohibited":                                "CA/B forbids OU in leaves (unvalidated data); private PKIs use OU for grouping and mTLS authorisation",
	"e_subject_contains_organizational_unit_name_and_no_organization_name": "CA/B rule about validated organisation data; subject attributes are Sigil profile policy",
	"e_sub_cert_country_name_must_appear":                                  "CA/B OV/IV rule (C required when O/givenName/surname present), fires on ordinary private subjects such as O=Acme, CN=svc.prod.internal",
	"e_sub_cert_province_must_appear":                                      "CA/B OV/IV address rule; subject attributes are Sigil profile policy",
	"e_sub_cert_locality_name_must_appear":                                 "CA/B OV/IV address rule; subject attributes are Sigil profile policy",
	"e_sub_cert_province_must_not_appear":                                  "CA/B DV rule against unvalidated address data; subject attributes are Sigil profile policy",
	"e_sub_cert_locality_name_must_not_appear":                             "CA/B DV rule against unvalidated address data; subject attributes are Sigil profile policy",
	"e_sub_cert_postal_code_must_not_appear":                               "CA/B DV rule against unvalidated address data; subject attributes are Sigil profile policy",
	"e_sub_cert_street_address_should_not_exist":                           "CA/B DV rule against unvalidated address data; subject attributes are Sigil profile policy",
	"e_invalid_subject_rdn_order":                                          "CA/B attribute order (postalCode before streetAddress) that RFC 5280 does not impose; Go's crypto/x509 encodes streetAddress first, so it fires on every subject that has both",

	// Validity-period caps are Sigil profile policy.
	"e_server_cert_valid_time_longer_than_200_days": "maximum lifetime is Sigil profile policy, not a lint (fires today on any server certificate over 200 days)",
	"e_server_cert_valid_time_longer_than_100_days": "maximum lifetime is Sigil profile policy, not a lint (CA/B cap from 2027)",
	"e_server_cert_valid_time_longer_than_47_days":  "maximum lifetime is Sigil profile policy, not a lint (CA/B cap from 2029)",
	"e_sub_cert_valid_time_longer_than_825_days":    "maximum lifetime is Sigil profile policy, not a lint (historical CA/B cap)",
	"e_sub_cert_valid_time_longer_than_39_months":   "maximum lifetime is Sigil profile policy, not a lint (historical CA/B cap)",

	// CA/B algorithm allow-lists that predate Ed25519.
	"e_algorithm_identifier_improper_encoding": "CA/B allow-list of RSA/ECDSA SubjectPublicKeyInfo encodings; rejects Ed25519 (RFC 8410) subject keys, which Sigil issues. RSA NULL parameters are still checked by e_spki_rsa_encryption_parameter_not_null",
	"e_signature_algorithm_not_supported":      "CA/B allow-list of RSA/ECDSA signature algorithms; rejects certificates signed by an Ed25519 CA key. SHA-1 is still rejected by e_sub_cert_or_sub_ca_using_sha1",

	// Expensive and irrelevant to certificates encoded by crypto/x509.
	"e_cert_ext_invalid_der": "the most expensive lint of the set (~6-8 µs: it re-decodes the whole certificate with reflection) and cannot fire on certificates encoded as crypto/x509 does (encoding/asn1 always omits an optional BOOLEAN that is FALSE); internal/ca's own TBS encoder is held to crypto/x509's bytes by a differential test, and TestExcludedDERLintHolds runs this lint on its output",
}

// sharedStateful lists lints whose instances have fields but were audited to
// be safe to share between goroutines: the fields are set by the constructor
// or by zlint's configuration (done once in New) and only read by
// CheckApplies/Execute. Everything else with fields is built per call.
var sharedStateful = map[string]bool{
	"e_dnsname_bad_character_in_label":   true, // compiled *regexp.Regexp (safe for concurrent use)
	"e_ca_common_name_missing":           true, // *CABFBaselineRequirementsConfig, read-only
	"e_ca_country_name_invalid":          true, // *CABFBaselineRequirementsConfig, read-only
	"e_ca_multiple_reserved_policy_oids": true, // CrossCert bool, read-only
}

// Finding is one lint that failed a certificate.
type Finding struct {
	Name    string // zlint lint name, e.g. "e_dnsname_empty_label"
	Status  string // "error" or "fatal" (and "warn" from Findings)
	Details string // zlint's details, often empty
}

// Error is returned by Lint when at least one lint reports Error or Fatal.
type Error struct {
	Lints []Finding
}

// Error lists "lint_name: description" for each failing lint, with zlint's
// details in parentheses when it gave any.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("certificate failed lint: ")
	for i, f := range e.Lints {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Name)
		b.WriteString(": ")
		desc := ""
		if cl := zl.GlobalRegistry().CertificateLints().ByName(f.Name); cl != nil {
			desc = cl.Description
		}
		switch {
		case desc != "" && f.Details != "" && f.Details != desc:
			b.WriteString(desc + " (" + f.Details + ")")
		case desc != "":
			b.WriteString(desc)
		case f.Details != "":
			b.WriteString(f.Details)
		default:
			b.WriteString(f.Status)
		}
	}
	return b.String()
}

// Linter runs Sigil's zlint lint set. It is safe for concurrent use.
type Linter struct {
	lints []compiledLint // sorted by name
	names []string
}

type compiledLint struct {
	meta *zl.CertificateLint
	// serverAuthOnly reproduces zlint's framework filter: CA/B BR lints run
	// only on server-auth capable certificates unless the lint overrides it.
	serverAuthOnly bool
	// shared is the instance reused across calls, or nil if the lint must be
	// constructed (and configured) per call.
	shared zl.CertificateLintInterface
	config zl.Configuration
}

// New builds the filtered registry and the lint instances. Call it once.
func New() (*Linter, error) { return newLinter(false) }

// NewWithWarnings is New plus the "w_" lints of the same sources, for
// assessing certificates that already exist (discovered, or issued here):
// [Linter.Findings] reports their warnings too. It costs more per
// certificate, so issuance uses New. Lint on it still fails only on
// Error/Fatal.
func NewWithWarnings() (*Linter, error) { return newLinter(true) }

// QuietWarnings are warn lints NewWithWarnings leaves out because they fire
// on nearly every certificate a private CA issues, by design; reporting them
// would bury the warnings that matter.
var QuietWarnings = map[string]string{
	"w_sub_cert_aia_contains_internal_names": "AIA URLs that name internal hosts are the normal case for a private CA",
	"w_subject_common_name_included":         "whether the subject carries a common name is profile policy; many clients still read it",
}

func newLinter(warnings bool) (*Linter, error) {
	exclude := excludedNames()
	if warnings {
		for n := range QuietWarnings {
			exclude = append(exclude, n)
		}
	}
	reg, err := zl.GlobalRegistry().Filter(zl.FilterOptions{
		IncludeSources: sources,
		ExcludeNames:   exclude,
	})
	if err != nil {
		return nil, fmt.Errorf("lint: filtering zlint registry: %w", err)
	}
	cfg := reg.GetConfiguration()
	l := &Linter{}
	for _, cl := range reg.CertificateLints().Lints() {
		if !strings.HasPrefix(cl.Name, "e_") && !(warnings && strings.HasPrefix(cl.Name, "w_")) {
			continue // w_/n_ lints cannot fail a certificate
		}
		c := compiledLint{
			meta:           cl,
			serverAuthOnly: cl.Source == zl.CABFBaselineRequirements && !cl.OverrideFrameworkFilter,
			config:         cfg,
		}
		inst := cl.Lint()
		if isStateless(inst) || sharedStateful[cl.Name] {
			if err := cfg.MaybeConfigure(inst, cl.Name); err != nil {
				return nil, fmt.Errorf("lint: configuring %s: %w", cl.Name, err)
			}
			c.shared = inst
		}
		l.lints = append(l.lints, c)
	}
	if len(l.lints) == 0 {
		return nil, fmt.Errorf("lint: no zlint lints registered for %v", sources)
	}
	sort.Slice(l.lints, func(i, j int) bool { return l.lints[i].meta.Name < l.lints[j].meta.Name })
	l.names = make([]string, len(l.lints))
	for i := range l.lints {
		l.names[i] = l.lints[i].meta.Name
	}
	return l, nil
}

// Excluded returns a copy of the lints excluded by name, each with the reason
// it is wrong for Sigil's private CA.
func Excluded() map[string]string {
	m := make(map[string]string, len(excluded))
	for k, v := range excluded {
		m[k] = v
	}
	return m
}

func excludedNames() []string {
	names := make([]string, 0, len(excluded))
	for n := range excluded {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// isStateless reports whether a lint instance has no fields, so that sharing
// it between goroutines cannot race.
func isStateless(inst zl.CertificateLintInterface) bool {
	t := reflect.TypeOf(inst)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && t.NumField() == 0
}

// Names returns the names of the lints in the set, sorted.
func (l *Linter) Names() []string {
	return append([]string(nil), l.names...)
}

// Lint parses der with zcrypto and runs the lint set on it. It returns nil if
// no lint reports Error or Fatal, an *Error listing those that do, or a plain
// error if der is not a parseable certificate.
func (l *Linter) Lint(der []byte) error {
	fs, err := l.Findings(der)
	if err != nil {
		return err
	}
	var failed []Finding
	for _, f := range fs {
		if f.Status != warnStatus {
			failed = append(failed, f)
		}
	}
	if failed != nil {
		return &Error{Lints: failed}
	}
	return nil
}

var warnStatus = zl.Warn.String()

// Findings parses der with zcrypto and returns every lint of the set that
// reported Error, Fatal or (with NewWithWarnings) Warn, in lint-name order,
// or an error if der is not a parseable certificate.
func (l *Linter) Findings(der []byte) ([]Finding, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("lint: parsing certificate: %w", err)
	}
	serverAuth := util.IsServerAuthCert(cert)
	var out []Finding
	for i := range l.lints {
		c := &l.lints[i]
		if c.serverAuthOnly && !serverAuth {
			continue
		}
		if f, bad := c.run(cert); bad {
			out = append(out, f)
		}
	}
	return out, nil
}

// run mirrors zlint's CertificateLint.Execute (configure, CheckApplies,
// CheckEffective, Execute, panic => Fatal) without re-constructing shared
// instances.
func (c *compiledLint) run(cert *x509.Certificate) (f Finding, failed bool) {
	defer func() {
		if r := recover(); r != nil {
			f = Finding{Name: c.meta.Name, Status: zl.Fatal.String(), Details: fmt.Sprintf("lint panicked: %v", r)}
			failed = true
		}
	}()
	if !c.meta.CheckEffective(cert) {
		return Finding{}, false // NE
	}
	impl := c.shared
	if impl == nil {
		impl = c.meta.Lint()
		if err := c.config.MaybeConfigure(impl, c.meta.Name); err != nil {
			return Finding{Name: c.meta.Name, Status: zl.Fatal.String(), Details: err.Error()}, true
		}
	}
	if !impl.CheckApplies(cert) {
		return Finding{}, false // NA
	}
	res := impl.Execute(cert)
	if res == nil {
		return Finding{Name: c.meta.Name, Status: zl.Fatal.String(), Details: "lint returned no result"}, true
	}
	if res.Status == zl.Error || res.Status == zl.Fatal || res.Status == zl.Warn {
		return Finding{Name: c.meta.Name, Status: res.Status.String(), Details: res.Details}, true
	}
	return Finding{}, false
}
