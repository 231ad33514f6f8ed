package keys_test

import (
	"crypto/rand"
	"path/filepath"
	"testing"

	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/keys/keystest"
)

// The file backend must pass the same suite any future backend will.
func TestFileBackendConformance(t *testing.T) {
	raw := make([]byte, keys.KEKSize)
	rand.Read(raw)
	kek, err := keys.KEKFromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.NewFileBackend(filepath.Join(t.TempDir(), "keys"), kek)
	if err != nil {
		t.Fatal(err)
	}
	keystest.Run(t, b)
}
