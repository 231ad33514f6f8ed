// Package sqlite is the single-file SQLite backend of store.Store, built on the
// pure-Go driver modernc.org/sqlite.
//
// The database runs in WAL mode with two handles: a writer limited to one
// connection, whose transactions begin IMMEDIATE so a transaction never has to
// upgrade a read lock (the cause of SQLITE_BUSY deadlocks), and a pool of
// query-only readers, which in WAL see the last commit without waiting for the
// writer.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sigil-pki/sigil/internal/store"
)

// busyTimeoutMS bounds how long a connection waits for a lock held by another
// process (another sigil on the same file, a backup tool) before SQLITE_BUSY.
const busyTimeoutMS = 5000

// maxReaders caps the reader pool: each connection holds three file
// descriptors and its own page cache.
const maxReaders = 32

// Writer pragmas. synchronous=NORMAL: in WAL mode a commit is appended to the
// WAL without fsync and the WAL is fsynced at checkpoints, so a committed
// transaction survives an application crash; only an OS crash or power loss
// can lose the last commits (never corrupt the file). FULL would fsync every
// commit and cap issuance at the disk's fsync rate.
// temp_store stays at its default (memory up to 64 KiB, then a temp file):
// MEMORY made a large member's savepoint journal cost quadratic time (SQLite
// walks its in-memory journal from the start at every statement end) and
// would hold a migration's index sorts in RAM.
var writerPragmas = []string{
	fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
	"foreign_keys(1)",
	"journal_mode(WAL)",
	"synchronous(NORMAL)",
}

// Readers are query_only so that a read method can never write by mistake.
var readerPragmas = []string{
	fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
	"foreign_keys(1)",
	"query_only(1)",
}

// Store is a store.Store backed by one SQLite file.
type Store struct {
	path  string
	w     *sql.DB // the single writer connection
	r     *sql.DB // reader pool
	stmts hotStmts

	gmu   sync.Mutex // guards group and serialises use of its transaction
	group *group     // the transaction concurrent Updates are joining, if any

	acmeStmts sync.Map // query → *sql.Stmt for the ACME hot path (acme.go)
}

var _ store.Store = (*Store)(nil)

// hotStmts are prepared once on the writer connection and reused by every
// transaction (sql.Tx.StmtContext finds the statement already prepared on the
// writer's only connection), sparing a parse per issuance.
type hotStmts struct {
	insertCert, markIssued, revoke  *sql.Stmt
	auditHead, insertAudit, setHead *sql.Stmt
	// On the reader pool: every API request looks up its token, every
	// OCSP request its certificate, every agent mTLS request its machine. database/sql prepares them once per
	// reader connection, sparing a SQL parse (~45 µs) per request.
	getToken, getCert, getMachine *sql.Stmt
	// Group commit wraps every Update in a savepoint: parse these once.
	savepoint, release, rollbackTo *sql.Stmt
}

// Open opens (creating if needed) the database at path, applies pending
// migrations and returns a Store. Close it when done.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: resolving %s: %w", path, err)
	}
	// Create the file owner-only before SQLite does: it holds token hashes and
	// the audit log, and SQLite gives the -wal and -shm files the same mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening %s: %w", path, err)
	}
	f.Close()

	s := &Store{path: path}
	if err := s.open(ctx, abs); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) open(ctx context.Context, abs string) error {
	var err error
	if s.w, err = sql.Open("sqlite", dsn(abs, writerPragmas, true)); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	// journal_mode(WAL) in the DSN does not report failure (e.g. a file system
	// without shared memory), so check what SQLite actually did.
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: opening %s: %w", s.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: %s: journal mode is %q, WAL is required", s.path, mode)
	}
	if err := migrate(ctx, s.w); err != nil {
		return err
	}

	if s.r, err = sql.Open("sqlite", dsn(abs, readerPragmas, false)); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	s.r.SetMaxOpenConns(maxReaders)
	// Keep every reader: a closed one takes its prepared statements with it,
	// and re-opening and re-parsing them cost ~9% of server CPU under load.
	s.r.SetMaxIdleConns(maxReaders)
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: opening reader: %w", err)
	}
	return s.prepare(ctx)
}

func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.stmts.insertCert, insertCertSQL},
		{&s.stmts.markIssued, markIssuedSQL},
		{&s.stmts.revoke, revokeSQL},
		{&s.stmts.auditHead, auditHeadSQL},
		{&s.stmts.insertAudit, insertAuditSQL},
		{&s.stmts.setHead, setHeadSQL},
		{&s.stmts.savepoint, "SAVEPOINT member"},
		{&s.stmts.release, "RELEASE member"},
		{&s.stmts.rollbackTo, "ROLLBACK TO member"},
	} {
		st, err := s.w.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("sqlite: preparing statement: %w", err)
		}
		*p.dst = st
	}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.stmts.getToken, "SELECT " + tokenColumns + " FROM tokens WHERE id = ?"},
		{&s.stmts.getCert, "SELECT " + certColumns + " FROM certificates WHERE serial = ?"},
		{&s.stmts.getMachine, "SELECT " + machineColumns + " FROM machines WHERE name = ?"},
	} {
		st, err := s.r.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("sqlite: preparing statement: %w", err)
		}
		*p.dst = st
	}
	return nil
}

// dsn builds a file: URI (so any path, even one holding '?' or '#', is
// escaped) carrying the driver's _pragma and _txlock parameters.
func dsn(abs string, pragmas []string, immediate bool) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	if immediate {
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// Path returns the database file path given to Open.
func (s *Store) Path() string { return s.path }

// Ping reports whether both handles can reach the database.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping writer: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping reader: %w", err)
	}
	return nil
}

// Close closes the database. Readers close first so that the writer, the last
// connection, checkpoints the WAL into the main file.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.stmts.insertCert, s.stmts.markIssued, s.stmts.revoke,
		s.stmts.auditHead, s.stmts.insertAudit, s.stmts.setHead, s.stmts.getToken, s.stmts.getCert, s.stmts.getMachine,
		s.stmts.savepoint, s.stmts.release, s.stmts.rollbackTo} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	return errors.Join(errs...)
}

// updateKey marks a context inside Update: a nested Update on the same Store
// would wait forever for the writer connection its caller holds.
type updateKey struct{}

// Update runs fn atomically on the writer connection, with group commit:
// concurrent Updates share one IMMEDIATE transaction, each inside its own
// SAVEPOINT, and one COMMIT makes them all durable. A caller whose fn fails
// is rolled back to its savepoint alone; a caller whose fn succeeds returns
// only after the shared COMMIT, and gets its error if that COMMIT fails.
// SQLite writes every modified page to the WAL at each commit, so sharing a
// commit among many issuances is what lets throughput scale with load; with
// a single caller it costs one SAVEPOINT more than a plain transaction.
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	if ctx.Value(updateKey{}) == s {
		return errors.New("sqlite: Update called inside Update on the same store")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.gmu.Lock()
	g := s.group
	if g != nil && g.broken {
		// The shared transaction was rolled back under its members: wait
		// for its leader to close it, then start afresh.
		s.gmu.Unlock()
		<-g.done
		return s.Update(ctx, fn)
	}
	leader := g == nil
	if leader {
		// context.Background: the group's transaction outlives any one caller.
		tx, err := s.w.BeginTx(context.Background(), nil)
		if err != nil {
			s.gmu.Unlock()
			return fmt.Errorf("sqlite: begin transaction: %w", err)
		}
		g = &group{tx: tx, done: make(chan struct{})}
		s.group = g
	}
	returned := false
	defer func() {
		if returned {
			return
		}
		// fn panicked; runMember rolled back its savepoint. Release the lock
		// and, as leader, still commit the others before the panic goes on.
		if leader {
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

// finish commits the group (or rolls it back when no member succeeded) and
// wakes the members waiting for the outcome.
func (g *group) finish() {
	if g.broken {
		_ = g.tx.Rollback()
		if g.members > 0 {
			g.err = errors.New("sqlite: the shared transaction was rolled back by an error in another update; nothing was committed")
		}
	} else if g.members == 0 {
		_ = g.tx.Rollback()
	} else if err := g.tx.Commit(); err != nil {
		g.err = fmt.Errorf("sqlite: commit: %w", err)
		_ = g.tx.Rollback()
	}
	close(g.done)
}

// group is a transaction shared by concurrent Updates.
type group struct {
	tx      *sql.Tx
	members int // fns that succeeded and await the commit
	done    chan struct{}
	err     error // the commit's outcome
	// broken: an error that makes SQLite roll back the whole transaction
	// (I/O, full disk, interrupt…) hit a member. Later statements would run
	// in autocommit mode, outside the group, so nobody may join after it.
	broken bool
}

// runMember runs fn inside a savepoint of the group's transaction. The caller
// holds s.gmu. A panicking fn is rolled back to its savepoint before the
// panic continues, so the shared transaction stays usable.
func (s *Store) runMember(ctx context.Context, g *group, fn func(ctx context.Context, tx store.Tx) error) (err error) {
	// SQLite answers an interrupt (a cancelled statement) inside a
	// transaction by rolling all of it back. While no other member's work is
	// in the transaction that only costs this caller (the group is marked
	// broken and newcomers start afresh), so a slow statement stays
	// cancellable; once others have work in it, this caller's statements run
	// to completion and a caller that gave up is rolled back to its
	// savepoint when its fn returns.
	caller := ctx
	if g.members > 0 {
		ctx = context.WithoutCancel(ctx)
	}
	defer func() {
		if err != nil && rollsBackTransaction(err) {
			g.broken = true
		}
	}()
	if _, err := g.tx.StmtContext(ctx, s.stmts.savepoint).ExecContext(ctx); err != nil {
		return fmt.Errorf("sqlite: savepoint: %w", err)
	}
	ok := false
	defer func() {
		if ok {
			return
		}
		// fn failed or panicked: undo its writes only.
		bg := context.Background()
		if _, rbErr := g.tx.StmtContext(bg, s.stmts.rollbackTo).ExecContext(bg); rbErr != nil && err != nil {
			err = errors.Join(err, fmt.Errorf("sqlite: rollback: %w", rbErr))
		}
		_, _ = g.tx.StmtContext(bg, s.stmts.release).ExecContext(bg)
	}()
	if err := fn(context.WithValue(ctx, updateKey{}, s), &txn{s: s, tx: g.tx}); err != nil {
		return err
	}
	if err := caller.Err(); err != nil {
		return err
	}
	if _, err := g.tx.StmtContext(ctx, s.stmts.release).ExecContext(ctx); err != nil {
		return fmt.Errorf("sqlite: release savepoint: %w", err)
	}
	ok = true
	g.members++
	return nil
}

// rollsBackTransaction reports a SQLite error after which SQLite may have
// rolled back the whole transaction. Only constraint violations are known to
// undo just the failing statement.
func rollsBackTransaction(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code()&0xff != sqlite3.SQLITE_CONSTRAINT
}

// txn implements store.Tx on an open writer transaction.
type txn struct {
	s  *Store
	tx *sql.Tx
}

func (t *txn) stmt(ctx context.Context, st *sql.Stmt) *sql.Stmt { return t.tx.StmtContext(ctx, st) }

// isUnique reports a UNIQUE or PRIMARY KEY constraint violation.
func isUnique(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// writeErr wraps a write error, mapping unique violations to store.ErrConflict.
func writeErr(err error, what string) error {
	if isUnique(err) {
		return fmt.Errorf("%w: %s already exists", store.ErrConflict, what)
	}
	return fmt.Errorf("sqlite: writing %s: %w", what, err)
}

// readErr wraps a read error, mapping sql.ErrNoRows to store.ErrNotFound.
func readErr(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", store.ErrNotFound, what)
	}
	return fmt.Errorf("sqlite: reading %s: %w", what, err)
}

// affected returns the rows changed by an UPDATE or DELETE.
func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// Times are unix microseconds UTC; the zero time is NULL.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// ceilMicros rounds t up to a microsecond, so a filter bound between two
// stored microseconds compares correctly: x >= t ⇔ x >= ceil(t), x < t ⇔ x < ceil(t).
// Bounds compared with > use t.UnixMicro(), which rounds down.
func ceilMicros(t time.Time) int64 {
	m := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		m++
	}
	return m
}

func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

// blob stores empty byte slices as NULL; nilIfEmpty reads them back as nil.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// jsonText encodes a non-empty map or slice as JSON text; empty ones are NULL.
func jsonText[T any](v T, n int) (any, error) {
	if n == 0 {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func fromJSON(s sql.NullString, dst any) error {
	if !s.Valid || s.String == "" {
		return nil
	}
	return json.Unmarshal([]byte(s.String), dst)
}

// limitClause appends LIMIT for a positive limit.
func limitClause(q string, args []any, limit int) (string, []any) {
	if limit > 0 {
		return q + " LIMIT ?", append(args, limit)
	}
	return q, args
}

// where joins filter conditions.
func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// serialOrder sorts canonical serials (lowercase hex, no leading zeros)
// numerically: a shorter one is smaller, equal lengths compare as text.
const serialOrder = "length(serial), serial"
