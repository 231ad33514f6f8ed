package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
)

// TestServerOnPostgres: `sigil server --db postgres://...` runs the same
// lifecycle on PostgreSQL, and a second server process sharing the data
// directory and database sees and revokes what the first issued.
func TestServerOnPostgres(t *testing.T) {
	dsn := pgtest.FreshDatabase(t)
	dir := filepath.Join(t.TempDir(), "data")
	a := startServerDB(t, dir, dsn)
	a.applyProfiles()
	var issued api.IssueResponse
	if err := a.api.Do(context.Background(), "POST", "/api/v1/certificates", api.IssueRequest{Profile: "web", CSR: string(newCSR(t, identity.KeyECDSAP256, "pg.test"))}, &issued); err != nil {
		t.Fatal(err)
	}
	// A second replica: same data directory (CA keys), same database.
	b := startServerDB(t, dir, dsn)
	if out := b.mustCLI("cert", "show", string(issued.Serial), "-o", "json"); !strings.Contains(out, `"state": "issued"`) {
		t.Fatalf("replica B does not see the certificate:\n%s", out)
	}
	b.mustCLI("cert", "revoke", string(issued.Serial), "--reason", "keyCompromise")
	if out := a.mustCLI("cert", "show", string(issued.Serial), "-o", "json"); !strings.Contains(out, `"state": "revoked"`) {
		t.Fatalf("replica A does not see the revocation:\n%s", out)
	}
	// OCSP on replica A says revoked (answers come from the shared store).
	work := t.TempDir()
	crt := writeFile(t, work, "crt.pem", []byte(issued.PEM))
	intFile := writeFile(t, work, "int.pem", []byte(issued.Chain))
	out, _ := openssl(t, "ocsp", "-issuer", intFile, "-cert", crt, "-url", a.srv.PublicURL+"/ocsp", "-CAfile", filepath.Join(dir, "root.pem"))
	if !strings.Contains(out, crt+": revoked") {
		t.Fatalf("OCSP on replica A after revocation on B:\n%s", out)
	}
	if out := a.mustCLI("audit", "verify"); !strings.Contains(out, "OK") {
		t.Fatalf("audit verify: %s", out)
	}
}

// TestMigrate: `sigil migrate` brings an empty PostgreSQL database (and a
// SQLite file) to the current schema; a server then starts on it; an
// unsupported --db is a local error (exit 1).
func TestMigrate(t *testing.T) {
	run := func(args ...string) (string, int) {
		t.Helper()
		out, err := exec.Command(sigilBin, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	dir := t.TempDir()
	if out, code := run("migrate", "--data", dir); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("sigil migrate (sqlite): exit %d %s", code, out)
	}
	if out, code := run("migrate", "--db", "mysql://root@localhost/x"); code != 1 || !strings.Contains(out, "unsupported --db") {
		t.Fatalf("unsupported --db: exit %d %s", code, out)
	}
	dsn := pgtest.FreshDatabase(t)
	for range 2 { // idempotent
		if out, code := run("migrate", "--db", dsn); code != 0 {
			t.Fatalf("sigil migrate (postgres): exit %d %s", code, out)
		}
	}
	in := startServerDB(t, filepath.Join(t.TempDir(), "data"), dsn)
	in.applyProfiles()
	in.mustCLI("cert", "issue", "--profile", "web", "--name", "migrated.test", "--key-out", filepath.Join(dir, "k.pem"), "--out", filepath.Join(dir, "c.pem"))
}
