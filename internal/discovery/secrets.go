package discovery

import (
	"bytes"
	"regexp"
	"strconv"

	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/store"
)

// SecretRule is a well-known secret format. Rules are high precision on
// purpose: each matches a vendor-specific prefix and length, never a generic
// "password=" (which in configuration trees is mostly noise). Literal is a
// set of substrings one of which every match contains, checked before the expression runs so a
// file without it costs one bytes.Contains per rule.
type SecretRule struct {
	ID       string
	Literals []string       // at least one occurs in every match
	Re       *regexp.Regexp // the secret is submatch 1
}

// SecretRules are the patterns ScanFS applies (docs/discovery.md explains the
// choice over a full detector such as gitleaks).
var SecretRules = []SecretRule{
	{"aws-access-key-id", []string{"AKIA", "ASIA", "ABIA", "ACCA"}, regexp.MustCompile(`\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b`)},
	{"github-token", []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}, regexp.MustCompile(`\b(gh[pousr]_[A-Za-z0-9]{36})\b`)},
	{"github-fine-grained-pat", []string{"github_pat_"}, regexp.MustCompile(`\b(github_pat_[A-Za-z0-9_]{82})\b`)},
	{"gitlab-pat", []string{"glpat-"}, regexp.MustCompile(`\b(glpat-[A-Za-z0-9_\-]{20})\b`)},
	{"slack-token", []string{"xox"}, regexp.MustCompile(`\b(xox[baprs]-[0-9A-Za-z\-]{10,72})\b`)},
	{"slack-webhook", []string{"hooks.slack.com"}, regexp.MustCompile(`(https://hooks\.slack\.com/services/T[A-Z0-9]{8,12}/B[A-Z0-9]{8,12}/[A-Za-z0-9]{24})`)},
	{"stripe-secret-key", []string{"k_live_"}, regexp.MustCompile(`\b([sr]k_live_[0-9A-Za-z]{24,99})\b`)},
	{"google-api-key", []string{"AIza"}, regexp.MustCompile(`\b(AIza[0-9A-Za-z_\-]{35})\b`)},
	{"npm-token", []string{"npm_"}, regexp.MustCompile(`\b(npm_[A-Za-z0-9]{36})\b`)},
	{"sigil-api-token", []string{"sgl_"}, regexp.MustCompile(`\b(sgl_[0-9a-f]{16}_[A-Za-z0-9_\-]{43})\b`)},
}

// secrets records each distinct secret once per file, by the SHA-256 of its
// value and the rule that matched; the value itself is dropped here.
func (p *fileParser) secrets(data []byte) {
	seen := map[string]bool{}
	for _, r := range SecretRules {
		if !containsAny(data, r.Literals) {
			continue
		}
		for _, m := range r.Re.FindAllSubmatchIndex(data, 1000) {
			secret := data[m[2]:m[3]]
			fp := inventory.SHA256Hex(secret)
			if seen[fp] {
				continue
			}
			seen[fp] = true
			line := 1 + bytes.Count(data[:m[2]], []byte("\n"))
			p.add(inventory.Identity{Fingerprint: fp, Kind: store.KindSecret, Source: store.SourceDiscovered, RuleID: r.ID},
				"secret: "+r.ID+" at line "+strconv.Itoa(line))
		}
	}
}

func containsAny(data []byte, lits []string) bool {
	for _, l := range lits {
		if bytes.Contains(data, []byte(l)) {
			return true
		}
	}
	return false
}
