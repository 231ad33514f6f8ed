package keys

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/sigil-pki/sigil/internal/identity"
)

const (
	keyFileSuffix = ".key.enc"
	refRandBytes  = 8 // "k-" + 16 hex: 64 random bits; collisions are also caught on write

	// keyFileAD prefixes the ref in the AEAD additional data: the ref binds a
	// file to its name, and the prefix keeps these blobs from being accepted
	// anywhere else the same KEK might seal data.
	keyFileAD = "sigil/keys/file-backend/v1:"

	// maxKeyFileSize is well above an RSA-8192 PKCS#8 (~4.8 KiB) sealed.
	maxKeyFileSize = 64 << 10
)

// refPattern is the only ref shape accepted, so a ref can never name a path
// outside the key directory.
var refPattern = regexp.MustCompile(`^k-[0-9a-f]{16,64}$`)

// FileBackend stores each key as PKCS#8 DER sealed with a KEK, one file per
// key at dir/<ref>.key.enc with mode 0600. It is safe for concurrent use:
// files are written once, atomically, and never modified.
type FileBackend struct {
	dir string
	kek *KEK
}

var _ Backend = (*FileBackend)(nil)

// NewFileBackend uses dir for key files, creating it with mode 0700 if
// missing. An existing directory's mode is left alone (it may be managed by
// the deployment), since the files themselves are encrypted and 0600.
func NewFileBackend(dir string, kek *KEK) (*FileBackend, error) {
	if kek == nil {
		return nil, errors.New("keys: file backend needs a KEK")
	}
	if dir == "" {
		return nil, errors.New("keys: file backend needs a directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys: create key directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("keys: key directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("keys: key directory %s is not a directory", dir)
	}
	return &FileBackend{dir: dir, kek: kek}, nil
}

// ValidRef reports whether ref has the shape FileBackend issues. Other
// packages can use it to reject bad input early with a clear message.
func ValidRef(ref string) bool { return refPattern.MatchString(ref) }

func (b *FileBackend) path(ref string) string {
	return filepath.Join(b.dir, ref+keyFileSuffix)
}

func additionalData(ref string) []byte { return []byte(keyFileAD + ref) }

// Generate creates a key of keyType, stores it sealed, and returns its ref.
func (b *FileBackend) Generate(ctx context.Context, keyType string) (string, crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return "", nil, err
	}
	signer, err := GenerateKey(keyType)
	if err != nil {
		return "", nil, err
	}
	ref, err := b.store(ctx, signer)
	if err != nil {
		return "", nil, err
	}
	return ref, signer, nil
}

// Import stores an existing key. It applies the same policy as issuance
// (identity.KeyTypeOf): RSA 2048–8192 bits with a sane exponent, ECDSA on
// P-256/384/521, or Ed25519, so a weak key cannot become a CA key this way.
func (b *FileBackend) Import(ctx context.Context, key crypto.Signer) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	key, err := normalizeSigner(key)
	if err != nil {
		return "", err
	}
	if _, err := identity.KeyTypeOf(key.Public()); err != nil {
		return "", fmt.Errorf("keys: import: %w", err)
	}
	return b.store(ctx, key)
}

// store seals key under a fresh ref and writes it without replacing anything.
func (b *FileBackend) store(ctx context.Context, key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("keys: encode private key: %w", err)
	}
	defer clear(der)
	// Retrying on a name clash costs nothing and makes "never overwrite a
	// key" hold even if the random source misbehaves.
	for range 3 {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		ref, err := newRef()
		if err != nil {
			return "", err
		}
		sealed, err := b.kek.Seal(der, additionalData(ref))
		if err != nil {
			return "", err
		}
		err = writeFileAtomic(b.path(ref), sealed, 0o600, true)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("keys: store key: %w", err)
		}
		return ref, nil
	}
	return "", errors.New("keys: store key: could not allocate an unused ref")
}

func newRef() (string, error) {
	var b [refRandBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("keys: new ref: %w", err)
	}
	return "k-" + hex.EncodeToString(b[:]), nil
}

// Load reads and decrypts the key stored under ref. A missing key wraps
// ErrKeyNotFound; a file that does not decrypt (wrong KEK, tampering, or a
// file renamed from another ref) wraps ErrDecrypt.
func (b *FileBackend) Load(ctx context.Context, ref string) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !ValidRef(ref) {
		return nil, fmt.Errorf("%w %q: want k- followed by 16 to 64 lowercase hex digits", ErrInvalidRef, ref)
	}
	sealed, err := readLimited(b.path(ref), maxKeyFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeyNotFound, ref, err)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: load key %s: %w", ref, err)
	}
	der, err := b.kek.Open(sealed, additionalData(ref))
	if err != nil {
		return nil, fmt.Errorf("keys: load key %s: %w", ref, err)
	}
	defer clear(der)
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		// Authenticated but unparseable means a bug or a foreign writer;
		// x509's message describes structure only.
		return nil, fmt.Errorf("keys: load key %s: %w", ref, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: load key %s: stored key of type %T cannot sign", ref, key)
	}
	return signer, nil
}

// readLimited reads a regular file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errors.New("file too large to be a key")
	}
	return data, nil
}
