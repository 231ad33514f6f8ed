package e2e

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/identity"
)

// TestCLIBehaviour covers CLI and API details users rely on.
func TestCLIBehaviour(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	in.applyProfiles()
	work := t.TempDir()
	count := func() int {
		var resp struct {
			Count int `json:"count"`
		}
		if err := in.api.Do(context.Background(), "GET", "/api/v1/certificates?status=all", nil, &resp); err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}

	t.Run("mixed-case names are issued lower-case", func(t *testing.T) {
		var out api.IssueResponse
		if err := in.api.Do(context.Background(), "POST", "/api/v1/certificates", api.IssueRequest{Profile: "web", CSR: string(newCSR(t, identity.KeyECDSAP256, "App.TEST", "WWW.App.Test"))}, &out); err != nil {
			t.Fatal(err)
		}
		certs, _ := ca.ParseCertificatesPEM([]byte(out.PEM))
		if got := strings.Join(certs[0].DNSNames, ","); got != "app.test,www.app.test" || certs[0].Subject.CommonName != "app.test" {
			t.Fatalf("SANs %q CN %q, want lower case", got, certs[0].Subject.CommonName)
		}
	})

	t.Run("bad output format fails before anything is issued", func(t *testing.T) {
		before := count()
		_, errOut, code := in.cli("cert", "issue", "--profile", "web", "--name", "yaml.test", "--key-out", filepath.Join(work, "y.key"), "--out", filepath.Join(work, "y.crt"), "-o", "yaml")
		if code != 1 || !strings.Contains(errOut, "unknown output format") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if count() != before {
			t.Fatal("a certificate was issued despite the bad output format")
		}
		if _, err := os.Stat(filepath.Join(work, "y.key")); err == nil {
			t.Fatal("a key file was written")
		}
	})

	t.Run("SIGIL_NAME does not leak into other commands", func(t *testing.T) {
		cmd := exec.Command(sigilBin, "token", "create", "--role", "auditor", "-o", "json")
		cmd.Env = append(os.Environ(), "SIGIL_SERVER="+in.srv.APIURL, "SIGIL_TOKEN="+in.token, "SIGIL_ROOT="+filepath.Join(in.dir, "root.pem"), "SIGIL_NAME=oops.test")
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		var tok api.TokenResponse
		if err := json.Unmarshal(out, &tok); err != nil || tok.Name != "" {
			t.Fatalf("token name %q (%v), want empty", tok.Name, err)
		}
	})

	t.Run("the last admin token cannot be revoked", func(t *testing.T) {
		var first api.TokenResponse
		if err := in.api.Do(context.Background(), "GET", "/api/v1/whoami", nil, &first.Token); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := in.cli("token", "revoke", first.ID); code != 2 || !strings.Contains(errOut, "last active admin") {
			t.Fatalf("revoking the only admin token: exit %d %s", code, errOut)
		}
		second := strings.TrimSpace(in.mustCLI("token", "create", "--role", "admin", "--name", "second"))
		if _, errOut, code := in.cliToken(second, "token", "revoke", first.ID); code != 0 {
			t.Fatalf("revoking the first admin token with a second one: exit %d %s", code, errOut)
		}
		if _, _, code := in.cli("cert", "list"); code != 2 {
			t.Fatalf("revoked token still works (exit %d)", code)
		}
	})

	t.Run("OCSP answers for the intermediate", func(t *testing.T) {
		iss := in.srv.RA().CA().Issuers()
		var inter *ca.Issuer
		for _, i := range iss {
			if len(i.Chain) > 0 {
				inter = i
			}
		}
		intFile := writeFile(t, work, "int.pem", ca.PEM(inter.Cert.Raw))
		out, _ := openssl(t, "ocsp", "-issuer", filepath.Join(in.dir, "root.pem"), "-cert", intFile, "-url", in.srv.PublicURL+"/ocsp", "-CAfile", filepath.Join(in.dir, "root.pem"))
		if !strings.Contains(out, intFile+": good") {
			t.Fatalf("OCSP for the intermediate:\n%s", out)
		}
	})
}

// TestOCSPGet: RFC 6960 appendix A.1 GET requests get the same signed answer
// as POST, for issued, revoked and never-issued serials.
func TestOCSPGet(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	in.applyProfiles()
	ctx := context.Background()
	var out api.IssueResponse
	if err := in.api.Do(ctx, "POST", "/api/v1/certificates", api.IssueRequest{Profile: "web", CSR: string(newCSR(t, identity.KeyECDSAP256, "get.test"))}, &out); err != nil {
		t.Fatal(err)
	}
	leaf, _ := ca.ParseCertificatesPEM([]byte(out.PEM))
	inter, _ := ca.ParseCertificatesPEM([]byte(out.Chain))
	query := func(c *x509.Certificate) *ocsp.Response {
		t.Helper()
		der, err := ocsp.CreateRequest(c, inter[0], &ocsp.RequestOptions{Hash: crypto.SHA256})
		if err != nil {
			t.Fatal(err)
		}
		body := httpGet(t, in.srv.PublicURL+"/ocsp/"+url.PathEscape(base64.StdEncoding.EncodeToString(der)))
		resp, err := ocsp.ParseResponseForCert(body, c, inter[0])
		if err != nil {
			t.Fatalf("parsing OCSP response: %v", err)
		}
		return resp
	}
	if r := query(leaf[0]); r.Status != ocsp.Good {
		t.Fatalf("status %d, want good", r.Status)
	}
	in.mustCLI("cert", "revoke", string(out.Serial), "--reason", "superseded")
	if r := query(leaf[0]); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.Superseded {
		t.Fatalf("status %d reason %d, want revoked/superseded", r.Status, r.RevocationReason)
	}
	never := *leaf[0]
	never.SerialNumber = new(big.Int).Add(leaf[0].SerialNumber, big.NewInt(1))
	if r := query(&never); r.Status != ocsp.Unknown {
		t.Fatalf("status %d for a serial never issued, want unknown", r.Status)
	}
}

// TestOCSPCertIDHashes: openssl matches a response to its request by CertID,
// hash algorithm included, so the responder answers in the request's hash.
func TestOCSPCertIDHashes(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	in.applyProfiles()
	work := t.TempDir()
	crt, chain := filepath.Join(work, "c.pem"), filepath.Join(work, "chain.pem")
	in.mustCLI("cert", "issue", "--profile", "web", "--name", "hash.test", "--key-out", filepath.Join(work, "k.pem"), "--out", crt, "--chain", chain)
	for _, h := range []string{"-sha1", "-sha256", "-sha384", "-sha512"} {
		out, _ := openssl(t, "ocsp", h, "-issuer", chain, "-cert", crt, "-url", in.srv.PublicURL+"/ocsp", "-CAfile", filepath.Join(in.dir, "root.pem"))
		if !strings.Contains(out, crt+": good") {
			t.Errorf("openssl ocsp %s:\n%s", h, out)
		}
	}
}

// TestBenchIssue: `sigil bench issue` drives real issuance and reports it;
// every certificate it counts is in the store.
func TestBenchIssue(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	in.applyProfiles()
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	out := in.mustCLI("bench", "issue", "--profile", "web", "--count", "40", "--concurrency", "4", "--distinct-csrs", "3", "-o", "json", "--cpuprofile", prof)
	// The load generator's own profile, in pprof's gzipped protobuf.
	if b, err := os.ReadFile(prof); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("--cpuprofile wrote %d bytes (%v), want a gzipped pprof profile", len(b), err)
	}
	var res struct {
		Count      int     `json:"count"`
		Errors     int     `json:"errors"`
		PerSecond  float64 `json:"certificates_per_second"`
		P50        float64 `json:"p50_ms"`
		ServerCPU  float64 `json:"server_cpu_seconds"`
		PerCoreSec float64 `json:"certificates_per_core_second"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench output: %v\n%s", err, out)
	}
	if res.Count != 40 || res.Errors != 0 || res.PerSecond <= 0 || res.P50 <= 0 || res.ServerCPU <= 0 || res.PerCoreSec <= 0 {
		t.Fatalf("bench result %+v", res)
	}
	var list struct {
		Count int `json:"count"`
	}
	if err := in.api.Do(context.Background(), "GET", "/api/v1/certificates?status=issued&profile=web", nil, &list); err != nil {
		t.Fatal(err)
	}
	if list.Count != 40 {
		t.Fatalf("%d issued certificates in the store after a bench of 40", list.Count)
	}
}
