package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/identity"
)

// TestImportExistingCA: a CA made with openssl (root + intermediate) is
// imported with `sigil ca import`; after a restart Sigil issues from it, and
// openssl verifies the result against that CA's root.
func TestImportExistingCA(t *testing.T) {
	work := t.TempDir()
	ossl := func(args ...string) {
		t.Helper()
		if out, err := openssl(t, args...); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	p := func(n string) string { return filepath.Join(work, n) }
	ext := writeFile(t, work, "ext.cnf", []byte("[ca]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"))
	ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=Corp/CN=Corp Root", "-days", "365",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", p("root.key"), "-out", p("root.pem"))
	ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=Corp/CN=Corp Issuing", "-keyout", p("int.key"), "-out", p("int.csr"))
	ossl("x509", "-req", "-in", p("int.csr"), "-CA", p("root.pem"), "-CAkey", p("root.key"), "-CAcreateserial", "-days", "200", "-extfile", ext, "-extensions", "ca", "-out", p("int.pem"))

	dir := filepath.Join(work, "data")
	in := startServer(t, dir)
	in.stop()

	cmd := exec.Command(sigilBin, "ca", "import", "--data", dir, "--id", "corp", "--cert", p("int.pem"), "--key", p("int.key"), "--chain", p("root.pem"), "--default")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sigil ca import: %v\n%s", err, out)
	}
	// Importing the same id again is refused with a one-line error.
	cmd = exec.Command(sigilBin, "ca", "import", "--data", dir, "--id", "corp", "--cert", p("int.pem"), "--key", p("int.key"), "--chain", p("root.pem"))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "already exists") {
		t.Fatalf("second import: %v %s", err, out)
	}
	// A key that does not match the certificate is refused.
	cmd = exec.Command(sigilBin, "ca", "import", "--data", dir, "--id", "corp2", "--cert", p("int.pem"), "--key", p("root.key"), "--chain", p("root.pem"))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "does not match") {
		t.Fatalf("mismatched key import: %v %s", err, out)
	}

	in2 := startServer(t, dir)
	in2.applyProfiles()
	var issued api.IssueResponse
	if err := in2.api.Do(context.Background(), "POST", "/api/v1/certificates", api.IssueRequest{Profile: "web", CSR: string(newCSR(t, identity.KeyECDSAP256, "corp.test"))}, &issued); err != nil {
		t.Fatal(err)
	}
	if issued.IssuerID != "corp" {
		t.Fatalf("issued by %q, want the imported default issuer corp", issued.IssuerID)
	}
	crt := writeFile(t, work, "crt.pem", []byte(issued.PEM))
	chain := writeFile(t, work, "chain.pem", []byte(issued.Chain))
	if out, err := openssl(t, "verify", "-CAfile", p("root.pem"), "-untrusted", chain, crt); err != nil {
		t.Fatalf("openssl verify against the imported root: %v\n%s", err, out)
	}
	// root.pem now lists both trust anchors.
	roots, _ := os.ReadFile(filepath.Join(dir, "root.pem"))
	if strings.Count(string(roots), "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("root.pem holds %d certificates, want 2", strings.Count(string(roots), "BEGIN CERTIFICATE"))
	}
	// The imported issuer has its own CRL, signed by its key.
	crl := writeFile(t, work, "corp.crl", httpGet(t, in2.srv.PublicURL+"/crl/corp.crl"))
	if out, _ := openssl(t, "crl", "-inform", "DER", "-in", crl, "-CAfile", p("int.pem"), "-noout"); !strings.Contains(out, "verify OK") {
		t.Fatalf("CRL of the imported issuer:\n%s", out)
	}
}
