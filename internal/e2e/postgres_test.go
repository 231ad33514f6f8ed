package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
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

// TestSimultaneousFirstStart: three servers starting at once on an empty
// database and a shared data directory end up with one CA, not three.
func TestSimultaneousFirstStart(t *testing.T) {
	dsn := pgtest.FreshDatabase(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The KEK is provisioned before the servers start, as in production.
	if _, err := keys.GenerateKEKFile(filepath.Join(dir, "kek.key")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ins := make([]*instance, 3)
	for i := range ins {
		wg.Go(func() { ins[i] = startServerDB(t, dir, dsn) })
	}
	wg.Wait()
	issuers, err := ins[0].srv.Store().ListIssuers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(issuers) != 2 {
		t.Fatalf("%d issuers after a simultaneous first start, want 2 (one root, one intermediate)", len(issuers))
	}
	for _, in := range ins {
		for _, iss := range in.srv.RA().CA().Issuers() {
			if iss.ID != issuers[0].ID && iss.ID != issuers[1].ID {
				t.Fatalf("a server loaded issuer %q that is not in the store", iss.ID)
			}
		}
	}
	tokens, _ := ins[0].srv.Store().ListTokens(context.Background())
	if len(tokens) != 1 {
		t.Fatalf("%d admin tokens, want 1", len(tokens))
	}
}
