package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sigil-pki/sigil/internal/identity"
)

// keyTypes lists what GenerateKey accepts, using the names profiles, the CLI
// and the API use (see identity.Key*).
var keyTypes = []string{
	identity.KeyECDSAP256, identity.KeyECDSAP384, identity.KeyECDSAP521,
	identity.KeyEd25519,
	identity.KeyRSA2048, identity.KeyRSA3072, identity.KeyRSA4096,
}

// SupportedKeyTypes returns the key type names GenerateKey accepts.
func SupportedKeyTypes() []string { return slices.Clone(keyTypes) }

// GenerateKey creates a new private key of the named type.
func GenerateKey(keyType string) (crypto.Signer, error) {
	switch keyType {
	case identity.KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case identity.KeyECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case identity.KeyECDSAP521:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case identity.KeyEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case identity.KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case identity.KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case identity.KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("keys: unknown key type %q (supported: %s)", keyType, strings.Join(keyTypes, ", "))
}

// normalizeSigner maps a private key to the form x509's PKCS#8 code expects
// (a *ed25519.PrivateKey satisfies crypto.Signer but is not marshalable) and
// rejects signers that are not software keys, such as HSM handles.
func normalizeSigner(key crypto.Signer) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k != nil {
			return k, nil
		}
	case *ecdsa.PrivateKey:
		if k != nil {
			return k, nil
		}
	case ed25519.PrivateKey:
		if len(k) == ed25519.PrivateKeySize {
			return k, nil
		}
	case *ed25519.PrivateKey:
		if k != nil && len(*k) == ed25519.PrivateKeySize {
			return *k, nil
		}
	case nil:
		return nil, errors.New("keys: private key is nil")
	}
	return nil, fmt.Errorf("keys: unsupported or empty private key of type %T", key)
}

// MarshalPrivateKeyPEM encodes key as an unencrypted PKCS#8 "PRIVATE KEY" PEM
// block. The caller is responsible for where those bytes go (WriteFileAtomic
// with 0600 for files).
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	key, err := normalizeSigner(key)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("keys: encode private key: %w", err)
	}
	defer clear(der)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM decodes the single private key in pemBytes, as when an
// existing CA is imported. Accepted blocks: PKCS#8 "PRIVATE KEY", PKCS#1
// "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY", and PKCS#8 "ENCRYPTED PRIVATE KEY"
// (PBES2 with PBKDF2 and AES-CBC, openssl's default) decrypted with password.
// Other blocks such as certificates or "EC PARAMETERS" are skipped, so a
// combined key+chain file works. Legacy OpenSSL encryption (Proc-Type and
// DEK-Info headers) is refused: it uses an MD5-based KDF and no integrity
// check. A password given for an unencrypted key is ignored.
//
// No size or algorithm policy is applied here; Backend.Import does that.
func ParsePrivateKeyPEM(pemBytes []byte, password []byte) (crypto.Signer, error) {
	var found *pem.Block
	rest := pemBytes
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if found != nil {
			return nil, errors.New("keys: PEM data holds more than one private key; supply exactly one")
		}
		found = b
	}
	if found == nil {
		return nil, errors.New("keys: no PEM private key block found")
	}
	if found.Headers["DEK-Info"] != "" || found.Headers["Proc-Type"] != "" {
		return nil, errors.New("keys: legacy encrypted PEM (Proc-Type/DEK-Info) is not supported; " +
			"convert it with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.pem -out new.pem")
	}
	var (
		key any
		err error
	)
	switch found.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(found.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(found.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(found.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		key, err = decryptPKCS8(found.Bytes, password)
		if err != nil {
			return nil, err // already phrased for the user, without detail
		}
	case "OPENSSH PRIVATE KEY":
		return nil, errors.New("keys: SSH-format private keys are not supported; convert to PKCS#8 PEM first")
	default:
		return nil, fmt.Errorf("keys: unsupported PEM block type %q", found.Type)
	}
	if err != nil {
		// x509's messages describe structure only, never key bytes.
		return nil, fmt.Errorf("keys: parse %s: %w", found.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: %T cannot sign; a CA key must be RSA, ECDSA or Ed25519", key)
	}
	return normalizeSigner(signer)
}
