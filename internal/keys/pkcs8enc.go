package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
)

// Encrypted PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo with RFC 8018 PBES2) is
// what `openssl genpkey -aes256` and `openssl pkcs8 -topk8` write today. Only
// PBKDF2 + AES-CBC is supported: that covers OpenSSL 1.1+ defaults, and each
// extra scheme is attack surface for an operation done once per CA import.

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// maxPBKDF2Iterations bounds the work a crafted file can demand (about a
// second or two of CPU); real files use 2048 (OpenSSL) up to a few 100k.
const maxPBKDF2Iterations = 10_000_000

type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// errPKCS8Decrypt is deliberately vague: whether the password or the file is
// wrong cannot be told apart, and saying which padding byte failed would help
// nobody but an attacker.
var errPKCS8Decrypt = errors.New("keys: cannot decrypt ENCRYPTED PRIVATE KEY: wrong password or corrupted file")

// unmarshalExact parses DER and rejects trailing bytes.
func unmarshalExact(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("trailing data")
	}
	return nil
}

// decryptPKCS8 returns the parsed key inside an EncryptedPrivateKeyInfo. The
// structure is validated before the password is required, so errors about
// the file come first and no KDF work is done for an obviously bad file.
func decryptPKCS8(der, password []byte) (any, error) {
	malformed := func(what string) error {
		return fmt.Errorf("keys: malformed ENCRYPTED PRIVATE KEY: %s", what)
	}
	var info encryptedPrivateKeyInfo
	if err := unmarshalExact(der, &info); err != nil {
		return nil, malformed("bad EncryptedPrivateKeyInfo")
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("keys: ENCRYPTED PRIVATE KEY uses scheme %s; only PBES2 is supported "+
			"(re-encrypt with: openssl pkcs8 -topk8 -v2 aes-256-cbc)", info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if err := unmarshalExact(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, malformed("bad PBES2 parameters")
	}
	if !params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("keys: ENCRYPTED PRIVATE KEY uses KDF %s; only PBKDF2 is supported", params.KeyDerivationFunc.Algorithm)
	}
	var kdf pbkdf2Params
	if err := unmarshalExact(params.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil {
		return nil, malformed("bad PBKDF2 parameters")
	}
	if kdf.IterationCount < 1 || kdf.IterationCount > maxPBKDF2Iterations {
		return nil, malformed(fmt.Sprintf("PBKDF2 iteration count %d out of range", kdf.IterationCount))
	}
	prf, err := pbkdf2PRF(kdf.PRF.Algorithm)
	if err != nil {
		return nil, err
	}
	var keyLen int
	switch enc := params.EncryptionScheme.Algorithm; {
	case enc.Equal(oidAES128CBC):
		keyLen = 16
	case enc.Equal(oidAES192CBC):
		keyLen = 24
	case enc.Equal(oidAES256CBC):
		keyLen = 32
	default:
		return nil, fmt.Errorf("keys: ENCRYPTED PRIVATE KEY uses cipher %s; only AES-CBC is supported "+
			"(re-encrypt with: openssl pkcs8 -topk8 -v2 aes-256-cbc)", enc)
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != keyLen {
		return nil, malformed("PBKDF2 key length does not match the cipher")
	}
	var iv []byte
	if err := unmarshalExact(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, malformed("bad AES-CBC IV")
	}
	ct := info.EncryptedData
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, malformed("ciphertext is not a whole number of blocks")
	}
	if len(password) == 0 {
		return nil, errors.New("keys: private key is encrypted; a password is required")
	}

	dk, err := pbkdf2.Key(prf, string(password), kdf.Salt, kdf.IterationCount, keyLen)
	if err != nil {
		return nil, fmt.Errorf("keys: derive key: %w", err)
	}
	defer clear(dk)
	block, err := aes.NewCipher(dk)
	if err != nil {
		return nil, fmt.Errorf("keys: decrypt: %w", err)
	}
	pt := make([]byte, len(ct))
	defer clear(pt)
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	pt, ok := unpadPKCS7(pt)
	if !ok {
		return nil, errPKCS8Decrypt
	}
	key, err := x509.ParsePKCS8PrivateKey(pt)
	if err != nil {
		// A wrong password passes the padding check about 1 time in 256.
		return nil, errPKCS8Decrypt
	}
	return key, nil
}

// pbkdf2PRF maps the PRF OID (absent means HMAC-SHA1, per RFC 8018).
func pbkdf2PRF(oid asn1.ObjectIdentifier) (func() hash.Hash, error) {
	switch {
	case len(oid) == 0, oid.Equal(oidHMACSHA1):
		return sha1.New, nil
	case oid.Equal(oidHMACSHA224):
		return sha256.New224, nil
	case oid.Equal(oidHMACSHA256):
		return sha256.New, nil
	case oid.Equal(oidHMACSHA384):
		return sha512.New384, nil
	case oid.Equal(oidHMACSHA512):
		return sha512.New, nil
	}
	return nil, fmt.Errorf("keys: ENCRYPTED PRIVATE KEY uses unsupported PBKDF2 PRF %s", oid)
}

// unpadPKCS7 strips CBC padding, checking every pad byte in constant time.
func unpadPKCS7(b []byte) ([]byte, bool) {
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize || n > len(b) {
		return nil, false
	}
	pad := b[len(b)-n:]
	want := make([]byte, n)
	for i := range want {
		want[i] = byte(n)
	}
	if subtle.ConstantTimeCompare(pad, want) != 1 {
		return nil, false
	}
	return b[:len(b)-n], true
}
