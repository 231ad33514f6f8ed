package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/server"
)

// TestMonitoringLintOnIngest: a certificate from another CA served on a
// real TLS listener and found by a real scan is linted when the scan's
// report is merged, and the findings engine reports its zlint warning
// (a leaf without a subject key identifier) from the stored results.
func TestMonitoringLintOnIngest(t *testing.T) {
	in := startMonitored(t, t.TempDir(), server.MonitorConfig{})
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Vendor CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "vendor.test"}, DNSNames: []string{"vendor.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	fp := hex.EncodeToString(sum[:])
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	if _, errOut, code := in.cli("scan", "net", ln.Addr().String(), "--sni", "vendor.test"); code != 0 {
		t.Fatalf("scan net: exit %d %s", code, errOut)
	}
	eventually(t, "lint-warning finding", 20*time.Second, func() string {
		out, _, _ := in.cli("findings", "list", "--identity", fp, "-o", "json")
		if !strings.Contains(out, `"rule": "lint-warning"`) || !strings.Contains(out, "w_ext_subject_key_identifier_missing_sub_cert") {
			return "findings: " + out
		}
		return ""
	})
}
