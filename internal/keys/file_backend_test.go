package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func newTestBackend(t *testing.T) (*FileBackend, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys") // missing: NewFileBackend creates it
	b, err := NewFileBackend(dir, testKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

func TestNewFileBackend(t *testing.T) {
	_, dir := newTestBackend(t)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o700 {
		t.Fatalf("created directory mode %#o; want 0700", fi.Mode().Perm())
	}
	if _, err := NewFileBackend(dir, nil); err == nil {
		t.Fatal("nil KEK accepted")
	}
	if _, err := NewFileBackend("", testKEK(t)); err == nil {
		t.Fatal("empty dir accepted")
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	if _, err := NewFileBackend(file, testKEK(t)); err == nil {
		t.Fatal("regular file accepted as directory")
	}
}

// TestFileBackendAtRest checks, per key type, what the conformance suite
// cannot: the on-disk file, and the bindings to KEK and ref.
func TestFileBackendAtRest(t *testing.T) {
	ctx := context.Background()
	b, dir := newTestBackend(t)
	otherKEK, err := NewFileBackend(dir, testKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, kt := range SupportedKeyTypes() {
		t.Run(kt, func(t *testing.T) {
			t.Parallel()
			ref, signer, err := b.Generate(ctx, kt)
			if err != nil {
				t.Fatal(err)
			}
			if !ValidRef(ref) || len(ref) != 2+2*refRandBytes {
				t.Fatalf("ref %q has the wrong shape", ref)
			}
			path := filepath.Join(dir, ref+".key.enc")
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode %#o; want 0600", fi.Mode().Perm())
			}
			onDisk, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.MarshalPKCS8PrivateKey(signer)
			if err != nil {
				t.Fatal(err)
			}
			// Neither the whole DER nor any 32-byte window of it (covers the
			// raw private scalar/seed) may appear in the file.
			for i := 0; i+32 <= len(der); i += 16 {
				if bytes.Contains(onDisk, der[i:i+32]) {
					t.Fatalf("plaintext key bytes at DER offset %d found in file", i)
				}
			}
			if bytes.Contains(onDisk, []byte("PRIVATE KEY")) {
				t.Fatal("file holds a PEM private key")
			}

			loaded, err := b.Load(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if !loaded.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
				t.Fatal("loaded key differs")
			}

			if _, err := otherKEK.Load(ctx, ref); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Load with another KEK: err = %v; want ErrDecrypt", err)
			}

			// Moving a key file under another ref must not make it load
			// there: the ref is bound in as additional data.
			moved := "k-" + strings.Repeat("0", 15) + ref[len(ref)-1:]
			if moved == ref {
				moved = "k-" + strings.Repeat("1", 16)
			}
			if err := os.Rename(path, filepath.Join(dir, moved+".key.enc")); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Load(ctx, moved); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Load of a renamed file: err = %v; want ErrDecrypt", err)
			}
			if _, err := b.Load(ctx, ref); !errors.Is(err, ErrKeyNotFound) || !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("Load after the file moved: err = %v; want ErrKeyNotFound", err)
			}
		})
	}
}

func TestFileBackendRefValidation(t *testing.T) {
	ctx := context.Background()
	b, dir := newTestBackend(t)
	// A sealed file placed outside the key directory must be unreachable.
	outside := filepath.Join(filepath.Dir(dir), "x.key.enc")
	os.WriteFile(outside, []byte("not a key"), 0o600)
	for _, ref := range []string{
		"../x", "k-zz", "", "k-", "k-0123456789abcde", "k-" + strings.Repeat("a", 65),
		"k-0123456789ABCDEF", "k-0123456789abcdef/../../x", "k-0123456789abcdef\n", "x-0123456789abcdef",
	} {
		if _, err := b.Load(ctx, ref); !errors.Is(err, ErrInvalidRef) {
			t.Errorf("Load(%q): err = %v; want ErrInvalidRef", ref, err)
		}
	}
	for _, ref := range []string{"k-0123456789abcdef", "k-" + strings.Repeat("f", 64)} {
		if _, err := b.Load(ctx, ref); !errors.Is(err, ErrKeyNotFound) {
			t.Errorf("Load(%q): err = %v; want ErrKeyNotFound", ref, err)
		}
	}
}

func TestFileBackendImport(t *testing.T) {
	ctx := context.Background()
	b, dir := newTestBackend(t)
	key, err := ParsePrivateKeyPEM(readTestdata(t, "rsa2048.pkcs1.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := b.Import(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(filepath.Join(dir, ref+".key.enc"))
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if bytes.Contains(onDisk, der[len(der)/2:len(der)/2+64]) {
		t.Fatal("imported key stored in plaintext")
	}
	loaded, err := b.Load(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
		t.Fatal("imported key did not round-trip")
	}
}

func TestFileBackendCorruptFiles(t *testing.T) {
	ctx := context.Background()
	b, dir := newTestBackend(t)
	// A file that authenticates but does not hold PKCS#8 must fail cleanly.
	ref := "k-00000000000000aa"
	sealed, err := b.kek.Seal([]byte("not DER"), additionalData(ref))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ref+".key.enc"), sealed, 0o600)
	if _, err := b.Load(ctx, ref); err == nil {
		t.Fatal("non-PKCS#8 payload loaded")
	}
	// Sealed without the domain prefix (bare ref as AD) must not load.
	ref2 := "k-00000000000000bb"
	sealed, _ = b.kek.Seal([]byte("x"), []byte(ref2))
	os.WriteFile(filepath.Join(dir, ref2+".key.enc"), sealed, 0o600)
	if _, err := b.Load(ctx, ref2); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("err = %v; want ErrDecrypt", err)
	}
	// Oversized and non-regular files are refused before decryption.
	ref3 := "k-00000000000000cc"
	os.WriteFile(filepath.Join(dir, ref3+".key.enc"), make([]byte, maxKeyFileSize+1), 0o600)
	if _, err := b.Load(ctx, ref3); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("oversized file: err = %v", err)
	}
	ref4 := "k-00000000000000dd"
	os.Mkdir(filepath.Join(dir, ref4+".key.enc"), 0o700)
	if _, err := b.Load(ctx, ref4); err == nil {
		t.Fatal("directory loaded as key")
	}
}
