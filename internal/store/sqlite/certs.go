package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

const certColumns = `serial, issuer_id, profile, status, requester, owner, labels,
	common_name, dns_names, ip_addresses, uris, emails,
	key_type, spki_sha256, sha256,
	not_before, not_after, created_at, issued_at, revoked_at, revocation_reason,
	tbs, der`

const (
	insertCertSQL = `INSERT INTO certificates (` + certColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	markIssuedSQL = `UPDATE certificates SET status = 'issued', der = ?, sha256 = ?, issued_at = ?, tbs = NULL
		WHERE serial = ? AND status = 'planned'`
	revokeSQL = `UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ?
		WHERE serial = ? AND status = 'issued'`
)

func (t *txn) InsertCertificate(ctx context.Context, c *identity.Certificate) error {
	labels, err := jsonText(c.Labels, len(c.Labels))
	if err != nil {
		return fmt.Errorf("sqlite: encoding labels: %w", err)
	}
	lists := make([]any, 4)
	for i, l := range [][]string{c.DNSNames, c.IPAddresses, c.URIs, c.Emails} {
		if lists[i], err = jsonText(l, len(l)); err != nil {
			return fmt.Errorf("sqlite: encoding names: %w", err)
		}
	}
	_, err = t.stmt(ctx, t.s.stmts.insertCert).ExecContext(ctx,
		string(c.Serial), c.IssuerID, c.Profile, string(c.Status), c.Requester, c.Owner, labels,
		c.CommonName, lists[0], lists[1], lists[2], lists[3],
		c.KeyType, c.SPKIFingerprint, c.Fingerprint,
		micros(c.NotBefore), micros(c.NotAfter), micros(c.CreatedAt), micros(c.IssuedAt),
		micros(c.RevokedAt), int(c.RevocationReason),
		blob(c.TBS), blob(c.DER))
	if err != nil {
		return writeErr(err, "certificate "+string(c.Serial))
	}
	return nil
}

func (t *txn) MarkIssued(ctx context.Context, serial identity.Serial, der []byte, fingerprint string, issuedAt time.Time) error {
	n, err := affected(t.stmt(ctx, t.s.stmts.markIssued).ExecContext(ctx,
		blob(der), fingerprint, micros(issuedAt), string(serial)))
	if err != nil {
		return writeErr(err, "certificate "+string(serial))
	}
	if n == 0 {
		return t.transitionErr(ctx, serial, identity.StatusPlanned, "mark issued")
	}
	return nil
}

func (t *txn) Revoke(ctx context.Context, serial identity.Serial, reason identity.RevocationReason, at time.Time) error {
	n, err := affected(t.stmt(ctx, t.s.stmts.revoke).ExecContext(ctx,
		micros(at), int(reason), string(serial)))
	if err != nil {
		return writeErr(err, "certificate "+string(serial))
	}
	if n == 0 {
		return t.transitionErr(ctx, serial, identity.StatusIssued, "revoke")
	}
	return nil
}

// transitionErr explains why a conditional UPDATE changed nothing: the
// certificate is missing, or not in the state the transition starts from.
func (t *txn) transitionErr(ctx context.Context, serial identity.Serial, want identity.CertStatus, op string) error {
	var status string
	err := t.tx.QueryRowContext(ctx, "SELECT status FROM certificates WHERE serial = ?", string(serial)).Scan(&status)
	if err != nil {
		return readErr(err, "certificate "+string(serial))
	}
	return fmt.Errorf("%w: cannot %s certificate %s: it is %s, not %s", store.ErrConflict, op, serial, status, want)
}

func scanCert(sc scanner) (*identity.Certificate, error) {
	var (
		c                            identity.Certificate
		serial, status               string
		labels, dns, ips, uris, mail sql.NullString
		notBefore, notAfter, created sql.NullInt64
		issued, revoked              sql.NullInt64
		reason                       int
	)
	err := sc.Scan(&serial, &c.IssuerID, &c.Profile, &status, &c.Requester, &c.Owner, &labels,
		&c.CommonName, &dns, &ips, &uris, &mail,
		&c.KeyType, &c.SPKIFingerprint, &c.Fingerprint,
		&notBefore, &notAfter, &created, &issued, &revoked, &reason,
		&c.TBS, &c.DER)
	if err != nil {
		return nil, err
	}
	c.Serial, c.Status, c.RevocationReason = identity.Serial(serial), identity.CertStatus(status), identity.RevocationReason(reason)
	c.NotBefore, c.NotAfter, c.CreatedAt = fromMicros(notBefore), fromMicros(notAfter), fromMicros(created)
	c.IssuedAt, c.RevokedAt = fromMicros(issued), fromMicros(revoked)
	c.TBS, c.DER = nilIfEmpty(c.TBS), nilIfEmpty(c.DER)
	for _, j := range []struct {
		s   sql.NullString
		dst any
	}{{labels, &c.Labels}, {dns, &c.DNSNames}, {ips, &c.IPAddresses}, {uris, &c.URIs}, {mail, &c.Emails}} {
		if err := fromJSON(j.s, j.dst); err != nil {
			return nil, fmt.Errorf("decoding certificate %s: %w", serial, err)
		}
	}
	return &c, nil
}

func (s *Store) GetCertificate(ctx context.Context, serial identity.Serial) (*identity.Certificate, error) {
	row := s.stmts.getCert.QueryRowContext(ctx, string(serial))
	c, err := scanCert(row)
	if err != nil {
		return nil, readErr(err, "certificate "+string(serial))
	}
	return c, nil
}

func (s *Store) ListCertificates(ctx context.Context, f store.CertFilter) ([]*identity.Certificate, error) {
	var conds []string
	var args []any
	if len(f.Serials) > 0 {
		conds = append(conds, "serial IN ("+placeholders(len(f.Serials))+")")
		for _, sn := range f.Serials {
			args = append(args, string(sn))
		}
	}
	if f.Status != "" {
		conds, args = append(conds, "status = ?"), append(args, string(f.Status))
	}
	if f.Profile != "" {
		conds, args = append(conds, "profile = ?"), append(args, f.Profile)
	}
	if f.IssuerID != "" {
		conds, args = append(conds, "issuer_id = ?"), append(args, f.IssuerID)
	}
	if !f.NotAfterBefore.IsZero() {
		conds, args = append(conds, "not_after < ?"), append(args, ceilMicros(f.NotAfterBefore))
	}
	if !f.NotAfterAfter.IsZero() {
		conds, args = append(conds, "not_after > ?"), append(args, f.NotAfterAfter.UnixMicro())
	}
	q := "SELECT " + certColumns + " FROM certificates" + where(conds) +
		" ORDER BY created_at DESC, " + serialOrder
	q, args = limitClause(q, args, f.Limit)

	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing certificates: %w", err)
	}
	defer rows.Close()
	var out []*identity.Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: listing certificates: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing certificates: %w", err)
	}
	return out, nil
}

func (s *Store) RevokedCertificates(ctx context.Context, issuerID string, notAfterSince time.Time) ([]store.RevokedEntry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT serial, revoked_at, revocation_reason FROM certificates
		WHERE status = 'revoked' AND issuer_id = ? AND not_after > ?
		ORDER BY `+serialOrder, issuerID, notAfterSince.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing revoked certificates: %w", err)
	}
	defer rows.Close()
	var out []store.RevokedEntry
	for rows.Next() {
		var (
			serial string
			at     sql.NullInt64
			reason int
		)
		if err := rows.Scan(&serial, &at, &reason); err != nil {
			return nil, fmt.Errorf("sqlite: listing revoked certificates: %w", err)
		}
		out = append(out, store.RevokedEntry{Serial: identity.Serial(serial), RevokedAt: fromMicros(at), Reason: identity.RevocationReason(reason)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing revoked certificates: %w", err)
	}
	return out, nil
}
