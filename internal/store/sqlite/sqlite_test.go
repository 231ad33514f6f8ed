package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/storetest"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "sigil.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "dir with spaces?and#odd%chars", "sigil.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	c := &identity.Certificate{Serial: "abc", IssuerID: "i", Profile: "p", Status: identity.StatusPlanned,
		Requester: "r", KeyType: identity.KeyEd25519, SPKIFingerprint: "00", CreatedAt: time.Now()}
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.InsertCertificate(ctx, c); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, &audit.Event{Time: time.Now(), Actor: "a", Action: "cert.plan", Result: audit.ResultSuccess})
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	before := migrations(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.GetCertificate(ctx, "abc"); err != nil {
		t.Errorf("certificate lost on reopen: %v", err)
	}
	if seq, _, err := s.AuditHead(ctx); err != nil || seq != 1 {
		t.Errorf("AuditHead after reopen = %d, %v", seq, err)
	}
	after := migrations(t, s)
	if len(before) == 0 || strings.Join(before, ",") != strings.Join(after, ",") {
		t.Errorf("schema_migrations changed on reopen: %v → %v", before, after)
	}
	if ms, _ := store.LoadMigrations(migrationFS, "migrations"); len(after) != len(ms) {
		t.Errorf("%d migrations recorded, %d embedded", len(after), len(ms))
	}
}

// migrations lists "version@applied_at" rows, so a re-applied migration shows.
func migrations(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), "SELECT version || '@' || applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestPragmas(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		pragma string
		want   string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "synchronous", "1"}, // NORMAL
		{"writer", "foreign_keys", "1"},
		{"writer", "busy_timeout", "5000"},
		{"reader", "journal_mode", "wal"},
		{"reader", "query_only", "1"},
		{"reader", "foreign_keys", "1"},
		{"reader", "busy_timeout", "5000"},
	} {
		db := s.w
		if tc.name == "reader" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("%s PRAGMA %s: %v", tc.name, tc.pragma, err)
		}
		if !strings.EqualFold(got, tc.want) {
			t.Errorf("%s PRAGMA %s = %s, want %s", tc.name, tc.pragma, got, tc.want)
		}
	}
	if _, err := os.Stat(s.Path() + "-wal"); err != nil {
		t.Errorf("no WAL file next to the database: %v", err)
	}
	if fi, err := os.Stat(s.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// The reader pool refuses writes.
	if _, err := s.r.ExecContext(ctx, "DELETE FROM audit_head"); err == nil {
		t.Error("reader connection accepted a write")
	}
}

// TestReaderNotBlocked: a reader answers while the writer holds a transaction.
func TestReaderNotBlocked(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, _, err := s.AuditHead(rctx)
		return err
	})
	if err != nil {
		t.Fatalf("read during a write transaction: %v", err)
	}
}

func TestNestedUpdate(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		return s.Update(ctx, func(context.Context, store.Tx) error { return nil })
	})
	if err == nil {
		t.Fatal("nested Update succeeded; it should fail instead of deadlocking")
	}
}
