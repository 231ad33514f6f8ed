// Package keystest holds the conformance checks every keys.Backend must pass,
// so FileBackend and any future backend (PKCS#11, cloud KMS) are held to the
// same contract. Call Run from the backend's own tests with a fresh, empty
// backend.
package keystest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
)

// Run checks b against the Backend contract:
//   - Generate returns a signer of the requested type and a ref that Load
//     turns back into the same key, for every keys.SupportedKeyTypes entry;
//   - unknown key types, malformed or unknown refs, and weak or non-software
//     keys on Import are errors;
//   - a canceled context is honoured;
//   - concurrent use is safe (run with -race).
func Run(t *testing.T, b keys.Backend) {
	t.Helper()
	ctx := context.Background()

	t.Run("GenerateLoad", func(t *testing.T) {
		for _, kt := range keys.SupportedKeyTypes() {
			t.Run(kt, func(t *testing.T) {
				t.Parallel() // RSA generation dominates; spread it over CPUs
				ref, signer, err := b.Generate(ctx, kt)
				if err != nil {
					t.Fatalf("Generate(%s): %v", kt, err)
				}
				if ref == "" || signer == nil {
					t.Fatalf("Generate(%s) returned ref %q, signer %v", kt, ref, signer)
				}
				if got, err := identity.KeyTypeOf(signer.Public()); err != nil || got != kt {
					t.Fatalf("Generate(%s) made a %s key (err %v)", kt, got, err)
				}
				CheckSigner(t, signer, signer.Public())
				loaded, err := b.Load(ctx, ref)
				if err != nil {
					t.Fatalf("Load(%s): %v", ref, err)
				}
				if !PublicKeysEqual(loaded.Public(), signer.Public()) {
					t.Fatalf("Load(%s) returned a different key", ref)
				}
				CheckSigner(t, loaded, signer.Public())
			})
		}
	})

	t.Run("UnknownKeyType", func(t *testing.T) {
		for _, kt := range []string{"", "rsa-1024", "ECDSA-P256", "ecdsa-p224", "x25519", "rsa"} {
			if ref, _, err := b.Generate(ctx, kt); err == nil {
				t.Errorf("Generate(%q) succeeded with ref %q", kt, ref)
			}
		}
	})

	t.Run("DistinctRefs", func(t *testing.T) {
		refs := map[string]crypto.PublicKey{}
		for range 3 {
			ref, s, err := b.Generate(ctx, identity.KeyECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := refs[ref]; dup {
				t.Fatalf("Generate reused ref %q", ref)
			}
			refs[ref] = s.Public()
		}
		for ref, pub := range refs {
			loaded, err := b.Load(ctx, ref)
			if err != nil {
				t.Fatalf("Load(%s): %v", ref, err)
			}
			if !PublicKeysEqual(loaded.Public(), pub) {
				t.Fatalf("Load(%s) returned another ref's key", ref)
			}
		}
	})

	t.Run("Import", func(t *testing.T) {
		for _, kt := range []string{identity.KeyECDSAP384, identity.KeyEd25519, identity.KeyRSA2048} {
			key, err := keys.GenerateKey(kt)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := b.Import(ctx, key)
			if err != nil {
				t.Fatalf("Import(%s): %v", kt, err)
			}
			loaded, err := b.Load(ctx, ref)
			if err != nil {
				t.Fatalf("Load(%s) of imported %s: %v", ref, kt, err)
			}
			if !PublicKeysEqual(loaded.Public(), key.Public()) {
				t.Fatalf("imported %s key did not round-trip", kt)
			}
			CheckSigner(t, loaded, key.Public())
		}
	})

	t.Run("ImportRejects", func(t *testing.T) {
		p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		good, err := keys.GenerateKey(identity.KeyECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		for name, k := range map[string]crypto.Signer{
			"nil":             nil,
			"opaque signer":   opaqueSigner{good},
			"P-224":           p224,
			"RSA-1024":        rsa1024,
			"typed nil (RSA)": (*rsa.PrivateKey)(nil),
		} {
			if ref, err := b.Import(ctx, k); err == nil {
				t.Errorf("Import(%s) succeeded with ref %q", name, ref)
			}
		}
	})

	t.Run("LoadUnknownRef", func(t *testing.T) {
		ref, _, err := b.Generate(ctx, identity.KeyEd25519)
		if err != nil {
			t.Fatal(err)
		}
		other := mutateLast(ref)
		_, err = b.Load(ctx, other)
		if err == nil {
			t.Fatalf("Load(%q) of a never-issued ref succeeded", other)
		}
		if !errors.Is(err, keys.ErrKeyNotFound) && !errors.Is(err, keys.ErrInvalidRef) {
			t.Errorf("Load(%q) = %v; want ErrKeyNotFound or ErrInvalidRef", other, err)
		}
	})

	t.Run("LoadMalformedRef", func(t *testing.T) {
		ref, _, err := b.Generate(ctx, identity.KeyEd25519)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{
			"", ".", "..", "../x", "k-zz", "/etc/passwd", "k-../../x",
			ref + "/../" + ref, "../" + ref, ref + "\x00", strings.ToUpper(ref),
			" " + ref, ref + "\n", "k-" + strings.Repeat("a", 4096),
		} {
			if _, err := b.Load(ctx, bad); err == nil {
				t.Errorf("Load(%q) succeeded", bad)
			}
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		ref, _, err := b.Generate(ctx, identity.KeyECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		key, err := keys.GenerateKey(identity.KeyECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, _, err := b.Generate(cctx, identity.KeyECDSAP256); !errors.Is(err, context.Canceled) {
			t.Errorf("Generate with canceled context: %v; want context.Canceled", err)
		}
		if _, err := b.Load(cctx, ref); !errors.Is(err, context.Canceled) {
			t.Errorf("Load with canceled context: %v; want context.Canceled", err)
		}
		if _, err := b.Import(cctx, key); !errors.Is(err, context.Canceled) {
			t.Errorf("Import with canceled context: %v; want context.Canceled", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 8 {
			wg.Go(func() {
				ref, s, err := b.Generate(ctx, identity.KeyECDSAP256)
				if err != nil {
					errs <- err
					return
				}
				loaded, err := b.Load(ctx, ref)
				if err != nil {
					errs <- err
					return
				}
				if !PublicKeysEqual(loaded.Public(), s.Public()) {
					errs <- errors.New("concurrent Load returned the wrong key")
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// CheckSigner signs a message with s and verifies the signature under pub,
// using the signature schemes a CA uses for s's key type.
func CheckSigner(t testing.TB, s crypto.Signer, pub crypto.PublicKey) {
	t.Helper()
	msg := []byte("sigil keystest message")
	digest := sha256.Sum256(msg)
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("ECDSA sign: %v", err)
		}
		if !ecdsa.VerifyASN1(p, digest[:], sig) {
			t.Fatal("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("RSA PKCS#1 v1.5 sign: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(p, crypto.SHA256, digest[:], sig); err != nil {
			t.Fatalf("RSA PKCS#1 v1.5 signature does not verify: %v", err)
		}
		pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		sig, err = s.Sign(rand.Reader, digest[:], pss)
		if err != nil {
			t.Fatalf("RSA-PSS sign: %v", err)
		}
		if err := rsa.VerifyPSS(p, crypto.SHA256, digest[:], sig, pss); err != nil {
			t.Fatalf("RSA-PSS signature does not verify: %v", err)
		}
	case ed25519.PublicKey:
		sig, err := s.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			t.Fatalf("Ed25519 sign: %v", err)
		}
		if !ed25519.Verify(p, msg, sig) {
			t.Fatal("Ed25519 signature does not verify")
		}
	default:
		t.Fatalf("unexpected public key type %T", pub)
	}
}

// PublicKeysEqual compares public keys with their Equal methods.
func PublicKeysEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}

// opaqueSigner hides the concrete key type, like an HSM handle would: a
// backend cannot export it and must refuse to import it.
type opaqueSigner struct{ s crypto.Signer }

func (o opaqueSigner) Public() crypto.PublicKey { return o.s.Public() }
func (o opaqueSigner) Sign(r io.Reader, d []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.s.Sign(r, d, opts)
}

// mutateLast changes a ref's last character to another of the same class,
// giving a ref of the same shape that was never issued.
func mutateLast(ref string) string {
	if ref == "" {
		return "x"
	}
	last := ref[len(ref)-1]
	var repl byte = '0'
	if last == '0' {
		repl = '1'
	} else if last >= 'a' && last <= 'z' && last != 'a' {
		repl = 'a'
	} else if last == 'a' {
		repl = 'b'
	}
	return ref[:len(ref)-1] + string(repl)
}
