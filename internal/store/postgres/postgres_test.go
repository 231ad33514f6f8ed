package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
	"github.com/sigil-pki/sigil/internal/store/storetest"
)

func openFresh(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), pgtest.FreshDatabase(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	pgtest.AdminDSN(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
}

// icuOptions make a database whose default collation is linguistic (ICU
// en-US: case-insensitive at the first level, punctuation ordered apart from
// letters). The store must still filter and order byte-wise.
const icuOptions = "TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"

func TestConformanceLinguisticCollation(t *testing.T) {
	admin := pgtest.AdminDSN(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to %s: %v", pgtest.DSNEnv, err)
	}
	var icu bool
	err = conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int >= 150000 AND EXISTS (SELECT 1 FROM pg_collation WHERE collprovider = 'i')").Scan(&icu)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !icu {
		t.Skip("needs PostgreSQL 15+ built with ICU")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), pgtest.FreshDatabaseWith(t, icuOptions))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// migrationRows lists "version@applied_at" rows, so a re-applied migration shows.
func migrationRows(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), "SELECT version::text || '@' || applied_at::text FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	return out
}

// TestOpenConcurrent: replicas starting together on an empty database all
// open it, and the migrations are applied once.
func TestOpenConcurrent(t *testing.T) {
	dsn := pgtest.FreshDatabase(t)
	const n = 3
	stores := make([]*Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	done := make(chan int)
	for i := range n {
		go func() {
			<-start
			stores[i], errs[i] = Open(t.Context(), dsn)
			done <- i
		}()
	}
	close(start)
	for range n {
		<-done
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	rows := migrationRows(t, stores[0])
	if len(rows) != len(ms) {
		t.Fatalf("schema_migrations = %v, want %d rows", rows, len(ms))
	}
	var heads int
	if err := stores[0].pool.QueryRow(t.Context(), "SELECT count(*) FROM audit_head").Scan(&heads); err != nil || heads != 1 {
		t.Fatalf("audit_head has %d rows (%v), want 1", heads, err)
	}

	// Reopening is a no-op.
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if again := migrationRows(t, s); strings.Join(again, ",") != strings.Join(rows, ",") {
		t.Errorf("schema_migrations changed on reopen: %v → %v", rows, again)
	}
}

// TestNewerSchemaRefused: a database migrated by a newer build is not touched.
func TestNewerSchemaRefused(t *testing.T) {
	dsn := pgtest.FreshDatabase(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	_, err = s.pool.Exec(t.Context(), "INSERT INTO schema_migrations (version) VALUES (9999)")
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(t.Context(), dsn); err == nil {
		s.Close()
		t.Fatal("Open succeeded on a schema newer than this build")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open: %v, want a newer-schema error", err)
	}
}

func TestOpenBadDSN(t *testing.T) {
	if _, err := Open(t.Context(), "postgres://u:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"); err == nil {
		t.Fatal("Open succeeded against a closed port")
	} else if strings.Contains(err.Error(), "secret") {
		t.Errorf("error reveals the password: %v", err)
	}
}
