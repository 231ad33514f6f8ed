package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/store"
)

const (
	auditHeadSQL = "SELECT seq, hash FROM audit_head WHERE id = 1"
	// FOR UPDATE makes the head row the chain's write lock, across every
	// process on the database: a second appender blocks here until the
	// holder commits or rolls back, and under READ COMMITTED then reads the
	// head the holder committed. The lock lasts until the end of the
	// transaction, so callers should append their audit event last.
	lockHeadSQL    = auditHeadSQL + " FOR UPDATE"
	insertAuditSQL = `INSERT INTO audit_events (seq, "time", actor, action, object, result, detail, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	// The group moves the head once, just before COMMIT (group.finish): one
	// UPDATE per transaction rather than a new row version per event.
	setHeadSQL = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1"
)

const auditColumns = `seq, "time", actor, action, object, result, detail, prev_hash, hash`

// AppendAudit seals e after the locked head row and inserts it, moving the
// head in the same transaction.
func (t *txn) AppendAudit(ctx context.Context, e *audit.Event) error {
	if err := t.appendAudit(ctx, e); err != nil {
		return fmt.Errorf("%w: postgres: appending audit event: %w", audit.ErrUnavailable, err)
	}
	return nil
}

func (t *txn) appendAudit(ctx context.Context, e *audit.Event) error {
	if e == nil {
		return errors.New("nil event")
	}
	return t.writeAfterHead(ctx, e, "append", func(headSeq int64, headHash string) error {
		var prev *audit.Event
		if headSeq > 0 {
			prev = &audit.Event{Seq: headSeq, Hash: headHash}
		}
		e.Seal(prev)
		return nil
	})
}

// writeAfterHead lets place fill in or check e against the head (locked by
// the group's transaction, see Store.begin) and inserts e; the group records
// the new head, which it writes before committing.
func (t *txn) writeAfterHead(ctx context.Context, e *audit.Event, what string, place func(headSeq int64, headHash string) error) error {
	if err := place(t.g.headSeq, t.g.headHash); err != nil {
		return err
	}
	if _, err := t.tx.Exec(ctx, insertAuditSQL,
		e.Seq, e.Time.UTC(), e.Actor, e.Action, e.Object, e.Result, e.Detail, e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	t.g.headSeq, t.g.headHash = e.Seq, e.Hash
	return nil
}

// ImportAuditEvent inserts an event sealed elsewhere, unchanged, if it
// extends the locked head exactly (store.CheckImportedEvent), and moves the head.
func (t *txn) ImportAuditEvent(ctx context.Context, e *audit.Event) error {
	if err := t.importAudit(ctx, e); err != nil {
		return fmt.Errorf("%w: postgres: importing audit event: %w", audit.ErrUnavailable, err)
	}
	return nil
}

func (t *txn) importAudit(ctx context.Context, e *audit.Event) error {
	return t.writeAfterHead(ctx, e, "import", func(headSeq int64, headHash string) error {
		return store.CheckImportedEvent(e, headSeq, headHash)
	})
}

func scanEvent(row pgx.Row) (*audit.Event, error) {
	var e audit.Event
	var at pgtype.Timestamptz
	if err := row.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.Result, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
		return nil, err
	}
	e.Time = fromTS(at)
	return &e, nil
}

// ListAudit filters on Since inclusive and Until exclusive, so consecutive
// windows neither overlap nor leave gaps.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]*audit.Event, error) {
	var w whereClause
	if f.Actor != "" {
		w.add("actor = ?", f.Actor)
	}
	if prefix, ok := strings.CutSuffix(f.Action, "."); ok {
		// A byte range rather than LIKE, which treats '_' as a wildcard:
		// "cert." matches ["cert.", "cert/"). Byte-wise because the column
		// is COLLATE "C".
		w.add("action >= ? AND action < ?", f.Action, prefix+"/")
	} else if f.Action != "" {
		w.add("action = ?", f.Action)
	}
	if !f.Since.IsZero() {
		w.add(`"time" >= ?`, ceilMicros(f.Since))
	}
	if !f.Until.IsZero() {
		w.add(`"time" < ?`, ceilMicros(f.Until))
	}
	if f.AfterSeq > 0 {
		w.add("seq > ?", f.AfterSeq)
	}
	q := w.limit("SELECT "+auditColumns+" FROM audit_events"+w.String()+" ORDER BY seq", f.Limit)
	return queryAll(ctx, s.pool, "audit events", q, scanEvent, w.args...)
}

// WalkAudit streams events from one statement, hence one snapshot: events
// committed during the walk are not seen.
func (s *Store) WalkAudit(ctx context.Context, fn func(*audit.Event) error) error {
	rows, err := s.pool.Query(ctx, "SELECT "+auditColumns+" FROM audit_events ORDER BY seq")
	if err != nil {
		return fmt.Errorf("postgres: walking audit events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("postgres: walking audit events: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: walking audit events: %w", err)
	}
	return nil
}

// AuditHead reads the committed head without locking it, so it never waits
// for an appender.
func (s *Store) AuditHead(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	if err := s.pool.QueryRow(ctx, auditHeadSQL).Scan(&seq, &hash); err != nil {
		return 0, "", fmt.Errorf("postgres: reading audit head: %w", err)
	}
	return seq, hash, nil
}
