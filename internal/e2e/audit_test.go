package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // database/sql driver "sqlite": the test edits the file as an attacker would

	"github.com/sigil-pki/sigil/internal/api"
)

// auditRow is one audit_events row, every column.
type auditRow struct {
	seq                                                  int64
	time                                                 int64
	actor, action, object, result, detail, prev, hashHex string
}

const auditCols = "seq, time, actor, action, object, result, detail, prev_hash, hash"

func readRow(t *testing.T, db *sql.DB, seq int64) auditRow {
	t.Helper()
	var r auditRow
	err := db.QueryRow("SELECT "+auditCols+" FROM audit_events WHERE seq = ?", seq).
		Scan(&r.seq, &r.time, &r.actor, &r.action, &r.object, &r.result, &r.detail, &r.prev, &r.hashHex)
	if err != nil {
		t.Fatalf("reading audit row %d: %v", seq, err)
	}
	return r
}

// writeRow stores r's content under seq, replacing whatever is there.
func writeRow(t *testing.T, db *sql.DB, seq int64, r auditRow) {
	t.Helper()
	if _, err := db.Exec("INSERT OR REPLACE INTO audit_events ("+auditCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		seq, r.time, r.actor, r.action, r.object, r.result, r.detail, r.prev, r.hashHex); err != nil {
		t.Fatalf("writing audit row %d: %v", seq, err)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestAuditTamperDetected: rows of the audit log edited, removed or swapped
// in the SQLite file behind the running server's back make `sigil audit
// verify` fail (exit 2) and name the first bad event; restoring them makes
// it pass again.
func TestAuditTamperDetected(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	in.applyProfiles()
	work := t.TempDir()
	for _, name := range []string{"a.test", "b.test"} {
		in.mustCLI("cert", "issue", "--profile", "web", "--name", name, "--key-out", filepath.Join(work, name+".key"), "--out", filepath.Join(work, name+".crt"))
	}
	verifyOK := func(when string) {
		t.Helper()
		out, errOut, code := in.cli("audit", "verify")
		if code != 0 || !strings.Contains(out, "OK") {
			t.Fatalf("%s: audit verify: exit %d\n%s%s", when, code, out, errOut)
		}
	}
	verifyOK("untouched")

	// WAL mode lets a second connection write while the server runs.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(in.dir, "sigil.db")), RawQuery: "_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var head int64
	if err := db.QueryRow("SELECT seq FROM audit_head").Scan(&head); err != nil {
		t.Fatal(err)
	}
	if head < 6 {
		t.Fatalf("only %d audit events; the test needs a longer chain", head)
	}

	cases := []struct {
		name    string
		tamper  func(t *testing.T) (restore func())
		brokeAt func() int64
		reason  string
	}{
		{"edited actor", func(t *testing.T) func() {
			orig := readRow(t, db, 3)
			mustExec(t, db, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
			return func() { writeRow(t, db, 3, orig) }
		}, func() int64 { return 3 }, "edited"},
		{"edited detail", func(t *testing.T) func() {
			orig := readRow(t, db, 4)
			mustExec(t, db, "UPDATE audit_events SET detail = '{}' WHERE seq = 4")
			return func() { writeRow(t, db, 4, orig) }
		}, func() int64 { return 4 }, "edited"},
		{"removed middle row", func(t *testing.T) func() {
			orig := readRow(t, db, 3)
			mustExec(t, db, "DELETE FROM audit_events WHERE seq = 3")
			return func() { writeRow(t, db, 3, orig) }
		}, func() int64 { return 4 }, "expected event 3"},
		{"swapped rows", func(t *testing.T) func() {
			r3, r4 := readRow(t, db, 3), readRow(t, db, 4)
			writeRow(t, db, 3, r4)
			writeRow(t, db, 4, r3)
			return func() { writeRow(t, db, 3, r3); writeRow(t, db, 4, r4) }
		}, func() int64 { return 3 }, "removed or reordered"},
		{"removed newest row", func(t *testing.T) func() {
			var last int64
			if err := db.QueryRow("SELECT max(seq) FROM audit_events").Scan(&last); err != nil {
				t.Fatal(err)
			}
			head = last
			orig := readRow(t, db, last)
			mustExec(t, db, "DELETE FROM audit_events WHERE seq = ?", last)
			return func() { writeRow(t, db, last, orig) }
		}, func() int64 { return head }, "newest events were removed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			restore := c.tamper(t)
			out, errOut, code := in.cli("audit", "verify")
			want := fmt.Sprintf("audit chain broken at event %d", c.brokeAt())
			if code != 2 || !strings.Contains(errOut, want) || !strings.Contains(errOut, c.reason) {
				t.Errorf("audit verify after tampering: exit %d, stdout %q, stderr %q; want exit 2 naming %q (%s)", code, out, errOut, want, c.reason)
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") != 0 || strings.Contains(out, "OK") {
				t.Errorf("want one line on stderr and no OK on stdout: %q / %q", errOut, out)
			}
			// JSON output carries the same verdict.
			jout, _, jcode := in.cli("audit", "verify", "-o", "json")
			var v api.VerifyResponse
			if err := json.Unmarshal([]byte(jout), &v); err != nil || jcode != 2 || v.OK || v.BrokenAt != c.brokeAt() {
				t.Errorf("audit verify -o json: exit %d, %+v (%v); want ok=false broken_at=%d", jcode, v, err, c.brokeAt())
			}
			restore()
			verifyOK("restored")
		})
	}
	// The log still grows normally after all that.
	in.mustCLI("cert", "issue", "--profile", "web", "--name", "c.test", "--key-out", filepath.Join(work, "c.key"), "--out", filepath.Join(work, "c.crt"))
	verifyOK("final")
}
