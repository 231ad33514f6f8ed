package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sigil-pki/sigil/internal/store"
)

// Findings.

func (t *txn) UpsertFinding(ctx context.Context, f *store.Finding) (bool, error) {
	f.LastSeen = floorMicros(f.LastSeen)
	// Lock the row (if any) and read whether it is open; the upsert then
	// inserts, reopens a resolved finding (first_seen reset) or refreshes an
	// open one. ON CONFLICT keeps a concurrent insert from aborting the
	// transaction (the engine runs under the background lease, so one
	// writer is the norm).
	var resolved pgtype.Timestamptz
	err := t.tx.QueryRow(ctx, "SELECT resolved_at FROM findings WHERE id = $1 FOR UPDATE", f.ID).Scan(&resolved)
	exists := err == nil
	if err != nil && err != pgx.ErrNoRows {
		return false, readErr(err, "finding "+f.ID)
	}
	_, err = t.tx.Exec(ctx, `INSERT INTO findings AS f (id, rule, severity, rank, subject, serial, location, message, first_seen, last_seen, resolved_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, NULL)
		ON CONFLICT (id) DO UPDATE SET rule = excluded.rule, severity = excluded.severity, rank = excluded.rank,
			subject = excluded.subject, serial = excluded.serial, location = excluded.location, message = excluded.message,
			last_seen = excluded.last_seen,
			first_seen = CASE WHEN f.resolved_at IS NULL THEN f.first_seen ELSE excluded.last_seen END,
			resolved_at = NULL`,
		f.ID, f.Rule, f.Severity, f.Rank, f.Subject, f.Serial, f.Location, f.Message, f.LastSeen)
	if err != nil {
		return false, writeErr(err, "finding "+f.ID)
	}
	opened := !exists || resolved.Valid
	if opened {
		f.FirstSeen, f.ResolvedAt = f.LastSeen, time.Time{}
	}
	return opened, nil
}

// upsertFindingsSQL is UpsertFinding for a batch in one round trip. A row
// whose first_seen equals its new last_seen was inserted or reopened (the
// store's contract: a finding is never refreshed at the instant it was
// first seen).
const upsertFindingsSQL = `INSERT INTO findings AS f (id, rule, severity, rank, subject, serial, location, message, first_seen, last_seen, resolved_at)
		SELECT id, rule, severity, rank, subject, serial, location, message, seen, seen, NULL
		FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])
			AS u(id, rule, severity, rank, subject, serial, location, message, seen)
		ON CONFLICT (id) DO UPDATE SET rule = excluded.rule, severity = excluded.severity, rank = excluded.rank,
			subject = excluded.subject, serial = excluded.serial, location = excluded.location, message = excluded.message,
			last_seen = excluded.last_seen,
			first_seen = CASE WHEN f.resolved_at IS NULL THEN f.first_seen ELSE excluded.last_seen END,
			resolved_at = NULL
		RETURNING f.id, f.first_seen = f.last_seen`

func (t *txn) UpsertFindings(ctx context.Context, fs []*store.Finding) ([]bool, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	n := len(fs)
	ids, rules, sevs, subjects, serials, locs, msgs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ranks, seen := make([]int32, n), make([]time.Time, n)
	at := make(map[string]int, n)
	for i, f := range fs {
		f.LastSeen = floorMicros(f.LastSeen)
		ids[i], rules[i], sevs[i], ranks[i], subjects[i] = f.ID, f.Rule, f.Severity, int32(f.Rank), f.Subject
		serials[i], locs[i], msgs[i], seen[i] = f.Serial, f.Location, f.Message, f.LastSeen
		if _, dup := at[f.ID]; dup {
			return nil, fmt.Errorf("postgres: finding %s twice in one batch", f.ID)
		}
		at[f.ID] = i
	}
	rows, err := t.tx.Query(ctx, upsertFindingsSQL, ids, rules, sevs, ranks, subjects, serials, locs, msgs, seen)
	if err != nil {
		return nil, writeErr(err, "findings")
	}
	defer rows.Close()
	opened := make([]bool, n)
	got := 0
	for rows.Next() {
		var id string
		var fresh bool
		if err := rows.Scan(&id, &fresh); err != nil {
			return nil, writeErr(err, "findings")
		}
		i, ok := at[id]
		if !ok {
			return nil, fmt.Errorf("postgres: upsert returned unknown finding %s", id)
		}
		opened[i] = fresh
		got++
	}
	if err := rows.Err(); err != nil {
		return nil, writeErr(err, "findings")
	}
	if got != n {
		return nil, fmt.Errorf("postgres: upsert of %d findings returned %d rows", n, got)
	}
	for i, f := range fs {
		if opened[i] {
			f.FirstSeen, f.ResolvedAt = f.LastSeen, time.Time{}
		}
	}
	return opened, nil
}

func (t *txn) ImportFinding(ctx context.Context, f *store.Finding) error {
	_, err := t.tx.Exec(ctx, "INSERT INTO findings ("+findingColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
		f.ID, f.Rule, f.Severity, f.Rank, f.Subject, f.Serial, f.Location, f.Message, ts(f.FirstSeen), ts(f.LastSeen), ts(f.ResolvedAt))
	if err != nil {
		return writeErr(err, "finding "+f.ID)
	}
	return nil
}

func (t *txn) ResolveFinding(ctx context.Context, id string, at time.Time) error {
	tag, err := t.tx.Exec(ctx, "UPDATE findings SET resolved_at = $1 WHERE id = $2 AND resolved_at IS NULL", floorMicros(at), id)
	if err != nil {
		return writeErr(err, "finding "+id)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: open finding %s", store.ErrNotFound, id)
	}
	return nil
}

const findingColumns = "id, rule, severity, rank, subject, serial, location, message, first_seen, last_seen, resolved_at"

func scanFinding(row pgx.Row) (*store.Finding, error) {
	var f store.Finding
	var first, last, resolved pgtype.Timestamptz
	if err := row.Scan(&f.ID, &f.Rule, &f.Severity, &f.Rank, &f.Subject, &f.Serial, &f.Location, &f.Message, &first, &last, &resolved); err != nil {
		return nil, err
	}
	f.FirstSeen, f.LastSeen, f.ResolvedAt = fromTS(first), fromTS(last), fromTS(resolved)
	return &f, nil
}

func (s *Store) ListFindings(ctx context.Context, f store.FindingFilter) ([]*store.Finding, error) {
	var w whereClause
	if subjects := findingSubjects(f); len(subjects) > 0 {
		w.add("subject = ANY(?)", subjects)
	}
	if f.Rule != "" {
		w.add("rule = ?", f.Rule)
	}
	if f.MinRank > 0 {
		w.add("rank >= ?", f.MinRank)
	}
	if !f.IncludeResolved {
		w.add("resolved_at IS NULL")
	}
	q := w.limit("SELECT "+findingColumns+" FROM findings"+w.String()+" ORDER BY rank DESC, first_seen, id", f.Limit)
	return queryAll(ctx, s.pool, "findings", q, scanFinding, w.args...)
}

func (s *Store) CountOpenFindings(ctx context.Context) (map[string]int, error) {
	type row struct {
		sev string
		n   int
	}
	rows, err := queryAll(ctx, s.pool, "finding counts", "SELECT severity, count(*) FROM findings WHERE resolved_at IS NULL GROUP BY severity",
		func(r pgx.Row) (row, error) {
			var x row
			return x, r.Scan(&x.sev, &x.n)
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
	out.Certificates, err = queryAll(ctx, s.pool, "certificate counts",
		"SELECT status, profile, count(*), min(not_after) FILTER (WHERE not_after > $1) FROM certificates GROUP BY status, profile ORDER BY status, profile",
		func(r pgx.Row) (store.CertStat, error) {
			var c store.CertStat
			var na pgtype.Timestamptz
			err := r.Scan(&c.Status, &c.Profile, &c.Count, &na)
			c.EarliestExpiry = fromTS(na)
			return c, err
		}, floorMicros(now))
	if err != nil {
		return nil, err
	}
	out.Inventory, err = queryAll(ctx, s.pool, "inventory counts",
		"SELECT kind, source, count(*), min(not_after) FILTER (WHERE not_after > $1) FROM inventory_identities GROUP BY kind, source ORDER BY kind, source",
		func(r pgx.Row) (store.InventoryStat, error) {
			var c store.InventoryStat
			var na pgtype.Timestamptz
			err := r.Scan(&c.Kind, &c.Source, &c.Count, &na)
			c.EarliestExpiry = fromTS(na)
			return c, err
		}, floorMicros(now))
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Webhooks.

func (t *txn) InsertWebhook(ctx context.Context, w *store.Webhook) error {
	events := w.Events
	if events == nil {
		events = []string{}
	}
	tag, err := t.tx.Exec(ctx, `INSERT INTO webhooks (id, url, events, secret_sealed, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
		w.ID, w.URL, events, w.SecretSealed, w.CreatedBy, floorMicros(w.CreatedAt))
	if err != nil {
		return writeErr(err, "webhook "+w.ID)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: webhook %s already exists", store.ErrConflict, w.ID)
	}
	return nil
}

func (t *txn) DeleteWebhook(ctx context.Context, id string) error {
	if _, err := t.tx.Exec(ctx, "DELETE FROM webhook_deliveries WHERE webhook_id = $1", id); err != nil {
		return writeErr(err, "webhook deliveries")
	}
	tag, err := t.tx.Exec(ctx, "DELETE FROM webhooks WHERE id = $1", id)
	if err != nil {
		return writeErr(err, "webhook "+id)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: webhook %s", store.ErrNotFound, id)
	}
	return nil
}

const webhookColumns = "id, url, events, secret_sealed, created_by, created_at"

func scanWebhook(row pgx.Row) (*store.Webhook, error) {
	var w store.Webhook
	var created pgtype.Timestamptz
	if err := row.Scan(&w.ID, &w.URL, &w.Events, &w.SecretSealed, &w.CreatedBy, &created); err != nil {
		return nil, err
	}
	w.Events = nilIfEmpty(w.Events)
	w.CreatedAt = fromTS(created)
	return &w, nil
}

func (s *Store) GetWebhook(ctx context.Context, id string) (*store.Webhook, error) {
	w, err := scanWebhook(s.pool.QueryRow(ctx, "SELECT "+webhookColumns+" FROM webhooks WHERE id = $1", id))
	if err != nil {
		return nil, readErr(err, "webhook "+id)
	}
	return w, nil
}

func (s *Store) ListWebhooks(ctx context.Context) ([]*store.Webhook, error) {
	return queryAll(ctx, s.pool, "webhooks", "SELECT "+webhookColumns+" FROM webhooks ORDER BY id", scanWebhook)
}

// Deliveries.

func (t *txn) EnqueueDelivery(ctx context.Context, d *store.Delivery) (bool, error) {
	err := t.tx.QueryRow(ctx, `INSERT INTO webhook_deliveries
		(webhook_id, event, dedup_key, payload, status, attempts, next_attempt_at, last_error, last_status, created_at, delivered_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (webhook_id, dedup_key) DO NOTHING RETURNING id`,
		d.WebhookID, d.Event, d.DedupKey, d.Payload, d.Status, d.Attempts, ts(d.NextAttemptAt), d.LastError, d.LastStatus,
		floorMicros(d.CreatedAt), ts(d.DeliveredAt)).Scan(&d.ID)
	if err == pgx.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, writeErr(err, "delivery")
	}
	return true, nil
}

func (t *txn) UpdateDelivery(ctx context.Context, d *store.Delivery) error {
	tag, err := t.tx.Exec(ctx, `UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3,
		last_error = $4, last_status = $5, delivered_at = $6 WHERE id = $7`,
		d.Status, d.Attempts, ts(d.NextAttemptAt), d.LastError, d.LastStatus, ts(d.DeliveredAt), d.ID)
	if err != nil {
		return writeErr(err, "delivery")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: delivery %d", store.ErrNotFound, d.ID)
	}
	return nil
}

const deliveryColumns = "id, webhook_id, event, dedup_key, payload, status, attempts, next_attempt_at, last_error, last_status, created_at, delivered_at"

func scanDelivery(row pgx.Row) (*store.Delivery, error) {
	var d store.Delivery
	var next, created, delivered pgtype.Timestamptz
	if err := row.Scan(&d.ID, &d.WebhookID, &d.Event, &d.DedupKey, &d.Payload, &d.Status, &d.Attempts, &next,
		&d.LastError, &d.LastStatus, &created, &delivered); err != nil {
		return nil, err
	}
	d.NextAttemptAt, d.CreatedAt, d.DeliveredAt = fromTS(next), fromTS(created), fromTS(delivered)
	return &d, nil
}

func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]*store.Delivery, error) {
	var w whereClause
	if f.WebhookID != "" {
		w.add("webhook_id = ?", f.WebhookID)
	}
	if f.Status != "" {
		w.add("status = ?", f.Status)
	}
	if !f.DueBy.IsZero() {
		w.add("next_attempt_at <= ?", floorMicros(f.DueBy))
	}
	q := w.limit("SELECT "+deliveryColumns+" FROM webhook_deliveries"+w.String()+" ORDER BY id", f.Limit)
	return queryAll(ctx, s.pool, "deliveries", q, scanDelivery, w.args...)
}

// Audit sinks.

func (t *txn) PutAuditSinkState(ctx context.Context, st *store.AuditSinkState) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO audit_sink_state (sink, seq, last_error, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, last_error = excluded.last_error, updated_at = excluded.updated_at`,
		st.Sink, st.Seq, st.LastError, floorMicros(st.UpdatedAt))
	if err != nil {
		return writeErr(err, "audit sink state "+st.Sink)
	}
	return nil
}

func (s *Store) ListAuditSinkStates(ctx context.Context) ([]*store.AuditSinkState, error) {
	return queryAll(ctx, s.pool, "audit sink states", "SELECT sink, seq, last_error, updated_at FROM audit_sink_state ORDER BY sink",
		func(row pgx.Row) (*store.AuditSinkState, error) {
			var st store.AuditSinkState
			var updated pgtype.Timestamptz
			if err := row.Scan(&st.Sink, &st.Seq, &st.LastError, &updated); err != nil {
				return nil, err
			}
			st.UpdatedAt = fromTS(updated)
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
