package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/store"
)

const (
	auditHeadSQL   = "SELECT seq, hash FROM audit_head WHERE id = 1"
	insertAuditSQL = `INSERT INTO audit_events (seq, time, actor, action, object, result, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// The seq guard turns a head that moved under us into an error instead of
	// a fork; it cannot happen while the writer transaction is exclusive.
	setHeadSQL = "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1 AND seq = ?"
)

const auditColumns = "seq, time, actor, action, object, result, detail, prev_hash, hash"

// AppendAudit seals e after the head row and inserts it, moving the head in
// the same transaction. The writer transaction is the chain's write lock.
func (t *txn) AppendAudit(ctx context.Context, e *audit.Event) error {
	if err := t.appendAudit(ctx, e); err != nil {
		return fmt.Errorf("%w: sqlite: appending audit event: %w", audit.ErrUnavailable, err)
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

// writeAfterHead reads the head, lets place fill in or check e against it,
// inserts e and moves the head (only if it is still where it was read).
func (t *txn) writeAfterHead(ctx context.Context, e *audit.Event, what string, place func(headSeq int64, headHash string) error) error {
	var headSeq int64
	var headHash string
	if err := t.stmt(ctx, t.s.stmts.auditHead).QueryRowContext(ctx).Scan(&headSeq, &headHash); err != nil {
		return fmt.Errorf("reading head: %w", err)
	}
	if err := place(headSeq, headHash); err != nil {
		return err
	}
	if _, err := t.stmt(ctx, t.s.stmts.insertAudit).ExecContext(ctx,
		e.Seq, e.Time.UnixMicro(), e.Actor, e.Action, e.Object, e.Result, e.Detail, e.PrevHash, e.Hash); err != nil {
		return err
	}
	n, err := affected(t.stmt(ctx, t.s.stmts.setHead).ExecContext(ctx, e.Seq, e.Hash, headSeq))
	if err != nil {
		return fmt.Errorf("moving head: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("head moved from event %d during %s", headSeq, what)
	}
	return nil
}

// ImportAuditEvent inserts an event sealed elsewhere, unchanged, if it
// extends the head exactly (store.CheckImportedEvent), and moves the head.
func (t *txn) ImportAuditEvent(ctx context.Context, e *audit.Event) error {
	if err := t.importAudit(ctx, e); err != nil {
		return fmt.Errorf("%w: sqlite: importing audit event: %w", audit.ErrUnavailable, err)
	}
	return nil
}

func (t *txn) importAudit(ctx context.Context, e *audit.Event) error {
	return t.writeAfterHead(ctx, e, "import", func(headSeq int64, headHash string) error {
		return store.CheckImportedEvent(e, headSeq, headHash)
	})
}

func scanEvent(sc scanner) (*audit.Event, error) {
	var e audit.Event
	var at int64
	if err := sc.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.Result, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
		return nil, err
	}
	e.Time = time.UnixMicro(at).UTC()
	return &e, nil
}

// ListAudit filters on Since inclusive and Until exclusive, so consecutive
// windows neither overlap nor leave gaps.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]*audit.Event, error) {
	var conds []string
	var args []any
	if f.Actor != "" {
		conds, args = append(conds, "actor = ?"), append(args, f.Actor)
	}
	if prefix, ok := strings.CutSuffix(f.Action, "."); ok {
		// A byte range rather than LIKE, which is case-insensitive and treats
		// '_' as a wildcard: "cert." matches ["cert.", "cert/").
		conds, args = append(conds, "action >= ? AND action < ?"), append(args, f.Action, prefix+"/")
	} else if f.Action != "" {
		conds, args = append(conds, "action = ?"), append(args, f.Action)
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "time >= ?"), append(args, ceilMicros(f.Since))
	}
	if !f.Until.IsZero() {
		conds, args = append(conds, "time < ?"), append(args, ceilMicros(f.Until))
	}
	if f.AfterSeq > 0 {
		conds, args = append(conds, "seq > ?"), append(args, f.AfterSeq)
	}
	q := "SELECT " + auditColumns + " FROM audit_events" + where(conds) + " ORDER BY seq"
	q, args = limitClause(q, args, f.Limit)
	return queryAll(ctx, s.r, "audit events", q, scanEvent, args...)
}

// WalkAudit streams events from one read snapshot: events committed during
// the walk are not seen, and the walk never waits for the writer.
func (s *Store) WalkAudit(ctx context.Context, fn func(*audit.Event) error) error {
	rows, err := s.r.QueryContext(ctx, "SELECT "+auditColumns+" FROM audit_events ORDER BY seq")
	if err != nil {
		return fmt.Errorf("sqlite: walking audit events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("sqlite: walking audit events: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: walking audit events: %w", err)
	}
	return nil
}

func (s *Store) AuditHead(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	if err := s.r.QueryRowContext(ctx, auditHeadSQL).Scan(&seq, &hash); err != nil {
		return 0, "", fmt.Errorf("sqlite: reading audit head: %w", err)
	}
	return seq, hash, nil
}
