package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigil-pki/sigil/internal/store"
)

// Migrations are numbered SQL files, NNNN_description.SQL, applied in order.
// Never edit one that has shipped: add a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockKey is the pg_advisory_xact_lock key ("sigil" + 1) that
// serialises migrations: replicas starting together queue on it, and each
// one after the first finds every migration already recorded. Advisory keys
// are per database, so stores in different schemas of one database merely
// take turns.
const migrateLockKey int64 = 0x7369_6769_6c00_0001

// migrate applies pending migrations in one transaction holding the
// migration advisory lock. PostgreSQL DDL is transactional, so a failing
// migration leaves the schema as it was, and a replica waiting on the lock
// sees (READ COMMITTED: each statement takes a new snapshot) everything the
// previous holder committed.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // no-op after Commit

	// Taken before anything else: even CREATE TABLE IF NOT EXISTS races
	// (unique violation in pg_type) when two sessions run it at once.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
		return fmt.Errorf("postgres: migrate: taking the migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	rows, err := tx.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	applied := map[int]bool{}
	for _, v := range versions {
		applied[int(v)] = true
	}

	latest := 0
	if len(ms) > 0 {
		latest = ms[len(ms)-1].Version
	}
	for v := range applied {
		if v > latest {
			// Written by a newer sigil: running old code on it could corrupt it.
			return fmt.Errorf("postgres: database schema version %d is newer than this build supports (%d)", v, latest)
		}
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		// No arguments: pgx sends it with the simple protocol, which
		// accepts several statements in one string.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", m.Version); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: commit: %w", err)
	}
	return nil
}
