// Package pgtest gives tests a fresh PostgreSQL database of their own on the
// server named by SIGIL_TEST_POSTGRES_DSN, or skips them with a message
// saying how to enable them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DSNEnv names the variable holding the test server's DSN.
const DSNEnv = "SIGIL_TEST_POSTGRES_DSN"

// AdminDSN returns the DSN of a server the tests may create databases on,
// or skips the test.
func AdminDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(DSNEnv)
	if dsn == "" {
		t.Skip(DSNEnv + " not set; set it to a PostgreSQL DSN (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) to run the PostgreSQL store suite")
	}
	return dsn
}

// FreshDatabase creates an empty database, dropped when the test ends, and
// returns a DSN for it. A database per test (not a schema) keeps even the
// advisory locks of parallel tests apart.
func FreshDatabase(t *testing.T) string {
	t.Helper()
	return FreshDatabaseWith(t, "")
}

// FreshDatabaseWith passes options to CREATE DATABASE.
func FreshDatabaseWith(t *testing.T, options string) string {
	t.Helper()
	admin := AdminDSN(t)
	b := make([]byte, 8)
	rand.Read(b)
	name := "sigil_test_" + hex.EncodeToString(b)
	AdminExec(t, admin, "CREATE DATABASE "+name+" "+options)
	t.Cleanup(func() {
		// t.Context() is already cancelled here. FORCE ends any session a
		// failed test left behind.
		AdminExec(t, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDatabase(t, admin, name)
}

func AdminExec(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", DSNEnv, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// withDatabase points dsn (URL or keyword/value form) at database name.
func withDatabase(t *testing.T, dsn, name string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parsing %s: %v", DSNEnv, err)
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String()
	}
	return dsn + " dbname=" + name // a later keyword overrides an earlier one
}
