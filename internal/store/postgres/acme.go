package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sigil-pki/sigil/internal/store"
)

// ACME profiles.

func (t *txn) PutACMEProfile(ctx context.Context, p *store.ACMEProfile) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO acme_profiles (profile, enabled, eab_required, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (profile) DO UPDATE SET enabled = excluded.enabled, eab_required = excluded.eab_required, updated_at = excluded.updated_at`,
		p.Profile, p.Enabled, p.EABRequired, ts(p.UpdatedAt))
	if err != nil {
		return writeErr(err, "ACME profile "+p.Profile)
	}
	return nil
}

func scanACMEProfile(sc pgx.Row) (*store.ACMEProfile, error) {
	var p store.ACMEProfile
	var upd pgtype.Timestamptz
	if err := sc.Scan(&p.Profile, &p.Enabled, &p.EABRequired, &upd); err != nil {
		return nil, err
	}
	p.UpdatedAt = fromTS(upd)
	return &p, nil
}

const acmeProfileColumns = "profile, enabled, eab_required, updated_at"

func (s *Store) GetACMEProfile(ctx context.Context, profile string) (*store.ACMEProfile, error) {
	p, err := scanACMEProfile(s.pool.QueryRow(ctx, "SELECT "+acmeProfileColumns+" FROM acme_profiles WHERE profile = $1", profile))
	if err != nil {
		return nil, readErr(err, "ACME profile "+profile)
	}
	return p, nil
}

func (s *Store) ListACMEProfiles(ctx context.Context) ([]*store.ACMEProfile, error) {
	return queryAll(ctx, s.pool, "ACME profiles", "SELECT "+acmeProfileColumns+" FROM acme_profiles ORDER BY profile", scanACMEProfile)
}

// Secrets.

func (t *txn) InsertACMESecret(ctx context.Context, name string, sealed []byte) error {
	if _, err := t.tx.Exec(ctx, "INSERT INTO acme_secrets (name, sealed) VALUES ($1, $2)", name, sealed); err != nil {
		return writeErr(err, "ACME secret "+name)
	}
	return nil
}

func (s *Store) GetACMESecret(ctx context.Context, name string) ([]byte, error) {
	var b []byte
	if err := s.pool.QueryRow(ctx, "SELECT sealed FROM acme_secrets WHERE name = $1", name).Scan(&b); err != nil {
		return nil, readErr(err, "ACME secret "+name)
	}
	return b, nil
}

// EAB keys.

func (t *txn) InsertEABKey(ctx context.Context, k *store.EABKey) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO acme_eab_keys (kid, profile, owner, sealed, created_at, revoked_at, account_id) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.KID, k.Profile, k.Owner, k.Sealed, ts(k.CreatedAt), ts(k.RevokedAt), k.AccountID)
	if err != nil {
		return writeErr(err, "EAB key "+k.KID)
	}
	return nil
}

func (t *txn) RevokeEABKey(ctx context.Context, kid string, at time.Time) error {
	n, err := pgAffected(t.tx.Exec(ctx, "UPDATE acme_eab_keys SET revoked_at = coalesce(revoked_at, $1) WHERE kid = $2", ts(at), kid))
	if err != nil {
		return writeErr(err, "EAB key "+kid)
	}
	if n == 0 {
		return fmt.Errorf("%w: EAB key %s", store.ErrNotFound, kid)
	}
	return nil
}

func (t *txn) BindEABKey(ctx context.Context, kid, accountID string) error {
	n, err := pgAffected(t.tx.Exec(ctx, "UPDATE acme_eab_keys SET account_id = $1 WHERE kid = $2 AND account_id = '' AND revoked_at IS NULL", accountID, kid))
	if err != nil {
		return writeErr(err, "EAB key "+kid)
	}
	if n == 1 {
		return nil
	}
	var one int
	if err := t.tx.QueryRow(ctx, "SELECT 1 FROM acme_eab_keys WHERE kid = $1", kid).Scan(&one); err != nil {
		return readErr(err, "EAB key "+kid)
	}
	return fmt.Errorf("%w: EAB key %s is revoked or already bound", store.ErrConflict, kid)
}

const eabColumns = "kid, profile, owner, sealed, created_at, revoked_at, account_id"

func scanEAB(sc pgx.Row) (*store.EABKey, error) {
	var k store.EABKey
	var created, revoked pgtype.Timestamptz
	if err := sc.Scan(&k.KID, &k.Profile, &k.Owner, &k.Sealed, &created, &revoked, &k.AccountID); err != nil {
		return nil, err
	}
	k.CreatedAt, k.RevokedAt = fromTS(created), fromTS(revoked)
	return &k, nil
}

func (s *Store) GetEABKey(ctx context.Context, kid string) (*store.EABKey, error) {
	k, err := scanEAB(s.pool.QueryRow(ctx, "SELECT "+eabColumns+" FROM acme_eab_keys WHERE kid = $1", kid))
	if err != nil {
		return nil, readErr(err, "EAB key "+kid)
	}
	return k, nil
}

func (s *Store) ListEABKeys(ctx context.Context, profile string) ([]*store.EABKey, error) {
	return queryAll(ctx, s.pool, "EAB keys", "SELECT "+eabColumns+" FROM acme_eab_keys WHERE $1 = '' OR profile = $2 ORDER BY created_at, kid", scanEAB, profile, profile)
}

// Accounts.

func (t *txn) InsertACMEAccount(ctx context.Context, a *store.ACMEAccount) error {
	contact := nilIfEmpty(a.Contact)
	_, err := t.tx.Exec(ctx, `INSERT INTO acme_accounts (id, profile, thumbprint, jwk, status, contact, owner, eab_kid, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		a.ID, a.Profile, a.Thumbprint, a.JWK, a.Status, contact, a.Owner, a.EABKID, ts(a.CreatedAt))
	if err != nil {
		return writeErr(err, "ACME account "+a.ID)
	}
	return nil
}

func (t *txn) UpdateACMEAccount(ctx context.Context, a *store.ACMEAccount) error {
	contact := nilIfEmpty(a.Contact)
	n, err := pgAffected(t.tx.Exec(ctx, "UPDATE acme_accounts SET status = $1, contact = $2, jwk = $3, thumbprint = $4 WHERE id = $5",
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

func scanACMEAccount(sc pgx.Row) (*store.ACMEAccount, error) {
	var a store.ACMEAccount
	var created pgtype.Timestamptz
	if err := sc.Scan(&a.ID, &a.Profile, &a.Thumbprint, &a.JWK, &a.Status, &a.Contact, &a.Owner, &a.EABKID, &created); err != nil {
		return nil, err
	}
	a.CreatedAt = fromTS(created)
	return &a, nil
}

func (s *Store) GetACMEAccount(ctx context.Context, id string) (*store.ACMEAccount, error) {
	a, err := scanACMEAccount(s.pool.QueryRow(ctx, "SELECT "+acmeAccountColumns+" FROM acme_accounts WHERE id = $1", id))
	if err != nil {
		return nil, readErr(err, "ACME account "+id)
	}
	return a, nil
}

func (s *Store) GetACMEAccountByKey(ctx context.Context, profile, thumbprint string) (*store.ACMEAccount, error) {
	a, err := scanACMEAccount(s.pool.QueryRow(ctx, "SELECT "+acmeAccountColumns+" FROM acme_accounts WHERE profile = $1 AND thumbprint = $2", profile, thumbprint))
	if err != nil {
		return nil, readErr(err, "ACME account")
	}
	return a, nil
}

// Orders.

func (t *txn) InsertACMEOrder(ctx context.Context, o *store.ACMEOrder) error {
	o.Version = 1
	_, err := t.tx.Exec(ctx, `INSERT INTO acme_orders (id, account_id, profile, status, expires_at, replaces, serial, doc, version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		o.ID, o.AccountID, o.Profile, o.Status, ts(o.Expires), o.Replaces, o.Serial, o.Doc, o.Version, ts(o.CreatedAt))
	if err != nil {
		return writeErr(err, "ACME order "+o.ID)
	}
	return nil
}

func (t *txn) UpdateACMEOrder(ctx context.Context, o *store.ACMEOrder) error {
	n, err := pgAffected(t.tx.Exec(ctx, "UPDATE acme_orders SET status = $1, expires_at = $2, serial = $3, doc = $4, version = version + 1 WHERE id = $5 AND version = $6",
		o.Status, ts(o.Expires), o.Serial, o.Doc, o.ID, o.Version))
	if err != nil {
		return writeErr(err, "ACME order "+o.ID)
	}
	if n == 1 {
		o.Version++
		return nil
	}
	var one int
	if err := t.tx.QueryRow(ctx, "SELECT 1 FROM acme_orders WHERE id = $1", o.ID).Scan(&one); err != nil {
		return readErr(err, "ACME order "+o.ID)
	}
	return fmt.Errorf("%w: ACME order %s changed concurrently", store.ErrConflict, o.ID)
}

const acmeOrderColumns = "id, account_id, profile, status, expires_at, replaces, serial, doc, version, created_at"

func scanACMEOrder(sc pgx.Row) (*store.ACMEOrder, error) {
	var o store.ACMEOrder
	var exp, created pgtype.Timestamptz
	if err := sc.Scan(&o.ID, &o.AccountID, &o.Profile, &o.Status, &exp, &o.Replaces, &o.Serial, &o.Doc, &o.Version, &created); err != nil {
		return nil, err
	}
	o.Expires, o.CreatedAt = fromTS(exp), fromTS(created)
	return &o, nil
}

func (s *Store) GetACMEOrder(ctx context.Context, id string) (*store.ACMEOrder, error) {
	o, err := scanACMEOrder(s.pool.QueryRow(ctx, "SELECT "+acmeOrderColumns+" FROM acme_orders WHERE id = $1", id))
	if err != nil {
		return nil, readErr(err, "ACME order "+id)
	}
	return o, nil
}

func (s *Store) ACMEOrderReplacing(ctx context.Context, certID string) (*store.ACMEOrder, error) {
	if certID == "" {
		return nil, fmt.Errorf("%w: ACME order replacing nothing", store.ErrNotFound)
	}
	o, err := scanACMEOrder(s.pool.QueryRow(ctx, "SELECT "+acmeOrderColumns+" FROM acme_orders WHERE replaces = $1", certID))
	if err != nil {
		return nil, readErr(err, "ACME order replacing "+certID)
	}
	return o, nil
}

// Nonces.

func (t *txn) UseACMENonce(ctx context.Context, nonce string, expires time.Time) error {
	// ON CONFLICT DO NOTHING: a replay must not abort the transaction,
	// which still records the refusal.
	n, err := pgAffected(t.tx.Exec(ctx, "INSERT INTO acme_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING", nonce, ts(expires)))
	if err != nil {
		return writeErr(err, "ACME nonce")
	}
	if n == 0 {
		return fmt.Errorf("%w: ACME nonce already used", store.ErrConflict)
	}
	return nil
}

func (t *txn) PurgeACMENonces(ctx context.Context, before time.Time) (int64, error) {
	n, err := pgAffected(t.tx.Exec(ctx, "DELETE FROM acme_nonces WHERE expires_at < $1", ts(before)))
	if err != nil {
		return 0, fmt.Errorf("postgres: purging ACME nonces: %w", err)
	}
	return n, nil
}

// pgAffected returns the rows an Exec changed.
func pgAffected(tag pgconn.CommandTag, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// Early renewal (ARI).

func (t *txn) MarkRenewEarly(ctx context.Context, serial string, at time.Time) error {
	if _, err := t.tx.Exec(ctx, "INSERT INTO acme_renew_early (serial, marked_at) VALUES ($1, $2) ON CONFLICT (serial) DO NOTHING", serial, ts(at)); err != nil {
		return writeErr(err, "early renewal of "+serial)
	}
	return nil
}

func (s *Store) RenewEarlyAt(ctx context.Context, serial string) (time.Time, error) {
	var at pgtype.Timestamptz
	if err := s.pool.QueryRow(ctx, "SELECT marked_at FROM acme_renew_early WHERE serial = $1", serial).Scan(&at); err != nil {
		return time.Time{}, readErr(err, "early renewal of "+serial)
	}
	return fromTS(at), nil
}

func (s *Store) ListACMEAccounts(ctx context.Context) ([]*store.ACMEAccount, error) {
	return queryAll(ctx, s.pool, "ACME accounts", "SELECT "+acmeAccountColumns+" FROM acme_accounts ORDER BY created_at, id", scanACMEAccount)
}

func (s *Store) ListRenewEarly(ctx context.Context) (map[string]time.Time, error) {
	type mark struct {
		serial string
		at     time.Time
	}
	marks, err := queryAll(ctx, s.pool, "early renewals", "SELECT serial, marked_at FROM acme_renew_early", func(row pgx.Row) (mark, error) {
		var m mark
		var at pgtype.Timestamptz
		err := row.Scan(&m.serial, &at)
		m.at = fromTS(at)
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
	return queryAll(ctx, s.pool, "ACME orders", "SELECT id FROM acme_orders WHERE account_id = $1 ORDER BY created_at DESC, id LIMIT $2", func(row pgx.Row) (string, error) {
		var id string
		return id, row.Scan(&id)
	}, accountID, limit)
}

// Rate limits.

func (t *txn) TakeACMERate(ctx context.Context, key string, window time.Time, limit int) (int, bool, error) {
	// ON CONFLICT DO UPDATE locks the row and re-checks the WHERE on its
	// newest version, so concurrent orders on any replica count exactly.
	var n int
	err := t.tx.QueryRow(ctx, `INSERT INTO acme_rate_counts (key, window_start, n) VALUES ($1, $2, 1)
		ON CONFLICT (key, window_start) DO UPDATE SET n = acme_rate_counts.n + 1 WHERE acme_rate_counts.n < $3
		RETURNING n`, key, ts(window), limit).Scan(&n)
	if err == pgx.ErrNoRows {
		if err := t.tx.QueryRow(ctx, "SELECT n FROM acme_rate_counts WHERE key = $1 AND window_start = $2", key, ts(window)).Scan(&n); err != nil {
			return 0, false, fmt.Errorf("postgres: reading rate count %s: %w", key, err)
		}
		return n, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("postgres: counting rate %s: %w", key, err)
	}
	return n, true, nil
}

func (t *txn) PurgeACMERates(ctx context.Context, before time.Time) (int64, error) {
	n, err := pgAffected(t.tx.Exec(ctx, "DELETE FROM acme_rate_counts WHERE window_start < $1", ts(before)))
	if err != nil {
		return 0, fmt.Errorf("postgres: purging ACME rate counts: %w", err)
	}
	return n, nil
}
