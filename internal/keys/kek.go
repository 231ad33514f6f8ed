package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"golang.org/x/crypto/scrypt"
)

// KEKSize is the length of a key-encryption key: AES-256.
const KEKSize = 32

const (
	sealVersion1 = 1  // AES-256-GCM, 12-byte random nonce
	nonceSize    = 12 // GCM standard nonce
	tagSize      = 16 // GCM tag
	redacted     = "KEK(redacted)"

	// maxKEKFileSize bounds what LoadKEKFile reads: a KEK file is at most
	// 64 hex characters plus whitespace, so anything larger is a mistake.
	maxKEKFileSize = 4096

	// scrypt cost for passphrase-derived KEKs (about 32 MiB, ~100 ms): the
	// usual interactive-login parameters; derivation happens once at startup.
	scryptN = 1 << 15
	scryptR = 8
	scryptP = 1

	// MinSaltSize is the shortest salt KEKFromPassphrase accepts.
	MinSaltSize = 16
)

// ErrDecrypt is returned by Open for every authentication failure. It says
// nothing about why (wrong key, wrong additional data or tampering) on purpose.
var ErrDecrypt = errors.New("keys: cannot decrypt: wrong key, wrong context, or data corrupted")

// ErrSealedFormat is returned by Open for input that is not a sealed blob this
// version understands (too short, unknown version byte).
var ErrSealedFormat = errors.New("keys: sealed data is malformed or of an unsupported version")

// KEK is a 32-byte key-encryption key (AES-256-GCM). Its bytes are unexported
// and every printing path (fmt verbs, JSON, slog) shows "KEK(redacted)", so a
// KEK that ends up in a log line or a config dump does not leak.
type KEK struct {
	b [KEKSize]byte
}

// String, GoString, Format, MarshalJSON, MarshalText and LogValue all redact.
// Format is needed because fmt prints struct fields for verbs such as %d that
// bypass String.
func (k KEK) String() string               { return redacted }
func (k KEK) GoString() string             { return redacted }
func (k KEK) Format(f fmt.State, _ rune)   { _, _ = io.WriteString(f, redacted) }
func (k KEK) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (k KEK) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (k KEK) LogValue() slog.Value         { return slog.StringValue(redacted) }

// KEKFromBytes copies b, which must be exactly 32 bytes, into a new KEK.
func KEKFromBytes(b []byte) (*KEK, error) {
	if len(b) != KEKSize {
		return nil, fmt.Errorf("keys: KEK must be exactly %d bytes, got %d", KEKSize, len(b))
	}
	k := new(KEK)
	copy(k.b[:], b)
	return k, nil
}

// LoadKEKFile reads a KEK from a file holding either exactly 32 raw bytes or
// the base64 or hex text of 32 bytes (surrounding whitespace ignored). The file
// must not be accessible to group or other, as with ssh private keys.
func LoadKEKFile(path string) (*KEK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: open KEK file: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the read one.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys: stat KEK file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keys: KEK file %s is not a regular file", path)
	}
	// Windows has no Unix permission bits; its ACLs are out of scope here.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keys: KEK file %s has mode %#o, which allows group/other access; restrict it with: chmod 600 %s",
			path, fi.Mode().Perm(), path)
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxKEKFileSize+1))
	defer clear(buf)
	if err != nil {
		return nil, fmt.Errorf("keys: read KEK file: %w", err)
	}
	if len(buf) > maxKEKFileSize {
		return nil, fmt.Errorf("keys: KEK file %s is too large to be a KEK", path)
	}
	// Exactly 32 bytes is raw; no text encoding of 32 bytes is 32 characters
	// long, so the check is unambiguous. Raw bytes are not trimmed: 0x20 or
	// 0x0a are legitimate key bytes.
	if len(buf) == KEKSize {
		return KEKFromBytes(buf)
	}
	k, err := decodeKEKText(bytes.TrimSpace(buf))
	if err != nil {
		return nil, fmt.Errorf("keys: KEK file %s: %w", path, err)
	}
	return k, nil
}

// KEKFromEnv decodes a KEK from an environment variable's value: base64
// (standard or URL alphabet, padded or not) or hex of 32 bytes.
func KEKFromEnv(value string) (*KEK, error) {
	k, err := decodeKEKText(bytes.TrimSpace([]byte(value)))
	if err != nil {
		return nil, fmt.Errorf("keys: KEK from environment: %w", err)
	}
	return k, nil
}

// decodeKEKText accepts hex (64 characters) or any base64 flavour of 32
// bytes. The lengths differ (64 vs 43/44), so there is no ambiguity. Errors
// never quote the input.
func decodeKEKText(s []byte) (*KEK, error) {
	var out [KEKSize + 3]byte // largest decode of a 44-character input
	defer clear(out[:])
	if len(s) == 2*KEKSize {
		if n, err := hex.Decode(out[:], s); err == nil && n == KEKSize {
			return KEKFromBytes(out[:KEKSize])
		}
		clear(out[:])
	}
	// 44 characters is the longest (padded) base64 of 32 bytes; the bound
	// also keeps every decode within out.
	if len(s) <= base64.StdEncoding.EncodedLen(KEKSize) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if n, err := enc.Decode(out[:], s); err == nil && n == KEKSize {
				return KEKFromBytes(out[:KEKSize])
			}
		}
	}
	return nil, fmt.Errorf("KEK must be base64 or hex encoding of exactly %d bytes", KEKSize)
}

// KEKFromPassphrase derives a KEK with scrypt (N=2^15, r=8, p=1). The salt
// must be at least 16 bytes and is not secret; store it beside the key files.
func KEKFromPassphrase(pass []byte, salt []byte) (*KEK, error) {
	if len(pass) == 0 {
		return nil, errors.New("keys: passphrase is empty")
	}
	if len(salt) < MinSaltSize {
		return nil, fmt.Errorf("keys: passphrase salt must be at least %d bytes, got %d", MinSaltSize, len(salt))
	}
	dk, err := scrypt.Key(pass, salt, scryptN, scryptR, scryptP, KEKSize)
	if err != nil {
		return nil, fmt.Errorf("keys: derive KEK: %w", err)
	}
	defer clear(dk)
	return KEKFromBytes(dk)
}

// GenerateKEKFile creates a random KEK and writes it, base64-encoded, to a new
// file with mode 0600. Text rather than raw bytes so it survives copying into
// a secret manager or an environment variable (KEKFromEnv reads the same
// text). It refuses to replace an existing file: overwriting a KEK would make
// every key sealed under it unrecoverable.
func GenerateKEKFile(path string) (*KEK, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("keys: KEK file %s already exists; refusing to overwrite it", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("keys: check KEK file: %w", err)
	}
	k := new(KEK)
	if _, err := rand.Read(k.b[:]); err != nil {
		return nil, fmt.Errorf("keys: generate KEK: %w", err)
	}
	text := make([]byte, base64.StdEncoding.EncodedLen(KEKSize)+1)
	defer clear(text)
	base64.StdEncoding.Encode(text, k.b[:])
	text[len(text)-1] = '\n'
	// No-replace write: closes the race with a concurrent creator that the
	// Lstat above cannot.
	if err := writeFileAtomic(path, text, 0o600, true); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("keys: KEK file %s already exists; refusing to overwrite it", path)
		}
		return nil, fmt.Errorf("keys: write KEK file: %w", err)
	}
	return k, nil
}

func (k *KEK) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.b[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts and authenticates plaintext, binding additionalData (which is
// not stored). Output: 1-byte version || 12-byte random nonce || ciphertext+tag.
// Random nonces are safe here: far fewer than 2^32 messages are ever sealed
// under one KEK (a handful of CA keys).
func (k *KEK) Seal(plaintext, additionalData []byte) ([]byte, error) {
	if k == nil {
		return nil, errors.New("keys: Seal with nil KEK")
	}
	aead, err := k.aead()
	if err != nil {
		return nil, fmt.Errorf("keys: seal: %w", err)
	}
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+tagSize)
	out[0] = sealVersion1
	if _, err := rand.Read(out[1 : 1+nonceSize]); err != nil {
		return nil, fmt.Errorf("keys: seal: nonce: %w", err)
	}
	return aead.Seal(out, out[1:1+nonceSize], plaintext, additionalData), nil
}

// Open reverses Seal. Any authentication failure yields ErrDecrypt, with no
// hint as to which input was wrong.
func (k *KEK) Open(sealed, additionalData []byte) ([]byte, error) {
	if k == nil {
		return nil, errors.New("keys: Open with nil KEK")
	}
	if len(sealed) < 1+nonceSize+tagSize || sealed[0] != sealVersion1 {
		return nil, ErrSealedFormat
	}
	aead, err := k.aead()
	if err != nil {
		return nil, fmt.Errorf("keys: open: %w", err)
	}
	pt, err := aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], additionalData)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
