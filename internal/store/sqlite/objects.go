package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// queryAll runs q on the reader pool and scans every row with scan.
func queryAll[T any](ctx context.Context, db *sql.DB, what, q string, scan func(scanner) (T, error), args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: listing %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing %s: %w", what, err)
	}
	return out, nil
}

// Profiles.

func (t *txn) PutProfile(ctx context.Context, p *store.Profile) error {
	doc := p.Doc
	if doc == nil {
		doc = []byte{} // the column is NOT NULL
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO profiles (name, doc, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`,
		p.Name, doc, micros(p.UpdatedAt))
	if err != nil {
		return writeErr(err, "profile "+p.Name)
	}
	return nil
}

func (t *txn) DeleteProfile(ctx context.Context, name string) error {
	n, err := affected(t.tx.ExecContext(ctx, "DELETE FROM profiles WHERE name = ?", name))
	if err != nil {
		return writeErr(err, "profile "+name)
	}
	if n == 0 {
		return fmt.Errorf("%w: profile %s", store.ErrNotFound, name)
	}
	return nil
}

const profileColumns = "name, doc, updated_at"

func scanProfile(sc scanner) (*store.Profile, error) {
	var p store.Profile
	var updated sql.NullInt64
	if err := sc.Scan(&p.Name, &p.Doc, &updated); err != nil {
		return nil, err
	}
	p.Doc, p.UpdatedAt = nilIfEmpty(p.Doc), fromMicros(updated)
	return &p, nil
}

func (s *Store) GetProfile(ctx context.Context, name string) (*store.Profile, error) {
	p, err := scanProfile(s.r.QueryRowContext(ctx, "SELECT "+profileColumns+" FROM profiles WHERE name = ?", name))
	if err != nil {
		return nil, readErr(err, "profile "+name)
	}
	return p, nil
}

func (s *Store) ListProfiles(ctx context.Context) ([]*store.Profile, error) {
	return queryAll(ctx, s.r, "profiles", "SELECT "+profileColumns+" FROM profiles ORDER BY name", scanProfile)
}

// Tokens.

func (t *txn) InsertToken(ctx context.Context, tok *identity.Token) error {
	profiles, err := jsonText(tok.Profiles, len(tok.Profiles))
	if err != nil {
		return fmt.Errorf("sqlite: encoding token profiles: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO tokens
		(id, name, role, profiles, secret_hash, created_by, created_at, expires_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tok.ID, tok.Name, string(tok.Role), profiles, blob(tok.SecretHash), tok.CreatedBy,
		micros(tok.CreatedAt), micros(tok.ExpiresAt), micros(tok.RevokedAt))
	if err != nil {
		return writeErr(err, "token "+tok.ID)
	}
	return nil
}

// RevokeToken keeps the first revocation time if the token is already
// revoked: revocation is idempotent and its time is not rewritten.
func (t *txn) RevokeToken(ctx context.Context, id string, at time.Time) error {
	n, err := affected(t.tx.ExecContext(ctx,
		"UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", micros(at), id))
	if err != nil {
		return writeErr(err, "token "+id)
	}
	if n == 0 {
		return fmt.Errorf("%w: token %s", store.ErrNotFound, id)
	}
	return nil
}

const tokenColumns = "id, name, role, profiles, secret_hash, created_by, created_at, expires_at, revoked_at"

func scanToken(sc scanner) (*identity.Token, error) {
	var (
		t                         identity.Token
		role                      string
		profiles                  sql.NullString
		created, expires, revoked sql.NullInt64
	)
	if err := sc.Scan(&t.ID, &t.Name, &role, &profiles, &t.SecretHash, &t.CreatedBy, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	t.Role, t.SecretHash = identity.Role(role), nilIfEmpty(t.SecretHash)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromMicros(created), fromMicros(expires), fromMicros(revoked)
	if err := fromJSON(profiles, &t.Profiles); err != nil {
		return nil, fmt.Errorf("decoding token %s: %w", t.ID, err)
	}
	return &t, nil
}

func (s *Store) GetToken(ctx context.Context, id string) (*identity.Token, error) {
	t, err := scanToken(s.stmts.getToken.QueryRowContext(ctx, id))
	if err != nil {
		return nil, readErr(err, "token "+id)
	}
	return t, nil
}

// ListTokens orders by creation time, then ID.
func (s *Store) ListTokens(ctx context.Context) ([]*identity.Token, error) {
	return queryAll(ctx, s.r, "tokens", "SELECT "+tokenColumns+" FROM tokens ORDER BY created_at, id", scanToken)
}

// Issuers.

// PutIssuer upserts i. There is at most one default issuer, so putting one
// with IsDefault demotes the previous default in the same transaction.
func (t *txn) PutIssuer(ctx context.Context, i *store.Issuer) error {
	if i.IsDefault {
		if _, err := t.tx.ExecContext(ctx, "UPDATE issuers SET is_default = 0 WHERE is_default = 1 AND id <> ?", i.ID); err != nil {
			return writeErr(err, "issuer "+i.ID)
		}
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO issuers (id, cert_der, key_ref, parent_id, is_default, created_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET cert_der = excluded.cert_der, key_ref = excluded.key_ref,
			parent_id = excluded.parent_id, is_default = excluded.is_default, created_at = excluded.created_at`,
		i.ID, blob(i.CertDER), i.KeyRef, i.ParentID, i.IsDefault, micros(i.CreatedAt))
	if err != nil {
		return writeErr(err, "issuer "+i.ID)
	}
	return nil
}

const issuerColumns = "id, cert_der, key_ref, parent_id, is_default, created_at"

func scanIssuer(sc scanner) (*store.Issuer, error) {
	var i store.Issuer
	var created sql.NullInt64
	if err := sc.Scan(&i.ID, &i.CertDER, &i.KeyRef, &i.ParentID, &i.IsDefault, &created); err != nil {
		return nil, err
	}
	i.CertDER, i.CreatedAt = nilIfEmpty(i.CertDER), fromMicros(created)
	return &i, nil
}

func (s *Store) GetIssuer(ctx context.Context, id string) (*store.Issuer, error) {
	i, err := scanIssuer(s.r.QueryRowContext(ctx, "SELECT "+issuerColumns+" FROM issuers WHERE id = ?", id))
	if err != nil {
		return nil, readErr(err, "issuer "+id)
	}
	return i, nil
}

// ListIssuers orders by ID.
func (s *Store) ListIssuers(ctx context.Context) ([]*store.Issuer, error) {
	return queryAll(ctx, s.r, "issuers", "SELECT "+issuerColumns+" FROM issuers ORDER BY id", scanIssuer)
}

// CRLs.

func (t *txn) InsertCRL(ctx context.Context, c *store.CRL) error {
	var highest sql.NullInt64
	if err := t.tx.QueryRowContext(ctx, "SELECT MAX(number) FROM crls WHERE issuer_id = ?", c.IssuerID).Scan(&highest); err != nil {
		return fmt.Errorf("sqlite: reading CRL numbers: %w", err)
	}
	if highest.Valid && c.Number <= highest.Int64 {
		return fmt.Errorf("%w: CRL number %d for issuer %s is not above the latest, %d", store.ErrConflict, c.Number, c.IssuerID, highest.Int64)
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO crls (issuer_id, number, this_update, next_update, der)
		VALUES (?, ?, ?, ?, ?)`, c.IssuerID, c.Number, micros(c.ThisUpdate), micros(c.NextUpdate), blob(c.DER))
	if err != nil {
		return writeErr(err, fmt.Sprintf("CRL %d of issuer %s", c.Number, c.IssuerID))
	}
	return nil
}

func (t *txn) NextCRLNumber(ctx context.Context, issuerID string) (int64, error) {
	var n int64
	if err := t.tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(number), 0) + 1 FROM crls WHERE issuer_id = ?", issuerID).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: reading CRL numbers: %w", err)
	}
	return n, nil
}

func (s *Store) LatestCRL(ctx context.Context, issuerID string) (*store.CRL, error) {
	c := store.CRL{IssuerID: issuerID}
	var this, next sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT number, this_update, next_update, der FROM crls
		WHERE issuer_id = ? ORDER BY number DESC LIMIT 1`, issuerID).Scan(&c.Number, &this, &next, &c.DER)
	if err != nil {
		return nil, readErr(err, "CRL of issuer "+issuerID)
	}
	c.ThisUpdate, c.NextUpdate, c.DER = fromMicros(this), fromMicros(next), nilIfEmpty(c.DER)
	return &c, nil
}

// ListCRLs orders by issuer ID, then number.
func (s *Store) ListCRLs(ctx context.Context, issuerID string) ([]*store.CRL, error) {
	q := "SELECT issuer_id, number, this_update, next_update, der FROM crls"
	var args []any
	if issuerID != "" {
		q, args = q+" WHERE issuer_id = ?", append(args, issuerID)
	}
	return queryAll(ctx, s.r, "CRLs", q+" ORDER BY issuer_id, number", func(sc scanner) (*store.CRL, error) {
		var c store.CRL
		var this, next sql.NullInt64
		if err := sc.Scan(&c.IssuerID, &c.Number, &this, &next, &c.DER); err != nil {
			return nil, err
		}
		c.ThisUpdate, c.NextUpdate, c.DER = fromMicros(this), fromMicros(next), nilIfEmpty(c.DER)
		return &c, nil
	}, args...)
}
