package ra_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/ra"
)

// TestApplyProfileLintsItsShape: a profile whose certificates would all fail
// lint is refused when applied (rule lint), and nothing is stored; the same
// profile with a valid EKU set is accepted.
func TestApplyProfileLintsItsShape(t *testing.T) {
	e := newEnv(t)
	before, _ := e.st.ListProfiles(e.ctx)
	bad := mustDoc(t, `profiles:
  - name: mixed
    key_types: [ecdsa-p256, rsa-2048]
    dns: ["*.test"]
    ext_key_usage: [server_auth, code_signing]
`)
	_, err := e.ra.ApplyProfiles(e.ctx, ra.Caller{}, bad)
	var fe *fail.Error
	if !errors.As(err, &fe) || fe.Kind != fail.Malformed || fe.Rule != "lint" || !strings.Contains(err.Error(), "mixed") {
		t.Fatalf("applying a profile that cannot issue: %v, want a malformed/lint refusal naming it", err)
	}
	if after, _ := e.st.ListProfiles(e.ctx); len(after) != len(before) {
		t.Fatalf("%d profiles after the refusal, want %d", len(after), len(before))
	}
	good := mustDoc(t, `profiles:
  - name: mixed
    key_types: [ecdsa-p256, rsa-2048, ed25519]
    dns: ["*.test"]
    key_usage: [digital_signature]     # RSA's default adds keyEncipherment, which lint finds inconsistent with codeSigning
    ext_key_usage: [code_signing]
`)
	if _, err := e.ra.ApplyProfiles(e.ctx, ra.Caller{}, good); err != nil {
		t.Fatalf("applying a lint-clean code-signing profile: %v", err)
	}
}
