package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

// Findings.

// UpsertFinding is one statement: the engine writes up to every finding of
// an estate in a run, so it does not read first. A row whose first_seen
// equals the new last_seen was inserted or reopened (a refresh keeps an
// earlier first_seen: the engine never writes one finding twice at one
// instant).
const upsertFindingSQL = `INSERT INTO findings
		(id, rule, severity, rank, subject, serial, location, message, first_seen, last_seen, resolved_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, NULL)
		ON CONFLICT (id) DO UPDATE SET rule = excluded.rule, severity = excluded.severity, rank = excluded.rank,
			subject = excluded.subject, serial = excluded.serial, location = excluded.location, message = excluded.message,
			first_seen = CASE WHEN findings.resolved_at IS NULL THEN findings.first_seen ELSE excluded.last_seen END,
			last_seen = excluded.last_seen, resolved_at = NULL
		RETURNING first_seen`

func (t *txn) UpsertFinding(ctx context.Context, f *store.Finding) (bool, error) {
	return upsertFinding(ctx, f, t.tx.QueryRowContext(ctx, upsertFindingSQL, findingArgs(f)...))
}

// UpsertFindings is UpsertFinding for many findings, written without the
// upsert statement: inside a savepoint (group commit gives every member one)
// SQLite opens a statement journal for each INSERT … ON CONFLICT DO UPDATE
// and copies every page it touches there, which made the upsert most of a
// findings run's cost. A point read, then a plain single-row INSERT or
// UPDATE, needs no statement journal. Statements are prepared once per
// batch: a full run writes hundreds of thousands of findings.
func (t *txn) UpsertFindings(ctx context.Context, fs []*store.Finding) ([]bool, error) {
	var sts [4]*sql.Stmt
	for i, q := range []string{
		"SELECT resolved_at IS NULL FROM findings WHERE id = ?",
		`INSERT INTO findings (id, rule, severity, rank, subject, serial, location, message, first_seen, last_seen, resolved_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, NULL)`,
		// refresh an open finding
		`UPDATE findings SET rule = ?2, severity = ?3, rank = ?4, subject = ?5, serial = ?6, location = ?7, message = ?8,
			last_seen = ?9 WHERE id = ?1`,
		// reopen a resolved one
		`UPDATE findings SET rule = ?2, severity = ?3, rank = ?4, subject = ?5, serial = ?6, location = ?7, message = ?8,
			first_seen = ?9, last_seen = ?9, resolved_at = NULL WHERE id = ?1`,
	} {
		st, err := t.tx.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("sqlite: preparing finding upsert: %w", err)
		}
		defer st.Close()
		sts[i] = st
	}
	sel, ins, refresh, reopen := sts[0], sts[1], sts[2], sts[3]
	opened := make([]bool, len(fs))
	for i, f := range fs {
		args := findingArgs(f)
		var open bool
		err := sel.QueryRowContext(ctx, f.ID).Scan(&open)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = ins.ExecContext(ctx, args...)
			opened[i] = true
		case err != nil:
		case open:
			_, err = refresh.ExecContext(ctx, args...)
		default:
			_, err = reopen.ExecContext(ctx, args...)
			opened[i] = true
		}
		if err != nil {
			return nil, writeErr(err, "finding "+f.ID)
		}
		if opened[i] {
			f.FirstSeen, f.ResolvedAt = f.LastSeen, time.Time{}
		}
	}
	return opened, nil
}

func findingArgs(f *store.Finding) []any {
	f.LastSeen = f.LastSeen.UTC().Truncate(time.Microsecond)
	return []any{f.ID, f.Rule, f.Severity, f.Rank, f.Subject, f.Serial, f.Location, f.Message, f.LastSeen.UnixMicro()}
}

func upsertFinding(ctx context.Context, f *store.Finding, row *sql.Row) (bool, error) {
	var first int64
	if err := row.Scan(&first); err != nil {
		return false, writeErr(err, "finding "+f.ID)
	}
	opened := first == f.LastSeen.UnixMicro()
	if opened {
		f.FirstSeen, f.ResolvedAt = f.LastSeen, time.Time{}
	}
	return opened, nil
}

func (t *txn) ImportFinding(ctx context.Context, f *store.Finding) error {
	_, err := t.tx.ExecContext(ctx, "INSERT INTO findings ("+findingColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		f.ID, f.Rule, f.Severity, f.Rank, f.Subject, f.Serial, f.Location, f.Message, micros(f.FirstSeen), micros(f.LastSeen), micros(f.ResolvedAt))
	if err != nil {
		return writeErr(err, "finding "+f.ID)
	}
	return nil
}

func (t *txn) ResolveFinding(ctx context.Context, id string, at time.Time) error {
	n, err := affected(t.tx.ExecContext(ctx, "UPDATE findings SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL", at.UnixMicro(), id))
	if err != nil {
		return writeErr(err, "finding "+id)
	}
	if n == 0 {
		return fmt.Errorf("%w: open finding %s", store.ErrNotFound, id)
	}
	return nil
}

const findingColumns = "id, rule, severity, rank, subject, serial, location, message, first_seen, last_seen, resolved_at"

func scanFinding(sc scanner) (*store.Finding, error) {
	var f store.Finding
	var first, last, resolved sql.NullInt64
	if err := sc.Scan(&f.ID, &f.Rule, &f.Severity, &f.Rank, &f.Subject, &f.Serial, &f.Location, &f.Message, &first, &last, &resolved); err != nil {
		return nil, err
	}
	f.FirstSeen, f.LastSeen, f.ResolvedAt = fromMicros(first), fromMicros(last), fromMicros(resolved)
	return &f, nil
}

func (s *Store) ListFindings(ctx context.Context, f store.FindingFilter) ([]*store.Finding, error) {
	var conds []string
	var args []any
	if subjects := findingSubjects(f); len(subjects) > 0 {
		conds, args = append(conds, "subject IN ("+placeholders(len(subjects))+")"), append(args, anySlice(subjects)...)
	}
	if f.Rule != "" {
		conds, args = append(conds, "rule = ?"), append(args, f.Rule)
	}
	if f.MinRank > 0 {
		conds, args = append(conds, "rank >= ?"), append(args, f.MinRank)
	}
	if !f.IncludeResolved {
		if len(findingSubjects(f)) > 0 {
			// Unary + keeps the planner on findings_subject: without
			// statistics it preferred scanning every open finding by rank.
			conds = append(conds, "+resolved_at IS NULL")
		} else {
			conds = append(conds, "resolved_at IS NULL")
		}
	}
	q, args := limitClause("SELECT "+findingColumns+" FROM findings"+where(conds)+" ORDER BY rank DESC, first_seen, id", args, f.Limit)
	return queryAll(ctx, s.r, "findings", q, scanFinding, args...)
}

func (s *Store) CountOpenFindings(ctx context.Context) (map[string]int, error) {
	type row struct {
		sev string
		n   int
	}
	rows, err := queryAll(ctx, s.r, "finding counts", "SELECT severity, count(*) FROM findings WHERE resolved_at IS NULL GROUP BY severity",
		func(sc scanner) (row, error) {
			var r row
			return r, sc.Scan(&r.sev, &r.n)
		})
	out := map[string]int{}
	for _, r := range rows {
		out[r.sev] = r.n
	}
	return out, err
}

func (s *Store) MonitorStats(ctx context.Context, now time.Time) (*store.MonitorStats, error) {
	var out store.MonitorStats
	var err error
	out.Certificates, err = queryAll(ctx, s.r, "certificate counts",
		"SELECT status, profile, count(*), min(CASE WHEN not_after > ? THEN not_after END) FROM certificates GROUP BY status, profile ORDER BY status, profile",
		func(sc scanner) (store.CertStat, error) {
			var c store.CertStat
			var na sql.NullInt64
			err := sc.Scan(&c.Status, &c.Profile, &c.Count, &na)
			c.EarliestExpiry = fromMicros(na)
			return c, err
		}, now.UnixMicro())
	if err != nil {
		return nil, err
	}
	out.Inventory, err = queryAll(ctx, s.r, "inventory counts",
		"SELECT kind, source, count(*), min(CASE WHEN not_after > ? THEN not_after END) FROM inventory_identities GROUP BY kind, source ORDER BY kind, source",
		func(sc scanner) (store.InventoryStat, error) {
			var c store.InventoryStat
			var na sql.NullInt64
			err := sc.Scan(&c.Kind, &c.Source, &c.Count, &na)
			c.EarliestExpiry = fromMicros(na)
			return c, err
		}, now.UnixMicro())
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Webhooks.

func (t *txn) InsertWebhook(ctx context.Context, w *store.Webhook) error {
	events, err := json.Marshal(w.Events)
	if err != nil {
		return fmt.Errorf("sqlite: encoding webhook events: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO webhooks (id, url, events, secret_sealed, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, w.ID, w.URL, string(events), w.SecretSealed, w.CreatedBy, w.CreatedAt.UnixMicro())
	if err != nil {
		return writeErr(err, "webhook "+w.ID)
	}
	return nil
}

func (t *txn) DeleteWebhook(ctx context.Context, id string) error {
	// Deliveries first: foreign keys cascade too, but do not rely on the pragma.
	if _, err := t.tx.ExecContext(ctx, "DELETE FROM webhook_deliveries WHERE webhook_id = ?", id); err != nil {
		return writeErr(err, "webhook deliveries")
	}
	n, err := affected(t.tx.ExecContext(ctx, "DELETE FROM webhooks WHERE id = ?", id))
	if err != nil {
		return writeErr(err, "webhook "+id)
	}
	if n == 0 {
		return fmt.Errorf("%w: webhook %s", store.ErrNotFound, id)
	}
	return nil
}

const webhookColumns = "id, url, events, secret_sealed, created_by, created_at"

func scanWebhook(sc scanner) (*store.Webhook, error) {
	var w store.Webhook
	var events sql.NullString
	var created sql.NullInt64
	if err := sc.Scan(&w.ID, &w.URL, &events, &w.SecretSealed, &w.CreatedBy, &created); err != nil {
		return nil, err
	}
	if err := fromJSON(events, &w.Events); err != nil {
		return nil, err
	}
	w.CreatedAt = fromMicros(created)
	return &w, nil
}

func (s *Store) GetWebhook(ctx context.Context, id string) (*store.Webhook, error) {
	w, err := scanWebhook(s.r.QueryRowContext(ctx, "SELECT "+webhookColumns+" FROM webhooks WHERE id = ?", id))
	if err != nil {
		return nil, readErr(err, "webhook "+id)
	}
	return w, nil
}

func (s *Store) ListWebhooks(ctx context.Context) ([]*store.Webhook, error) {
	return queryAll(ctx, s.r, "webhooks", "SELECT "+webhookColumns+" FROM webhooks ORDER BY id", scanWebhook)
}

// Deliveries.

func (t *txn) EnqueueDelivery(ctx context.Context, d *store.Delivery) (bool, error) {
	res, err := t.tx.ExecContext(ctx, `INSERT INTO webhook_deliveries
		(webhook_id, event, dedup_key, payload, status, attempts, next_attempt_at, last_error, last_status, created_at, delivered_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id, dedup_key) DO NOTHING`,
		d.WebhookID, d.Event, d.DedupKey, d.Payload, d.Status, d.Attempts, micros(d.NextAttemptAt), d.LastError, d.LastStatus,
		d.CreatedAt.UnixMicro(), micros(d.DeliveredAt))
	if err != nil {
		return false, writeErr(err, "delivery")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	d.ID, err = res.LastInsertId()
	return true, err
}

func (t *txn) UpdateDelivery(ctx context.Context, d *store.Delivery) error {
	n, err := affected(t.tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?,
		last_error = ?, last_status = ?, delivered_at = ? WHERE id = ?`,
		d.Status, d.Attempts, micros(d.NextAttemptAt), d.LastError, d.LastStatus, micros(d.DeliveredAt), d.ID))
	if err != nil {
		return writeErr(err, "delivery")
	}
	if n == 0 {
		return fmt.Errorf("%w: delivery %d", store.ErrNotFound, d.ID)
	}
	return nil
}

const deliveryColumns = "id, webhook_id, event, dedup_key, payload, status, attempts, next_attempt_at, last_error, last_status, created_at, delivered_at"

func scanDelivery(sc scanner) (*store.Delivery, error) {
	var d store.Delivery
	var next, created, delivered sql.NullInt64
	if err := sc.Scan(&d.ID, &d.WebhookID, &d.Event, &d.DedupKey, &d.Payload, &d.Status, &d.Attempts, &next,
		&d.LastError, &d.LastStatus, &created, &delivered); err != nil {
		return nil, err
	}
	d.NextAttemptAt, d.CreatedAt, d.DeliveredAt = fromMicros(next), fromMicros(created), fromMicros(delivered)
	return &d, nil
}

func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]*store.Delivery, error) {
	var conds []string
	var args []any
	if f.WebhookID != "" {
		conds, args = append(conds, "webhook_id = ?"), append(args, f.WebhookID)
	}
	if f.Status != "" {
		conds, args = append(conds, "status = ?"), append(args, f.Status)
	}
	if !f.DueBy.IsZero() {
		conds, args = append(conds, "next_attempt_at <= ?"), append(args, f.DueBy.UnixMicro())
	}
	q, args := limitClause("SELECT "+deliveryColumns+" FROM webhook_deliveries"+where(conds)+" ORDER BY id", args, f.Limit)
	return queryAll(ctx, s.r, "deliveries", q, scanDelivery, args...)
}

// Audit sinks.

func (t *txn) PutAuditSinkState(ctx context.Context, st *store.AuditSinkState) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO audit_sink_state (sink, seq, last_error, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, last_error = excluded.last_error, updated_at = excluded.updated_at`,
		st.Sink, st.Seq, st.LastError, st.UpdatedAt.UnixMicro())
	if err != nil {
		return writeErr(err, "audit sink state "+st.Sink)
	}
	return nil
}

func (s *Store) ListAuditSinkStates(ctx context.Context) ([]*store.AuditSinkState, error) {
	return queryAll(ctx, s.r, "audit sink states", "SELECT sink, seq, last_error, updated_at FROM audit_sink_state ORDER BY sink",
		func(sc scanner) (*store.AuditSinkState, error) {
			var st store.AuditSinkState
			var updated sql.NullInt64
			if err := sc.Scan(&st.Sink, &st.Seq, &st.LastError, &updated); err != nil {
				return nil, err
			}
			st.UpdatedAt = fromMicros(updated)
			return &st, nil
		})
}

// findingSubjects is the filter's subjects: Subject and Subjects together.
func findingSubjects(f store.FindingFilter) []string {
	if f.Subject == "" {
		return f.Subjects
	}
	return append([]string{f.Subject}, f.Subjects...)
}
