package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
)

func runSigil(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(sigilBin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

// TestStoreCopy: a SQLite server's store is copied with `sigil store copy`
// to PostgreSQL and back to a new SQLite file; a server on each copy (same
// data directory, hence the same CA keys) shows the same certificates in the
// same states, verifies the audit chain, answers OCSP and issues.
func TestStoreCopy(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	in := startServer(t, dir)
	in.applyProfiles()
	var serials []string
	var revokedPEM, chain string
	for i, name := range []string{"a.test", "b.test", "c.test"} {
		var issued api.IssueResponse
		if err := in.api.Do(context.Background(), "POST", "/api/v1/certificates", api.IssueRequest{Profile: "web", CSR: string(newCSR(t, identity.KeyECDSAP256, name))}, &issued); err != nil {
			t.Fatal(err)
		}
		serials = append(serials, string(issued.Serial))
		if i == 1 {
			in.mustCLI("cert", "revoke", string(issued.Serial), "--reason", "keyCompromise")
			revokedPEM, chain = issued.PEM, issued.Chain
		}
	}
	before := map[string]string{}
	for _, s := range serials {
		before[s] = in.mustCLI("cert", "show", s, "-o", "json")
	}
	// An enrolled agent: after the copy it must still renew (its machine
	// and current certificate came along).
	in.applyFleetProfile()
	const machine = "copy-agent.prod.internal"
	fp := in.rootFingerprint()
	agentState := t.TempDir()
	if out, errOut, code := runSigil(t, "agent", "--once", "--server", in.srv.APIURL, "--root-fingerprint", fp,
		"--join-token", in.joinToken(machine), "--name", machine, "--state", agentState); code != 0 {
		t.Fatalf("agent enrolment: exit %d\n%s%s", code, out, errOut)
	}
	renewDue := time.Now().Add(7 * time.Second) // --renew-at 0.1 of the fleet profile's minute
	in.stop()
	source := "sqlite:" + filepath.Join(dir, "sigil.db")

	// Local errors exit 1: a missing source (not created), a bad --to.
	missing := filepath.Join(t.TempDir(), "missing.db")
	if _, errOut, code := runSigil(t, "store", "copy", "--from", "sqlite:"+missing, "--to", "sqlite:"+filepath.Join(t.TempDir(), "x.db")); code != 1 {
		t.Fatalf("copy from a missing source: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("copy created the missing source: %v", err)
	}
	if _, errOut, code := runSigil(t, "store", "copy", "--from", source, "--to", "mysql://x"); code != 1 || !strings.Contains(errOut, "unsupported") {
		t.Fatalf("copy to an unsupported store: exit %d %s", code, errOut)
	}

	check := func(t *testing.T, db string) {
		t.Helper()
		b := startServerDB(t, dir, db)
		defer b.stop()
		for _, s := range serials {
			if got := b.mustCLI("cert", "show", s, "-o", "json"); got != before[s] {
				t.Errorf("cert %s after copy:\n%s\nbefore:\n%s", s, got, before[s])
			}
		}
		if out := b.mustCLI("cert", "show", serials[1], "-o", "json"); !strings.Contains(out, `"state": "revoked"`) {
			t.Errorf("revoked certificate after copy:\n%s", out)
		}
		if out := b.mustCLI("audit", "verify"); !strings.Contains(out, "OK") {
			t.Errorf("audit verify after copy: %s", out)
		}
		work := t.TempDir()
		crt := writeFile(t, work, "crt.pem", []byte(revokedPEM))
		intFile := writeFile(t, work, "int.pem", []byte(chain))
		if out, _ := openssl(t, "ocsp", "-issuer", intFile, "-cert", crt, "-url", b.srv.PublicURL+"/ocsp", "-CAfile", filepath.Join(dir, "root.pem")); !strings.Contains(out, crt+": revoked") {
			t.Errorf("OCSP after copy:\n%s", out)
		}
		b.mustCLI("cert", "issue", "--profile", "web", "--name", "after-copy.test", "--key-out", filepath.Join(work, "k.pem"), "--out", filepath.Join(work, "c.pem"))

		// The agent renews against the copy, from a copy of its state (each
		// destination sees the certificate it enrolled with as current).
		state := t.TempDir()
		if err := os.CopyFS(state, os.DirFS(agentState)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(renewDue))
		if out, errOut, code := runSigil(t, "agent", "--once", "--server", b.srv.APIURL, "--root-fingerprint", fp,
			"--name", machine, "--state", state, "--renew-at", "0.1", "--jitter", "0"); code != 0 {
			t.Errorf("agent renewal after copy: exit %d\n%s%s", code, out, errOut)
		}
		var m struct {
			State         string `json:"state"`
			CurrentSerial string `json:"current_serial"`
			RenewedBy     string `json:"renewed_by"`
		}
		if err := json.Unmarshal([]byte(b.mustCLI("agent", "show", machine, "-o", "json")), &m); err != nil {
			t.Fatal(err)
		}
		if m.State != "active" || m.RenewedBy == "" || m.RenewedBy == m.CurrentSerial {
			t.Errorf("machine after renewal on the copy: %+v", m)
		}
	}

	// SQLite to SQLite always runs.
	sqliteCopy := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")
	out, errOut, code := runSigil(t, "store", "copy", "--from", source, "--to", sqliteCopy)
	if code != 0 || !strings.Contains(out, "audit chain verified") || !strings.Contains(out, "certificates") {
		t.Fatalf("store copy sqlite→sqlite: exit %d\n%s%s", code, out, errOut)
	}
	// Copying again into the now non-empty destination is refused.
	if _, errOut, code := runSigil(t, "store", "copy", "--from", source, "--to", sqliteCopy); code != 1 || !strings.Contains(errOut, "not empty") {
		t.Fatalf("copy into a non-empty store: exit %d %s", code, errOut)
	}
	t.Run("sqlite", func(t *testing.T) { check(t, sqliteCopy) })

	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.FreshDatabase(t)
		out, errOut, code := runSigil(t, "store", "copy", "--from", source, "--to", dsn)
		if code != 0 || !strings.Contains(out, "audit chain verified") {
			t.Fatalf("store copy sqlite→postgres: exit %d\n%s%s", code, out, errOut)
		}
		check(t, dsn)
		// And back, from PostgreSQL (now one certificate more) to a new SQLite file.
		back := "sqlite:" + filepath.Join(t.TempDir(), "back.db")
		if out, errOut, code := runSigil(t, "store", "copy", "--from", dsn, "--to", back); code != 0 || !strings.Contains(out, "audit chain verified") {
			t.Fatalf("store copy postgres→sqlite: exit %d\n%s%s", code, out, errOut)
		}
		check(t, back)
	})
}
