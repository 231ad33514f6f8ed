package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

// stmt returns a reader statement prepared once per store: every ACME
// request reads its account and order, and an SQL parse costs about as
// much as the query. (Not for the writer: its one connection is held by
// the transaction that would prepare.)
func (s *Store) stmt(ctx context.Context, db *sql.DB, q string) (*sql.Stmt, error) {
	key := q
	if st, ok := s.acmeStmts.Load(key); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if old, loaded := s.acmeStmts.LoadOrStore(key, st); loaded {
		st.Close()
		return old.(*sql.Stmt), nil
	}
	return st, nil
}

// queryRow runs a prepared read on the reader pool.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) scanner {
	st, err := s.stmt(ctx, s.r, q)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

// ACME profiles.

func (t *txn) PutACMEProfile(ctx context.Context, p *store.ACMEProfile) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO acme_profiles (profile, enabled, eab_required, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (profile) DO UPDATE SET enabled = excluded.enabled, eab_required = excluded.eab_required, updated_at = excluded.updated_at`,
		p.Profile, p.Enabled, p.EABRequired, micros(p.UpdatedAt))
	if err != nil {
		return writeErr(err, "ACME profile "+p.Profile)
	}
	return nil
}

func scanACMEProfile(sc scanner) (*store.ACMEProfile, error) {
	var p store.ACMEProfile
	var upd sql.NullInt64
	if err := sc.Scan(&p.Profile, &p.Enabled, &p.EABRequired, &upd); err != nil {
		return nil, err
	}
	p.UpdatedAt = fromMicros(upd)
	return &p, nil
}

const acmeProfileColumns = "profile, enabled, eab_required, updated_at"

func (s *Store) GetACMEProfile(ctx context.Context, profile string) (*store.ACMEProfile, error) {
	p, err := scanACMEProfile(s.queryRow(ctx, "SELECT "+acmeProfileColumns+" FROM acme_profiles WHERE profile = ?", profile))
	if err != nil {
		return nil, readErr(err, "ACME profile "+profile)
	}
	return p, nil
}

func (s *Store) ListACMEProfiles(ctx context.Context) ([]*store.ACMEProfile, error) {
	return queryAll(ctx, s.r, "ACME profiles", "SELECT "+acmeProfileColumns+" FROM acme_profiles ORDER BY profile", scanACMEProfile)
}

// Secrets.

func (t *txn) InsertACMESecret(ctx context.Context, name string, sealed []byte) error {
	if _, err := t.tx.ExecContext(ctx, "INSERT INTO acme_secrets (name, sealed) VALUES (?, ?)", name, sealed); err != nil {
		return writeErr(err, "ACME secret "+name)
	}
	return nil
}

func (s *Store) GetACMESecret(ctx context.Context, name string) ([]byte, error) {
	var b []byte
	if err := s.r.QueryRowContext(ctx, "SELECT sealed FROM acme_secrets WHERE name = ?", name).Scan(&b); err != nil {
		return nil, readErr(err, "ACME secret "+name)
	}
	return b, nil
}

// EAB keys.

func (t *txn) InsertEABKey(ctx context.Context, k *store.EABKey) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO acme_eab_keys (kid, profile, owner, sealed, created_at, revoked_at, account_id) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		k.KID, k.Profile, k.Owner, k.Sealed, micros(k.CreatedAt), micros(k.RevokedAt), k.AccountID)
	if err != nil {
		return writeErr(err, "EAB key "+k.KID)
	}
	return nil
}

func (t *txn) RevokeEABKey(ctx context.Context, kid string, at time.Time) error {
	n, err := affected(t.tx.ExecContext(ctx, "UPDATE acme_eab_keys SET revoked_at = coalesce(revoked_at, ?) WHERE kid = ?", micros(at), kid))
	if err != nil {
		return writeErr(err, "EAB key "+kid)
	}
	if n == 0 {
		return fmt.Errorf("%w: EAB key %s", store.ErrNotFound, kid)
	}
	return nil
}

func (t *txn) BindEABKey(ctx context.Context, kid, accountID string) error {
	n, err := affected(t.tx.ExecContext(ctx, "UPDATE acme_eab_keys SET account_id = ? WHERE kid = ? AND account_id = '' AND revoked_at IS NULL", accountID, kid))
	if err != nil {
		return writeErr(err, "EAB key "+kid)
	}
	if n == 1 {
		return nil
	}
	var one int
	if err := t.tx.QueryRowContext(ctx, "SELECT 1 FROM acme_eab_keys WHERE kid = ?", kid).Scan(&one); err != nil {
		return readErr(err, "EAB key "+kid)
	}
	return fmt.Errorf("%w: EAB key %s is revoked or already bound", store.ErrConflict, kid)
}

const eabColumns = "kid, profile, owner, sealed, created_at, revoked_at, account_id"

func scanEAB(sc scanner) (*store.EABKey, error) {
	var k store.EABKey
	var created, revoked sql.NullInt64
	if err := sc.Scan(&k.KID, &k.Profile, &k.Owner, &k.Sealed, &created, &revoked, &k.AccountID); err != nil {
		return nil, err
	}
	k.CreatedAt, k.RevokedAt = fromMicros(created), fromMicros(revoked)
	return &k, nil
}

func (s *Store) GetEABKey(ctx context.Context, kid string) (*store.EABKey, error) {
	k, err := scanEAB(s.r.QueryRowContext(ctx, "SELECT "+eabColumns+" FROM acme_eab_keys WHERE kid = ?", kid))
	if err != nil {
		return nil, readErr(err, "EAB key "+kid)
	}
	return k, nil
}

func (s *Store) ListEABKeys(ctx context.Context, profile string) ([]*store.EABKey, error) {
	return queryAll(ctx, s.r, "EAB keys", "SELECT "+eabColumns+" FROM acme_eab_keys WHERE ? = '' OR profile = ? ORDER BY created_at, kid", scanEAB, profile, profile)
}

// Accounts.

func (t *txn) InsertACMEAccount(ctx context.Context, a *store.ACMEAccount) error {
	contact, err := jsonText(a.Contact, len(a.Contact))
	if err != nil {
		return fmt.Errorf("sqlite: encoding contact: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO acme_accounts (id, profile, thumbprint, jwk, status, contact, owner, eab_kid, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Profile, a.Thumbprint, a.JWK, a.Status, contact, a.Owner, a.EABKID, micros(a.CreatedAt))
	if err != nil {
		return writeErr(err, "ACME account "+a.ID)
	}
	return nil
}

func (t *txn) UpdateACMEAccount(ctx context.Context, a *store.ACMEAccount) error {
	contact, err := jsonText(a.Contact, len(a.Contact))
	if err != nil {
		return fmt.Errorf("sqlite: encoding contact: %w", err)
	}
	n, err := affected(t.tx.ExecContext(ctx, "UPDATE acme_accounts SET status = ?, contact = ?, jwk = ?, thumbprint = ? WHERE id = ?",
		a.Status, contact, a.JWK, a.Thumbprint, a.ID))
	if err != nil {
		return writeErr(err, "ACME account key")
	}
	if n == 0 {
		return fmt.Errorf("%w: ACME account %s", store.ErrNotFound, a.ID)
	}
	return nil
}

const acmeAccountColumns = "id, profile, thumbprint, jwk, status, contact, owner, eab_kid, created_at"

func scanACMEAccount(sc scanner) (*store.ACMEAccount, error) {
	var a store.ACMEAccount
	var contact sql.NullString
	var created sql.NullInt64
	if err := sc.Scan(&a.ID, &a.Profile, &a.Thumbprint, &a.JWK, &a.Status, &contact, &a.Owner, &a.EABKID, &created); err != nil {
		return nil, err
	}
	if err := fromJSON(contact, &a.Contact); err != nil {
		return nil, err
	}
	a.CreatedAt = fromMicros(created)
	return &a, nil
}

func (s *Store) GetACMEAccount(ctx context.Context, id string) (*store.ACMEAccount, error) {
	a, err := scanACMEAccount(s.queryRow(ctx, "SELECT "+acmeAccountColumns+" FROM acme_accounts WHERE id = ?", id))
	if err != nil {
		return nil, readErr(err, "ACME account "+id)
	}
	return a, nil
}

func (s *Store) GetACMEAccountByKey(ctx context.Context, profile, thumbprint string) (*store.ACMEAccount, error) {
	a, err := scanACMEAccount(s.r.QueryRowContext(ctx, "SELECT "+acmeAccountColumns+" FROM acme_accounts WHERE profile = ? AND thumbprint = ?", profile, thumbprint))
	if err != nil {
		return nil, readErr(err, "ACME account")
	}
	return a, nil
}

// Orders.

func (t *txn) InsertACMEOrder(ctx context.Context, o *store.ACMEOrder) error {
	o.Version = 1
	_, err := t.tx.ExecContext(ctx, `INSERT INTO acme_orders (id, account_id, profile, status, expires_at, replaces, serial, doc, version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.ID, o.AccountID, o.Profile, o.Status, micros(o.Expires), o.Replaces, o.Serial, o.Doc, o.Version, micros(o.CreatedAt))
	if err != nil {
		return writeErr(err, "ACME order "+o.ID)
	}
	return nil
}

func (t *txn) UpdateACMEOrder(ctx context.Context, o *store.ACMEOrder) error {
	n, err := affected(t.tx.ExecContext(ctx, "UPDATE acme_orders SET status = ?, expires_at = ?, serial = ?, doc = ?, version = version + 1 WHERE id = ? AND version = ?",
		o.Status, micros(o.Expires), o.Serial, o.Doc, o.ID, o.Version))
	if err != nil {
		return writeErr(err, "ACME order "+o.ID)
	}
	if n == 1 {
		o.Version++
		return nil
	}
	var one int
	if err := t.tx.QueryRowContext(ctx, "SELECT 1 FROM acme_orders WHERE id = ?", o.ID).Scan(&one); err != nil {
		return readErr(err, "ACME order "+o.ID)
	}
	return fmt.Errorf("%w: ACME order %s changed concurrently", store.ErrConflict, o.ID)
}

const acmeOrderColumns = "id, account_id, profile, status, expires_at, replaces, serial, doc, version, created_at"

func scanACMEOrder(sc scanner) (*store.ACMEOrder, error) {
	var o store.ACMEOrder
	var exp, created sql.NullInt64
	if err := sc.Scan(&o.ID, &o.AccountID, &o.Profile, &o.Status, &exp, &o.Replaces, &o.Serial, &o.Doc, &o.Version, &created); err != nil {
		return nil, err
	}
	o.Expires, o.CreatedAt = fromMicros(exp), fromMicros(created)
	return &o, nil
}

func (s *Store) GetACMEOrder(ctx context.Context, id string) (*store.ACMEOrder, error) {
	o, err := scanACMEOrder(s.queryRow(ctx, "SELECT "+acmeOrderColumns+" FROM acme_orders WHERE id = ?", id))
	if err != nil {
		return nil, readErr(err, "ACME order "+id)
	}
	return o, nil
}

func (s *Store) ACMEOrderReplacing(ctx context.Context, certID string) (*store.ACMEOrder, error) {
	if certID == "" {
		return nil, fmt.Errorf("%w: ACME order replacing nothing", store.ErrNotFound)
	}
	o, err := scanACMEOrder(s.r.QueryRowContext(ctx, "SELECT "+acmeOrderColumns+" FROM acme_orders WHERE replaces = ?", certID))
	if err != nil {
		return nil, readErr(err, "ACME order replacing "+certID)
	}
	return o, nil
}

// Nonces.

func (t *txn) UseACMENonce(ctx context.Context, nonce string, expires time.Time) error {
	// ON CONFLICT DO NOTHING: a replay must not abort the transaction,
	// which still records the refusal.
	n, err := affected(t.tx.ExecContext(ctx, "INSERT INTO acme_nonces (nonce, expires_at) VALUES (?, ?) ON CONFLICT (nonce) DO NOTHING", nonce, expires.UnixMicro()))
	if err != nil {
		return writeErr(err, "ACME nonce")
	}
	if n == 0 {
		return fmt.Errorf("%w: ACME nonce already used", store.ErrConflict)
	}
	return nil
}

func (t *txn) PurgeACMENonces(ctx context.Context, before time.Time) (int64, error) {
	n, err := affected(t.tx.ExecContext(ctx, "DELETE FROM acme_nonces WHERE expires_at < ?", before.UnixMicro()))
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging ACME nonces: %w", err)
	}
	return n, nil
}

// Early renewal (ARI).

func (t *txn) MarkRenewEarly(ctx context.Context, serial string, at time.Time) error {
	if _, err := t.tx.ExecContext(ctx, "INSERT INTO acme_renew_early (serial, marked_at) VALUES (?, ?) ON CONFLICT (serial) DO NOTHING", serial, at.UnixMicro()); err != nil {
		return writeErr(err, "early renewal of "+serial)
	}
	return nil
}

func (s *Store) RenewEarlyAt(ctx context.Context, serial string) (time.Time, error) {
	var at sql.NullInt64
	if err := s.queryRow(ctx, "SELECT marked_at FROM acme_renew_early WHERE serial = ?", serial).Scan(&at); err != nil {
		return time.Time{}, readErr(err, "early renewal of "+serial)
	}
	return fromMicros(at), nil
}

func (s *Store) ListACMEAccounts(ctx context.Context) ([]*store.ACMEAccount, error) {
	return queryAll(ctx, s.r, "ACME accounts", "SELECT "+acmeAccountColumns+" FROM acme_accounts ORDER BY created_at, id", scanACMEAccount)
}

func (s *Store) ListRenewEarly(ctx context.Context) (map[string]time.Time, error) {
	type mark struct {
		serial string
		at     time.Time
	}
	marks, err := queryAll(ctx, s.r, "early renewals", "SELECT serial, marked_at FROM acme_renew_early", func(sc scanner) (mark, error) {
		var m mark
		var at sql.NullInt64
		err := sc.Scan(&m.serial, &at)
		m.at = fromMicros(at)
		return m, err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(marks))
	for _, m := range marks {
		out[m.serial] = m.at
	}
	return out, nil
}

func (s *Store) ListACMEOrderIDs(ctx context.Context, accountID string, limit int) ([]string, error) {
	return queryAll(ctx, s.r, "ACME orders", "SELECT id FROM acme_orders WHERE account_id = ? ORDER BY created_at DESC, id LIMIT ?", func(sc scanner) (string, error) {
		var id string
		return id, sc.Scan(&id)
	}, accountID, limit)
}

// Rate limits.

func (t *txn) TakeACMERate(ctx context.Context, key string, window time.Time, limit int) (int, bool, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `INSERT INTO acme_rate_counts (key, window_start, n) VALUES (?, ?, 1)
		ON CONFLICT (key, window_start) DO UPDATE SET n = acme_rate_counts.n + 1 WHERE acme_rate_counts.n < ?
		RETURNING n`, key, window.UnixMicro(), limit).Scan(&n)
	if err == sql.ErrNoRows {
		if err := t.tx.QueryRowContext(ctx, "SELECT n FROM acme_rate_counts WHERE key = ? AND window_start = ?", key, window.UnixMicro()).Scan(&n); err != nil {
			return 0, false, fmt.Errorf("sqlite: reading rate count %s: %w", key, err)
		}
		return n, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: counting rate %s: %w", key, err)
	}
	return n, true, nil
}

func (t *txn) PurgeACMERates(ctx context.Context, before time.Time) (int64, error) {
	n, err := affected(t.tx.ExecContext(ctx, "DELETE FROM acme_rate_counts WHERE window_start < ?", before.UnixMicro()))
	if err != nil {
		return 0, fmt.Errorf("sqlite: purging ACME rate counts: %w", err)
	}
	return n, nil
}
