package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
)

// Key type names used in profiles, the CLI and the API.
const (
	KeyECDSAP256 = "ecdsa-p256"
	KeyECDSAP384 = "ecdsa-p384"
	KeyECDSAP521 = "ecdsa-p521"
	KeyEd25519   = "ed25519"
	KeyRSA2048   = "rsa-2048"
	KeyRSA3072   = "rsa-3072"
	KeyRSA4096   = "rsa-4096"
)

// Limits on RSA public keys: below 2048 bits is weak; above 8192 costs a
// verifier a lot for no security a CA needs, and is a cheap DoS lever.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// KeyTypeOf names a public key's type ("rsa-3072", "ecdsa-p256", "ed25519")
// and refuses keys no profile may allow: RSA under 2048 or over 8192 bits,
// RSA with a tiny or even exponent, and curves other than P-256/384/521.
func KeyTypeOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < MinRSABits {
			return "", fmt.Errorf("RSA key of %d bits is too weak (minimum %d)", bits, MinRSABits)
		}
		if bits > MaxRSABits {
			return "", fmt.Errorf("RSA key of %d bits is too large (maximum %d)", bits, MaxRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return "", fmt.Errorf("RSA public exponent %d is invalid", k.E)
		}
		return fmt.Sprintf("rsa-%d", bits), nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return KeyECDSAP256, nil
		case elliptic.P384():
			return KeyECDSAP384, nil
		case elliptic.P521():
			return KeyECDSAP521, nil
		}
		return "", fmt.Errorf("elliptic curve %s is not supported (use P-256, P-384 or P-521)", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return KeyEd25519, nil
	}
	return "", fmt.Errorf("unsupported public key type %T", pub)
}

// SPKIFingerprint is the hex SHA-256 of a public key's SubjectPublicKeyInfo.
func SPKIFingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// Fingerprint is the hex SHA-256 of DER bytes (a certificate's fingerprint).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
