// Package postgres is the PostgreSQL backend of store.Store, for running
// several Sigil replicas against one database. It uses pgx/v5 with a
// connection pool (pgxpool).
//
// Like the SQLite backend it commits in groups (see Update): the audit chain
// head is a single row every audited write locks FOR UPDATE until commit, so
// appenders in all processes are serialised and the chain never forks, and
// without grouping each of them would wait for the previous one's WAL flush.
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
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/store"
)

// finishTimeout bounds COMMIT and ROLLBACK, which run detached from the
// caller's context (see Update).
const finishTimeout = 30 * time.Second

// Store is a store.Store backed by a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool

	gmu   sync.Mutex // guards group and serialises use of its transaction
	group *group     // the transaction concurrent Updates are joining, if any
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

// updateKey marks a context inside Update. A nested Update would join (or
// wait for) the group its caller's transaction belongs to, so it is refused.
type updateKey struct{}

// maxGroup caps the members of one shared transaction. Each member runs in a
// savepoint, hence a subtransaction, and PostgreSQL tracks at most 64
// subtransactions per backend in shared memory before every snapshot in the
// cluster gets slower (subxid overflow).
const maxGroup = 60

// Update runs fn atomically, with group commit: concurrent Updates in this
// process share one READ COMMITTED transaction, each inside its own SAVEPOINT,
// and one COMMIT (one WAL flush) makes them all durable. A caller whose fn
// fails is rolled back to its savepoint alone; a caller whose fn succeeds
// returns only after the shared COMMIT, and gets its error if that COMMIT
// fails.
//
// Every group first locks the audit chain's head row, before any member runs.
// The head is what all audited writes queue on anyway (across processes), so
// this costs no concurrency, and it fixes one lock order for every
// transaction: head first, then whatever a member takes (e.g. a CRL's
// advisory lock). Without it two groups on two replicas could take the head
// and a CRL lock in opposite orders and deadlock. Holding the lock, the group
// also knows the head and appends events without reading it again.
//
// fn should read through tx-bound methods only: calling s's Reader methods
// inside fn takes a second pooled connection and does not see the group's
// uncommitted writes.
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	if ctx.Value(updateKey{}) == s {
		return errors.New("postgres: Update called inside Update on the same store")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.gmu.Lock()
	g := s.group
	if g != nil && (g.broken || g.members+g.failed >= maxGroup) {
		// Full, or its transaction is unusable: wait for its leader to
		// close it, then start afresh.
		s.gmu.Unlock()
		select {
		case <-g.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		return s.Update(ctx, fn)
	}
	leader := g == nil
	if leader {
		var err error
		if g, err = s.begin(ctx); err != nil {
			s.gmu.Unlock()
			return err
		}
		s.group = g
	}
	returned := false
	defer func() {
		if returned {
			return
		}
		// fn panicked; runMember rolled back its savepoint. Release the lock
		// and, as leader, still commit the others before the panic goes on.
		if leader && s.group == g {
			s.group = nil
		}
		s.gmu.Unlock()
		if leader {
			g.finish()
		}
	}()
	err := s.runMember(ctx, g, fn)
	returned = true
	if !leader {
		s.gmu.Unlock()
		if err != nil {
			return err
		}
		<-g.done
		return g.err
	}
	// The leader lets queued callers join, then commits for everyone.
	s.gmu.Unlock()
	runtime.Gosched()
	s.gmu.Lock()
	s.group = nil
	s.gmu.Unlock()
	g.finish()
	if err != nil {
		return err
	}
	return g.err
}

// begin starts a group's transaction and locks the audit head. The
// transaction outlives any one caller, so only the wait for the connection
// and the lock honours ctx (the leader's).
func (s *Store) begin(ctx context.Context) (*group, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: begin transaction: %w", err)
	}
	bg := context.WithoutCancel(ctx)
	tx, err := conn.BeginTx(bg, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		conn.Release()
		return nil, fmt.Errorf("postgres: begin transaction: %w", err)
	}
	g := &group{conn: conn, tx: tx, done: make(chan struct{})}
	if err := tx.QueryRow(ctx, lockHeadSQL).Scan(&g.headSeq, &g.headHash); err != nil {
		g.broken = true
		g.finish()
		return nil, fmt.Errorf("%w: postgres: locking the audit head: %w", audit.ErrUnavailable, err)
	}
	g.lockedSeq = g.headSeq
	return g, nil
}

// group is a transaction shared by concurrent Updates.
type group struct {
	conn    *pgxpool.Conn
	tx      pgx.Tx
	members int // fns that succeeded and await the commit
	failed  int // fns rolled back to their savepoint
	done    chan struct{}
	err     error // the commit's outcome
	// broken: the transaction cannot go on (a savepoint could not be rolled
	// back, the connection failed): nobody may join, nothing is committed.
	broken bool
	// The audit chain head as of this transaction's writes; the row is
	// locked by begin, so no other transaction can move it.
	headSeq   int64
	headHash  string
	lockedSeq int64 // the head's seq when locked: finish writes it back if it moved
}

// finish commits the group (or rolls it back when no member succeeded),
// returns its connection and wakes the members waiting for the outcome.
// COMMIT and ROLLBACK are bounded by finishTimeout but ignore callers'
// cancellation: a cancelled COMMIT leaves the outcome unknown.
func (g *group) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	switch {
	case g.broken:
		_ = g.tx.Rollback(ctx)
		if g.members > 0 {
			g.err = errors.New("postgres: the shared transaction failed in another update; nothing was committed")
		}
	case g.members == 0:
		_ = g.tx.Rollback(ctx)
	default:
		if g.headSeq != g.lockedSeq {
			if _, err := g.tx.Exec(ctx, setHeadSQL, g.headSeq, g.headHash); err != nil {
				_ = g.tx.Rollback(ctx)
				g.err = fmt.Errorf("%w: postgres: moving the audit head: %w", audit.ErrUnavailable, err)
				break
			}
		}
		if err := g.tx.Commit(ctx); err != nil {
			// pgx rolls back (ErrTxCommitRollback) if the transaction was
			// aborted by a failed statement outside any savepoint.
			g.err = fmt.Errorf("postgres: commit: %w", err)
		}
	}
	g.conn.Release()
	close(g.done)
}

// runMember runs fn as one member of the group's transaction. The caller
// holds s.gmu. The first member (the leader) runs in the transaction itself:
// if it fails, nobody else has work in it, so the group is rolled back whole
// and closed to newcomers. Every later member runs inside a savepoint, which
// is never released (a RELEASE costs a round trip and gains nothing: the
// next member's savepoint nests inside it, and ROLLBACK TO names the newest),
// so a failing member undoes only its own writes.
//
// fn's statements run detached from the caller's cancellation: pgx answers a
// cancelled query by closing the connection, which would take every other
// member's work with it. A caller that gave up is rolled back when fn returns.
func (s *Store) runMember(ctx context.Context, g *group, fn func(ctx context.Context, tx store.Tx) error) (err error) {
	caller := ctx
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	first := g.members+g.failed == 0
	if !first {
		if _, err := g.tx.Exec(ctx, "SAVEPOINT member"); err != nil {
			g.broken = true
			return fmt.Errorf("postgres: savepoint: %w", err)
		}
	}
	headSeq, headHash := g.headSeq, g.headHash
	ok := false
	defer func() {
		if ok {
			return
		}
		// fn failed or panicked: undo its writes only.
		g.failed++
		g.headSeq, g.headHash = headSeq, headHash
		if first {
			g.broken = true // finish rolls the transaction back
			return
		}
		if _, rbErr := g.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT member"); rbErr != nil {
			g.broken = true
			if err != nil {
				err = errors.Join(err, fmt.Errorf("postgres: rollback: %w", rbErr))
			}
		}
	}()
	if err := fn(context.WithValue(ctx, updateKey{}, s), &txn{tx: g.tx, g: g}); err != nil {
		return err
	}
	if err := caller.Err(); err != nil {
		return err
	}
	ok = true
	g.members++
	return nil
}

// txn implements store.Tx on a member of a group's transaction.
type txn struct {
	tx pgx.Tx
	g  *group
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
