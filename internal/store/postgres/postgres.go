// Package postgres is the PostgreSQL backend of store.Store, for running
// several Sigil replicas against one database. It uses pgx/v5 with a
// connection pool (pgxpool).
//
// Unlike the SQLite backend there is no group commit: PostgreSQL runs
// concurrent transactions itself. Every Update is one READ COMMITTED
// transaction; the only point where writers queue is the audit chain head,
// whose single row AppendAudit locks FOR UPDATE until commit, so appenders in
// all processes are serialised and the chain never forks.
//
// Tables are referenced unqualified, so the DSN's search_path (e.g.
// options=-c%20search_path%3Dsigil) selects the schema. Pool size comes from
// the DSN's pool_max_conns (pgxpool default: max(4, NumCPU)). The store's own
// locks are transaction-scoped (row locks, pg_advisory_xact_lock); only the
// background-job lease (lease.go) holds a session-level advisory lock on a
// connection of its own, so it needs a real PostgreSQL session, not a
// transaction-mode pooler such as PgBouncer.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigil-pki/sigil/internal/store"
)

// finishTimeout bounds COMMIT and ROLLBACK, which run detached from the
// caller's context (see Update).
const finishTimeout = 30 * time.Second

// Store is a store.Store backed by a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a URL or keyword/value string, as
// understood by pgx), applies pending migrations and returns a Store. Close
// it when done.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parsing DSN: %w", err) // pgconn redacts the password
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// Ping reports whether a pooled connection can reach the database.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// updateKey marks a context inside Update. A nested Update would run in a
// second, independent transaction that cannot see the first's writes and may
// wait forever on a lock the first holds (the audit head), so it is refused.
type updateKey struct{}

// Update runs fn in one READ COMMITTED transaction on a pooled connection and
// commits it if fn returns nil; otherwise, or if fn panics, it rolls back
// (and the panic continues). fn should read through tx-bound methods only:
// calling s's Reader methods inside fn takes a second pooled connection.
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	if ctx.Value(updateKey{}) == s {
		return errors.New("postgres: Update called inside Update on the same store")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("postgres: begin transaction: %w", err)
	}
	// COMMIT and ROLLBACK ignore the caller's cancellation: a cancelled
	// COMMIT leaves the outcome unknown to the caller, and a cancelled
	// ROLLBACK costs the pool its connection.
	finish, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	done := false
	defer func() {
		if !done { // fn failed or panicked
			_ = tx.Rollback(finish)
		}
	}()
	if err := fn(context.WithValue(ctx, updateKey{}, s), &txn{tx: tx}); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(finish); err != nil {
		// pgx rolls back (ErrTxCommitRollback) if a statement failed in fn
		// but fn returned nil anyway.
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// txn implements store.Tx on an open transaction.
type txn struct {
	tx pgx.Tx
}

// isUnique reports a unique_violation (a UNIQUE or PRIMARY KEY constraint).
func isUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

// writeErr wraps a write error, mapping unique violations to store.ErrConflict.
func writeErr(err error, what string) error {
	if isUnique(err) {
		return fmt.Errorf("%w: %s already exists", store.ErrConflict, what)
	}
	return fmt.Errorf("postgres: writing %s: %w", what, err)
}

// readErr wraps a read error, mapping pgx.ErrNoRows to store.ErrNotFound.
func readErr(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s", store.ErrNotFound, what)
	}
	return fmt.Errorf("postgres: reading %s: %w", what, err)
}

// queryAll runs q and scans every row with scan.
func queryAll[T any](ctx context.Context, pool *pgxpool.Pool, what, q string, scan func(pgx.Row) (T, error), args ...any) ([]T, error) {
	rows, err := pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: listing %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: listing %s: %w", what, err)
	}
	return out, nil
}

// ts converts a time for storage: UTC truncated to the microsecond (what
// timestamptz holds, so it round-trips exactly); the zero time is NULL.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return floorMicros(t)
}

func floorMicros(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()).UTC() }

// ceilMicros rounds t up to a microsecond, so a filter bound between two
// stored microseconds compares correctly: x >= t ⇔ x >= ceil(t), x < t ⇔ x < ceil(t).
// Bounds compared with > use floorMicros.
func ceilMicros(t time.Time) time.Time {
	m := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		m++
	}
	return time.UnixMicro(m).UTC()
}

// fromTS reads a nullable timestamptz; pgx decodes into time.Local.
func fromTS(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// blob stores empty byte slices as NULL; nilIfEmpty reads them back as nil.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// textArray stores an empty list as NULL, like the SQLite backend.
func textArray(l []string) any {
	if len(l) == 0 {
		return nil
	}
	return l
}

// whereClause numbers placeholders as conditions are added.
type whereClause struct {
	conds []string
	args  []any
}

// add appends a condition whose "?" placeholders take args in order.
func (w *whereClause) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *whereClause) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// limit appends LIMIT for a positive limit.
func (w *whereClause) limit(q string, n int) string {
	if n <= 0 {
		return q
	}
	w.args = append(w.args, n)
	return fmt.Sprintf("%s LIMIT $%d", q, len(w.args))
}

// serialOrder sorts canonical serials (lowercase hex, no leading zeros)
// numerically: a shorter one is smaller, equal lengths compare byte-wise
// (the column is COLLATE "C").
const serialOrder = "length(serial), serial"
