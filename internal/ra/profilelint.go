package ra

import (
	"crypto"
	"errors"
	"fmt"
	"sync"

	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/policy"
)

// sampleKeyTypes stand for the key families whose usages differ: all RSA
// sizes get the same key usage, as do the ECDSA curves.
var sampleKeyTypes = []struct{ family, sample string }{
	{"rsa-", identity.KeyRSA2048},
	{"ecdsa-", identity.KeyECDSAP256},
	{"ed25519", identity.KeyEd25519},
}

// sampleKeys are throwaway public keys for profile checks, made once per
// process: RSA key generation is slow.
var sampleKeys sync.Map // key type -> crypto.PublicKey

func samplePublicKey(keyType string) (crypto.PublicKey, error) {
	if k, ok := sampleKeys.Load(keyType); ok {
		return k.(crypto.PublicKey), nil
	}
	k, err := keys.GenerateKey(keyType)
	if err != nil {
		return nil, err
	}
	v, _ := sampleKeys.LoadOrStore(keyType, k.Public())
	return v.(crypto.PublicKey), nil
}

// lintProfile builds and lints (never signs with a real key) a sample
// certificate of each shape a profile can issue, so that a profile whose
// certificates would all fail lint (e.g. serverAuth with codeSigning) is
// refused when it is applied, not at every issuance.
func (r *RA) lintProfile(c *policy.Compiled) error {
	p := c.Profile()
	for _, fam := range sampleKeyTypes {
		var allowed string
		for _, kt := range p.KeyTypes {
			if len(kt) >= len(fam.family) && kt[:len(fam.family)] == fam.family {
				allowed = kt
				break
			}
		}
		if allowed == "" {
			continue
		}
		ku, eku, ok := c.Usages(allowed)
		if !ok {
			continue
		}
		pub, err := samplePublicKey(fam.sample)
		if err != nil {
			return fail.Wrap(fail.Internal, err)
		}
		_, err = r.ca.Prepare(p.Issuer, &ca.LeafRequest{
			PublicKey: pub, CommonName: "sample.invalid", DNSNames: []string{"sample.invalid"},
			NotBefore: r.now(), TTL: c.DefaultTTL(), KeyUsage: ku, ExtKeyUsage: eku,
		})
		if errors.Is(err, ca.ErrLint) {
			return &fail.Error{Kind: fail.Malformed, Rule: "lint", Reason: err,
				Msg: fmt.Sprintf("profile %q: its %s certificates would fail lint: %v", p.Name, allowed, err)}
		}
		if err != nil {
			return fail.Wrap(fail.Malformed, fmt.Errorf("profile %q: %w", p.Name, err))
		}
	}
	return nil
}
