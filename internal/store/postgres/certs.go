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

const certColumns = `serial, issuer_id, profile, status, requester, owner, labels,
	common_name, dns_names, ip_addresses, uris, emails,
	key_type, spki_sha256, sha256,
	not_before, not_after, created_at, issued_at, revoked_at, revocation_reason,
	tbs, der`

// The INSERT uses ON CONFLICT DO NOTHING and reports a duplicate from the
// row count: a unique violation would abort the whole PostgreSQL
// transaction, whereas ErrConflict must leave it usable (as in SQLite) for a
// caller that handles the conflict and carries on.
const (
	insertCertSQL = `INSERT INTO certificates (` + certColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
		ON CONFLICT (serial) DO NOTHING`
	markIssuedSQL = `UPDATE certificates SET status = 'issued', der = $1, sha256 = $2, issued_at = $3, tbs = NULL
		WHERE serial = $4 AND status = 'planned'`
	revokeSQL = `UPDATE certificates SET status = 'revoked', revoked_at = $1, revocation_reason = $2
		WHERE serial = $3 AND status = 'issued'`
)

func (t *txn) InsertCertificate(ctx context.Context, c *identity.Certificate) error {
	var labels any
	if len(c.Labels) > 0 {
		labels = c.Labels // pgx encodes it as JSON for the jsonb column
	}
	tag, err := t.tx.Exec(ctx, insertCertSQL,
		string(c.Serial), c.IssuerID, c.Profile, string(c.Status), c.Requester, c.Owner, labels,
		c.CommonName, textArray(c.DNSNames), textArray(c.IPAddresses), textArray(c.URIs), textArray(c.Emails),
		c.KeyType, c.SPKIFingerprint, c.Fingerprint,
		ts(c.NotBefore), ts(c.NotAfter), ts(c.CreatedAt), ts(c.IssuedAt), ts(c.RevokedAt),
		int32(c.RevocationReason), blob(c.TBS), blob(c.DER))
	if err != nil {
		return writeErr(err, "certificate "+string(c.Serial))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: certificate %s already exists", store.ErrConflict, c.Serial)
	}
	return nil
}

func (t *txn) MarkIssued(ctx context.Context, serial identity.Serial, der []byte, fingerprint string, issuedAt time.Time) error {
	tag, err := t.tx.Exec(ctx, markIssuedSQL, blob(der), fingerprint, ts(issuedAt), string(serial))
	if err != nil {
		return writeErr(err, "certificate "+string(serial))
	}
	if tag.RowsAffected() == 0 {
		return t.transitionErr(ctx, serial, identity.StatusPlanned, "mark issued")
	}
	return nil
}

func (t *txn) Revoke(ctx context.Context, serial identity.Serial, reason identity.RevocationReason, at time.Time) error {
	tag, err := t.tx.Exec(ctx, revokeSQL, ts(at), int32(reason), string(serial))
	if err != nil {
		return writeErr(err, "certificate "+string(serial))
	}
	if tag.RowsAffected() == 0 {
		return t.transitionErr(ctx, serial, identity.StatusIssued, "revoke")
	}
	return nil
}

// transitionErr explains why a conditional UPDATE changed nothing: the
// certificate is missing, or not in the state the transition starts from.
// (Under READ COMMITTED the UPDATE waited for, and re-checked, any
// concurrent change to the row, so this reflects the latest committed state.)
func (t *txn) transitionErr(ctx context.Context, serial identity.Serial, want identity.CertStatus, op string) error {
	var status string
	err := t.tx.QueryRow(ctx, "SELECT status FROM certificates WHERE serial = $1", string(serial)).Scan(&status)
	if err != nil {
		return readErr(err, "certificate "+string(serial))
	}
	return fmt.Errorf("%w: cannot %s certificate %s: it is %s, not %s", store.ErrConflict, op, serial, status, want)
}

func scanCert(row pgx.Row) (*identity.Certificate, error) {
	var (
		c                            identity.Certificate
		serial, status               string
		notBefore, notAfter, created pgtype.Timestamptz
		issued, revoked              pgtype.Timestamptz
		reason                       int32
	)
	err := row.Scan(&serial, &c.IssuerID, &c.Profile, &status, &c.Requester, &c.Owner, &c.Labels,
		&c.CommonName, &c.DNSNames, &c.IPAddresses, &c.URIs, &c.Emails,
		&c.KeyType, &c.SPKIFingerprint, &c.Fingerprint,
		&notBefore, &notAfter, &created, &issued, &revoked, &reason,
		&c.TBS, &c.DER)
	if err != nil {
		return nil, err
	}
	c.Serial, c.Status, c.RevocationReason = identity.Serial(serial), identity.CertStatus(status), identity.RevocationReason(reason)
	c.NotBefore, c.NotAfter, c.CreatedAt = fromTS(notBefore), fromTS(notAfter), fromTS(created)
	c.IssuedAt, c.RevokedAt = fromTS(issued), fromTS(revoked)
	c.TBS, c.DER = nilIfEmpty(c.TBS), nilIfEmpty(c.DER)
	return &c, nil
}

func (s *Store) GetCertificate(ctx context.Context, serial identity.Serial) (*identity.Certificate, error) {
	c, err := scanCert(s.pool.QueryRow(ctx, "SELECT "+certColumns+" FROM certificates WHERE serial = $1", string(serial)))
	if err != nil {
		return nil, readErr(err, "certificate "+string(serial))
	}
	return c, nil
}

// ListCertificates orders by CreatedAt descending, then serial numerically.
// NULLS LAST matches SQLite, where NULL sorts lowest.
func (s *Store) ListCertificates(ctx context.Context, f store.CertFilter) ([]*identity.Certificate, error) {
	var w whereClause
	if len(f.Serials) > 0 {
		serials := make([]string, len(f.Serials))
		for i, sn := range f.Serials {
			serials[i] = string(sn)
		}
		w.add("serial = ANY(?)", serials)
	}
	if f.Status != "" {
		w.add("status = ?", string(f.Status))
	}
	if f.Profile != "" {
		w.add("profile = ?", f.Profile)
	}
	if f.IssuerID != "" {
		w.add("issuer_id = ?", f.IssuerID)
	}
	if !f.NotAfterBefore.IsZero() {
		w.add("not_after < ?", ceilMicros(f.NotAfterBefore))
	}
	if !f.NotAfterAfter.IsZero() {
		w.add("not_after > ?", floorMicros(f.NotAfterAfter))
	}
	q := w.limit("SELECT "+certColumns+" FROM certificates"+w.String()+
		" ORDER BY created_at DESC NULLS LAST, "+serialOrder, f.Limit)
	return queryAll(ctx, s.pool, "certificates", q, scanCert, w.args...)
}

func (s *Store) RevokedCertificates(ctx context.Context, issuerID string, notAfterSince time.Time) ([]store.RevokedEntry, error) {
	return queryAll(ctx, s.pool, "revoked certificates", `SELECT serial, revoked_at, revocation_reason FROM certificates
		WHERE status = 'revoked' AND issuer_id = $1 AND not_after > $2
		ORDER BY `+serialOrder, func(row pgx.Row) (store.RevokedEntry, error) {
		var (
			serial string
			at     pgtype.Timestamptz
			reason int32
		)
		if err := row.Scan(&serial, &at, &reason); err != nil {
			return store.RevokedEntry{}, err
		}
		return store.RevokedEntry{Serial: identity.Serial(serial), RevokedAt: fromTS(at), Reason: identity.RevocationReason(reason)}, nil
	}, issuerID, floorMicros(notAfterSince))
}
