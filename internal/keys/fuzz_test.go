package keys

import (
	"bytes"
	"testing"
)

// FuzzOpen: arbitrary input must be rejected (or, for the seeded valid blob,
// accepted) without panicking.
func FuzzOpen(f *testing.F) {
	k, err := KEKFromBytes(bytes.Repeat([]byte{7}, KEKSize))
	if err != nil {
		f.Fatal(err)
	}
	valid, err := k.Seal([]byte("plaintext"), []byte("ad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, []byte("ad"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{sealVersion1}, []byte("ad"))
	f.Add(make([]byte, 1+nonceSize+tagSize), []byte(nil))
	f.Fuzz(func(t *testing.T, sealed, ad []byte) {
		pt, err := k.Open(sealed, ad)
		// Workers re-run the setup with a fresh nonce, so compare what was
		// sealed rather than the exact bytes.
		if err == nil && (string(ad) != "ad" || string(pt) != "plaintext") {
			t.Fatalf("forged input accepted: %x", sealed)
		}
	})
}

// FuzzParsePrivateKeyPEM: no input may panic. The password stays nil so a
// crafted iteration count cannot make single runs slow; the encrypted-PKCS#8
// structure is still parsed before the password is required.
func FuzzParsePrivateKeyPEM(f *testing.F) {
	for _, name := range []string{
		"rsa2048.pkcs1.pem", "ec-p256.sec1.pem", "ed25519.pkcs8.pem",
		"ec-p256.enc-aes256-sha256.pem", "ec-p256.enc-scrypt.pem", "rsa2048.legacy-enc.pem",
	} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePrivateKeyPEM(data, nil)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}

// FuzzKEKFromEnv: any text either decodes to exactly one KEK or errors,
// without panicking (decode buffers are fixed-size).
func FuzzKEKFromEnv(f *testing.F) {
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Add(string(bytes.Repeat([]byte("ab"), KEKSize)))
	f.Add(string(bytes.Repeat([]byte("A"), 200)))
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := KEKFromEnv(s); err == nil && k == nil {
			t.Fatal("nil KEK without error")
		}
	})
}
