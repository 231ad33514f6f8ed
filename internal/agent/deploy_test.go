package agent

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/keys"
)

// testIdentity is a leaf signed by an intermediate signed by a root, as the
// server returns them: the leaf, then the intermediate as the chain.
func testIdentity(t *testing.T) (*identity, *x509.CertPool) {
	t.Helper()
	id, roots, _ := testPKI(t, "")
	return id, roots
}

// testPKI is testIdentity with the leaf naming ocspURL as its responder;
// it returns the intermediate's key too.
func testPKI(t *testing.T, ocspURL string) (*identity, *x509.CertPool, crypto.Signer) {
	t.Helper()
	now := time.Now()
	mk := func(tmpl, parent *x509.Certificate, pub, signer any) (*x509.Certificate, []byte) {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	rootKey, _ := keys.GenerateKey("ecdsa-p256")
	intKey, _ := keys.GenerateKey("ecdsa-p256")
	leafKey, _ := keys.GenerateKey("ecdsa-p256")
	ca := func(n int64, cn string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	root, _ := mk(ca(1, "root"), ca(1, "root"), rootKey.Public(), rootKey)
	inter, interPEM := mk(ca(2, "inter"), root, intKey.Public(), rootKey)
	leaf, leafPEM := mk(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "a.test"}, DNSNames: []string{"a.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, OCSPServer: ocspServers(ocspURL)},
		inter, leafKey.Public(), intKey)
	roots := x509.NewCertPool()
	roots.AddCert(root)
	return &identity{key: leafKey, leaf: leaf, cert: leafPEM, chain: interPEM}, roots, intKey
}

func ocspServers(u string) []string {
	if u == "" {
		return nil
	}
	return []string{u}
}

func pemCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			t.Fatalf("unexpected PEM block %s", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(b)) != 0 {
		t.Fatalf("trailing bytes after the PEM blocks: %q", b)
	}
	return out
}

// TestDeployFullChain: --fullchain writes the leaf first, then the
// intermediates, in one world-readable file that verifies against the root
// without any other file (what nginx's ssl_certificate needs).
func TestDeployFullChain(t *testing.T) {
	id, roots := testIdentity(t)
	dir := t.TempDir()
	cc := &CertConfig{Name: "a.test", Cert: filepath.Join(dir, "a.crt"), Key: filepath.Join(dir, "a.key"),
		Chain: filepath.Join(dir, "chain.pem"), FullChain: filepath.Join(dir, "fullchain.pem")}
	for round := range 2 { // a second deployment replaces the file
		if err := deploy(cc, id, Ownership{UID: -1, GID: -1}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	b, err := os.ReadFile(cc.FullChain)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(cc.FullChain)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("fullchain mode %v, want 0644", fi.Mode().Perm())
	}
	certs := pemCerts(t, b)
	if len(certs) != 2 || !certs[0].Equal(id.leaf) || certs[1].Subject.CommonName != "inter" {
		t.Fatalf("fullchain holds %d certificates, want the leaf then the intermediate", len(certs))
	}
	inter := x509.NewCertPool()
	inter.AddCert(certs[1])
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "a.test"}); err != nil {
		t.Fatalf("the full chain does not verify: %v", err)
	}
	if crt, _ := os.ReadFile(cc.Cert); !bytes.Equal(crt, id.cert) {
		t.Error("cert file changed by the full chain")
	}
	if strings.Contains(string(b), "PRIVATE KEY") {
		t.Fatal("the full chain holds the private key")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		t.Fatalf("files left in the directory: %v", ents)
	}
}
