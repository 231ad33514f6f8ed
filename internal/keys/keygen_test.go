package keys

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-pki/sigil/internal/identity"
)

func TestGenerateKey(t *testing.T) {
	for _, kt := range SupportedKeyTypes() {
		t.Run(kt, func(t *testing.T) {
			t.Parallel()
			k, err := GenerateKey(kt)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := identity.KeyTypeOf(k.Public()); err != nil || got != kt {
				t.Fatalf("made %s (err %v)", got, err)
			}
		})
	}
	for _, kt := range []string{"", "rsa-1024", "RSA-2048", "ecdsa-p224", "ed448"} {
		if _, err := GenerateKey(kt); err == nil || !strings.Contains(err.Error(), "unknown key type") {
			t.Errorf("GenerateKey(%q): err = %v", kt, err)
		}
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func publicOf(t *testing.T, name string) crypto.PublicKey {
	t.Helper()
	k, err := ParsePrivateKeyPEM(readTestdata(t, name), nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return k.Public()
}

func TestParsePrivateKeyPEMFixtures(t *testing.T) {
	const pw = "correct-horse"
	for _, tc := range []struct {
		file, same, password string
		wantErr              string // substring; "" means success
	}{
		{"rsa2048.pkcs1.pem", "rsa2048.pkcs8.pem", "", ""},
		{"ec-p256.sec1.pem", "ec-p256.pkcs8.pem", "", ""}, // preceded by EC PARAMETERS
		{"ed25519.pkcs8.pem", "ed25519.pkcs8.pem", "ignored", ""},
		{"ec-p256.enc-aes256-sha256.pem", "ec-p256.pkcs8.pem", pw, ""},
		{"rsa2048.enc-aes128-sha1.pem", "rsa2048.pkcs8.pem", pw, ""},
		{"ed25519.enc-aes192-sha512.pem", "ed25519.pkcs8.pem", pw, ""},
		{"ec-p256.enc-aes256-sha256.pem", "", "", "password is required"},
		{"ec-p256.enc-aes256-sha256.pem", "", "wrong", "wrong password"},
		{"rsa2048.enc-aes128-sha1.pem", "", "Correct-horse", "wrong password"},
		{"ec-p256.enc-des3.pem", "", pw, "only AES-CBC"},
		{"ec-p256.enc-scrypt.pem", "", pw, "only PBKDF2"},
		{"ec-p256.enc-pbes1.pem", "", pw, "only PBES2"},
		{"rsa2048.legacy-enc.pem", "", pw, "legacy encrypted PEM"},
	} {
		t.Run(tc.file+"/"+tc.password, func(t *testing.T) {
			var pass []byte
			if tc.password != "" {
				pass = []byte(tc.password)
			}
			k, err := ParsePrivateKeyPEM(readTestdata(t, tc.file), pass)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), pw) {
					t.Fatal("error quotes the password")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(publicOf(t, tc.same)) {
				t.Fatal("parsed key differs from the same key in PKCS#8")
			}
		})
	}
}

func TestMarshalParseRoundTrip(t *testing.T) {
	for _, kt := range []string{identity.KeyECDSAP256, identity.KeyECDSAP521, identity.KeyEd25519, identity.KeyRSA2048} {
		k, err := GenerateKey(kt)
		if err != nil {
			t.Fatal(err)
		}
		p, err := MarshalPrivateKeyPEM(k)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(p), "-----BEGIN PRIVATE KEY-----\n") {
			t.Fatalf("%s: not a PKCS#8 PEM block", kt)
		}
		back, err := ParsePrivateKeyPEM(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
			t.Fatalf("%s: round trip changed the key", kt)
		}
	}
	// *ed25519.PrivateKey is a crypto.Signer too; it must marshal like the value.
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := MarshalPrivateKeyPEM(&edk); err != nil {
		t.Fatalf("*ed25519.PrivateKey: %v", err)
	}
	if _, err := MarshalPrivateKeyPEM(nil); err == nil {
		t.Fatal("nil key marshaled")
	}
}

func TestParsePrivateKeyPEMErrors(t *testing.T) {
	key := readTestdata(t, "ec-p256.pkcs8.pem")
	block := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	xder, _ := x509.MarshalPKCS8PrivateKey(x)
	cert := block("CERTIFICATE", []byte{0x30, 0x00})
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "no PEM private key"},
		{"certificate only", cert, "no PEM private key"},
		{"two keys", string(key) + string(key), "more than one"},
		{"X25519 cannot sign", block("PRIVATE KEY", xder), "cannot sign"},
		{"garbage DER", block("PRIVATE KEY", []byte{1, 2, 3}), "parse PRIVATE KEY"},
		{"wrong label", block("RSA PRIVATE KEY", xder), "parse RSA PRIVATE KEY"},
		{"openssh", block("OPENSSH PRIVATE KEY", []byte("openssh-key-v1")), "SSH-format"},
		{"unknown type", block("DSA PRIVATE KEY", []byte{0x30, 0}), "unsupported PEM block"},
		{"bad encrypted", block("ENCRYPTED PRIVATE KEY", []byte{0x30, 0}), "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePrivateKeyPEM([]byte(tc.in), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
		})
	}
	// A key with its certificate chain in one file is a common import format.
	if _, err := ParsePrivateKeyPEM([]byte(cert+string(key)+cert), nil); err != nil {
		t.Fatalf("key among certificates: %v", err)
	}
}
