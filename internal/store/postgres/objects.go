package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// Profiles.

func (t *txn) PutProfile(ctx context.Context, p *store.Profile) error {
	doc := p.Doc
	if doc == nil {
		doc = []byte{} // the column is NOT NULL
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO profiles (name, doc, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`,
		p.Name, doc, ts(p.UpdatedAt))
	if err != nil {
		return writeErr(err, "profile "+p.Name)
	}
	return nil
}

func (t *txn) DeleteProfile(ctx context.Context, name string) error {
	tag, err := t.tx.Exec(ctx, "DELETE FROM profiles WHERE name = $1", name)
	if err != nil {
		return writeErr(err, "profile "+name)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: profile %s", store.ErrNotFound, name)
	}
	return nil
}

const profileColumns = "name, doc, updated_at"

func scanProfile(row pgx.Row) (*store.Profile, error) {
	var p store.Profile
	var updated pgtype.Timestamptz
	if err := row.Scan(&p.Name, &p.Doc, &updated); err != nil {
		return nil, err
	}
	p.Doc, p.UpdatedAt = nilIfEmpty(p.Doc), fromTS(updated)
	return &p, nil
}

func (s *Store) GetProfile(ctx context.Context, name string) (*store.Profile, error) {
	p, err := scanProfile(s.pool.QueryRow(ctx, "SELECT "+profileColumns+" FROM profiles WHERE name = $1", name))
	if err != nil {
		return nil, readErr(err, "profile "+name)
	}
	return p, nil
}

func (s *Store) ListProfiles(ctx context.Context) ([]*store.Profile, error) {
	return queryAll(ctx, s.pool, "profiles", "SELECT "+profileColumns+" FROM profiles ORDER BY name", scanProfile)
}

// Tokens.

// InsertToken reports a duplicate ID from the row count rather than a unique
// violation, which would abort the transaction (see insertCertSQL).
func (t *txn) InsertToken(ctx context.Context, tok *identity.Token) error {
	tag, err := t.tx.Exec(ctx, `INSERT INTO tokens
		(id, name, role, profiles, secret_hash, created_by, created_at, expires_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO NOTHING`,
		tok.ID, tok.Name, string(tok.Role), textArray(tok.Profiles), blob(tok.SecretHash), tok.CreatedBy,
		ts(tok.CreatedAt), ts(tok.ExpiresAt), ts(tok.RevokedAt))
	if err != nil {
		return writeErr(err, "token "+tok.ID)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: token %s already exists", store.ErrConflict, tok.ID)
	}
	return nil
}

// RevokeToken keeps the first revocation time if the token is already
// revoked: revocation is idempotent and its time is not rewritten.
func (t *txn) RevokeToken(ctx context.Context, id string, at time.Time) error {
	tag, err := t.tx.Exec(ctx, "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2", ts(at), id)
	if err != nil {
		return writeErr(err, "token "+id)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: token %s", store.ErrNotFound, id)
	}
	return nil
}

const tokenColumns = "id, name, role, profiles, secret_hash, created_by, created_at, expires_at, revoked_at"

func scanToken(row pgx.Row) (*identity.Token, error) {
	var (
		t                         identity.Token
		role                      string
		created, expires, revoked pgtype.Timestamptz
	)
	if err := row.Scan(&t.ID, &t.Name, &role, &t.Profiles, &t.SecretHash, &t.CreatedBy, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	t.Role, t.Profiles, t.SecretHash = identity.Role(role), nilIfEmpty(t.Profiles), nilIfEmpty(t.SecretHash)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromTS(created), fromTS(expires), fromTS(revoked)
	return &t, nil
}

func (s *Store) GetToken(ctx context.Context, id string) (*identity.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, "SELECT "+tokenColumns+" FROM tokens WHERE id = $1", id))
	if err != nil {
		return nil, readErr(err, "token "+id)
	}
	return t, nil
}

// ListTokens orders by creation time, then ID. NULLS FIRST matches SQLite,
// where NULL sorts lowest.
func (s *Store) ListTokens(ctx context.Context) ([]*identity.Token, error) {
	return queryAll(ctx, s.pool, "tokens", "SELECT "+tokenColumns+" FROM tokens ORDER BY created_at NULLS FIRST, id", scanToken)
}

// Issuers.

// PutIssuer upserts i. There is at most one default issuer, so putting one
// with IsDefault demotes the previous default in the same transaction. Two
// transactions promoting different issuers at once: the second fails on the
// partial unique index (ErrConflict) instead of leaving two defaults.
func (t *txn) PutIssuer(ctx context.Context, i *store.Issuer) error {
	if i.IsDefault {
		if _, err := t.tx.Exec(ctx, "UPDATE issuers SET is_default = false WHERE is_default AND id <> $1", i.ID); err != nil {
			return writeErr(err, "issuer "+i.ID)
		}
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO issuers (id, cert_der, key_ref, parent_id, is_default, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET cert_der = excluded.cert_der, key_ref = excluded.key_ref,
			parent_id = excluded.parent_id, is_default = excluded.is_default, created_at = excluded.created_at`,
		i.ID, blob(i.CertDER), i.KeyRef, i.ParentID, i.IsDefault, ts(i.CreatedAt))
	if err != nil {
		return writeErr(err, "issuer "+i.ID)
	}
	return nil
}

const issuerColumns = "id, cert_der, key_ref, parent_id, is_default, created_at"

func scanIssuer(row pgx.Row) (*store.Issuer, error) {
	var i store.Issuer
	var created pgtype.Timestamptz
	if err := row.Scan(&i.ID, &i.CertDER, &i.KeyRef, &i.ParentID, &i.IsDefault, &created); err != nil {
		return nil, err
	}
	i.CertDER, i.CreatedAt = nilIfEmpty(i.CertDER), fromTS(created)
	return &i, nil
}

func (s *Store) GetIssuer(ctx context.Context, id string) (*store.Issuer, error) {
	i, err := scanIssuer(s.pool.QueryRow(ctx, "SELECT "+issuerColumns+" FROM issuers WHERE id = $1", id))
	if err != nil {
		return nil, readErr(err, "issuer "+id)
	}
	return i, nil
}

// ListIssuers orders by ID.
func (s *Store) ListIssuers(ctx context.Context) ([]*store.Issuer, error) {
	return queryAll(ctx, s.pool, "issuers", "SELECT "+issuerColumns+" FROM issuers ORDER BY id", scanIssuer)
}

// CRLs.

// crlLockClass is the first key of the per-issuer CRL advisory lock
// pg_advisory_xact_lock(crlLockClass, hashtext(issuer_id)). The two-int4 key
// space is distinct from the bigint one the migration lock uses.
const crlLockClass int32 = 0x5349_4743 // "SIGC"

// lockCRLs serialises CRL numbering of one issuer until the transaction
// ends. Without it, two transactions could both read the same maximum and
// insert, say, 5 and 4: both commit and numbers stop increasing in commit
// order. After the lock, each statement's fresh READ COMMITTED snapshot sees
// the previous holder's CRL (a transaction is visible before its locks are
// released). A hashtext collision only makes two issuers take turns.
func (t *txn) lockCRLs(ctx context.Context, issuerID string) error {
	if _, err := t.tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", crlLockClass, issuerID); err != nil {
		return fmt.Errorf("postgres: locking CRL numbers of issuer %s: %w", issuerID, err)
	}
	return nil
}

func (t *txn) InsertCRL(ctx context.Context, c *store.CRL) error {
	if err := t.lockCRLs(ctx, c.IssuerID); err != nil {
		return err
	}
	var highest pgtype.Int8
	if err := t.tx.QueryRow(ctx, "SELECT MAX(number) FROM crls WHERE issuer_id = $1", c.IssuerID).Scan(&highest); err != nil {
		return fmt.Errorf("postgres: reading CRL numbers: %w", err)
	}
	if highest.Valid && c.Number <= highest.Int64 {
		return fmt.Errorf("%w: CRL number %d for issuer %s is not above the latest, %d", store.ErrConflict, c.Number, c.IssuerID, highest.Int64)
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO crls (issuer_id, number, this_update, next_update, der)
		VALUES ($1, $2, $3, $4, $5)`, c.IssuerID, c.Number, ts(c.ThisUpdate), ts(c.NextUpdate), blob(c.DER))
	if err != nil {
		return writeErr(err, fmt.Sprintf("CRL %d of issuer %s", c.Number, c.IssuerID))
	}
	return nil
}

// NextCRLNumber takes the issuer's CRL lock too, so the number it returns
// stays the next one until this transaction ends: concurrent CRL generators
// take turns instead of one failing in InsertCRL.
func (t *txn) NextCRLNumber(ctx context.Context, issuerID string) (int64, error) {
	if err := t.lockCRLs(ctx, issuerID); err != nil {
		return 0, err
	}
	var n int64
	if err := t.tx.QueryRow(ctx, "SELECT COALESCE(MAX(number), 0) + 1 FROM crls WHERE issuer_id = $1", issuerID).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: reading CRL numbers: %w", err)
	}
	return n, nil
}

func (s *Store) LatestCRL(ctx context.Context, issuerID string) (*store.CRL, error) {
	c := store.CRL{IssuerID: issuerID}
	var this, next pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, `SELECT number, this_update, next_update, der FROM crls
		WHERE issuer_id = $1 ORDER BY number DESC LIMIT 1`, issuerID).Scan(&c.Number, &this, &next, &c.DER)
	if err != nil {
		return nil, readErr(err, "CRL of issuer "+issuerID)
	}
	c.ThisUpdate, c.NextUpdate, c.DER = fromTS(this), fromTS(next), nilIfEmpty(c.DER)
	return &c, nil
}

// ListCRLs orders by issuer ID, then number.
func (s *Store) ListCRLs(ctx context.Context, issuerID string) ([]*store.CRL, error) {
	q := "SELECT issuer_id, number, this_update, next_update, der FROM crls"
	var args []any
	if issuerID != "" {
		q, args = q+" WHERE issuer_id = $1", append(args, issuerID)
	}
	return queryAll(ctx, s.pool, "CRLs", q+" ORDER BY issuer_id, number", func(row pgx.Row) (*store.CRL, error) {
		var c store.CRL
		var this, next pgtype.Timestamptz
		if err := row.Scan(&c.IssuerID, &c.Number, &this, &next, &c.DER); err != nil {
			return nil, err
		}
		c.ThisUpdate, c.NextUpdate, c.DER = fromTS(this), fromTS(next), nilIfEmpty(c.DER)
		return &c, nil
	}, args...)
}
