// Package keys holds the CA's private keys: how they are generated, imported,
// encrypted at rest under a key-encryption key (KEK), and loaded back. The CA
// only ever receives a crypto.Signer, so a hardware backend (PKCS#11, KMS) can
// replace FileBackend without the CA noticing.
//
// Nothing in this package logs, and no error carries key material: errors name
// files, refs and key types, never bytes of a key, KEK or passphrase.
package keys

import (
	"context"
	"crypto"
	"errors"
)

// Backend creates and loads signing keys. The CA only ever sees crypto.Signer.
// Implementations must be safe for concurrent use; internal/keys/keystest
// holds the conformance checks every implementation should pass.
type Backend interface {
	// Generate creates a new key of the given type and returns a reference that Load accepts later.
	Generate(ctx context.Context, keyType string) (ref string, signer crypto.Signer, err error)
	Load(ctx context.Context, ref string) (crypto.Signer, error)
	// Import stores an existing private key (e.g. an imported CA) and returns its ref.
	Import(ctx context.Context, key crypto.Signer) (ref string, err error)
}

// ErrKeyNotFound is wrapped by Load when no key exists under a well-formed
// ref, so callers can tell "missing" (a config error) from "cannot decrypt"
// (wrong KEK or tampering) without parsing messages.
var ErrKeyNotFound = errors.New("keys: key not found")

// ErrInvalidRef is wrapped when a ref is malformed (including any attempt at
// path traversal); such refs are refused before touching storage.
var ErrInvalidRef = errors.New("keys: invalid key ref")
