package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sigil-pki/sigil/internal/store"
)

const invColumns = `fingerprint, kind, source, subject, issuer, sans, serial, not_before, not_after, is_ca,
	signature_alg, key_algorithm, key_size, spki_sha256, rule_id, issued_serial, owner, labels,
	first_seen, last_seen, der, lint_errors, lint_warnings`

var upsertIdentitySQL = `INSERT INTO inventory_identities AS i (` + invColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
	ON CONFLICT (fingerprint) DO UPDATE SET ` + store.InventoryMergeSQL("i") + `
	RETURNING (xmax = 0)`

func labelsArg(m map[string]string) any {
	if len(m) == 0 {
		return nil
	}
	return m // pgx encodes it as JSON for the jsonb column
}

// lintArg is one lint column: NULL when not linted, else an array ('{}'
// when empty, so that linted-clean differs from not linted).
func lintArg(l *store.InventoryLint, warnings bool) any {
	if l == nil {
		return nil
	}
	if warnings {
		return append([]string{}, l.Warnings...)
	}
	return append([]string{}, l.Errors...)
}

func (t *txn) UpsertIdentities(ctx context.Context, ids []*store.InventoryIdentity) (int, error) {
	// One round trip for the whole batch.
	b := &pgx.Batch{}
	for _, id := range ids {
		b.Queue(upsertIdentitySQL, id.Fingerprint, string(id.Kind), string(id.Source), id.Subject,
			id.Issuer, textArray(id.SANs), id.Serial, ts(id.NotBefore), ts(id.NotAfter), id.IsCA, id.SignatureAlg,
			id.KeyAlgorithm, id.KeySize, id.SPKISHA256, id.RuleID, id.IssuedSerial, id.Owner, labelsArg(id.Labels),
			ts(id.FirstSeen), ts(id.LastSeen), blob(id.DER), lintArg(id.Lint, false), lintArg(id.Lint, true))
	}
	br := t.tx.SendBatch(ctx, b)
	defer br.Close()
	created := 0
	for _, id := range ids {
		// xmax = 0 on the returned row: it was inserted, not updated.
		var inserted bool
		if err := br.QueryRow().Scan(&inserted); err != nil {
			return created, writeErr(err, "inventory identity "+id.Fingerprint)
		}
		if inserted {
			created++
		}
	}
	return created, br.Close()
}

const locColumns = `fingerprint, kind, host, port, path, sni, first_seen, last_seen, tls_version, cipher_suite,
	chain_index, file_mode, file_owner, detail`

// The observation fields follow the newest report.
const upsertLocationSQL = `INSERT INTO inventory_locations AS l (` + locColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
	ON CONFLICT (fingerprint, kind, host, port, path, sni) DO UPDATE SET
	first_seen = CASE WHEN l.first_seen IS NULL OR excluded.first_seen < l.first_seen THEN COALESCE(excluded.first_seen, l.first_seen) ELSE l.first_seen END,
	last_seen = CASE WHEN l.last_seen IS NULL OR excluded.last_seen >= l.last_seen THEN COALESCE(excluded.last_seen, l.last_seen) ELSE l.last_seen END,
	tls_version = CASE WHEN l.last_seen IS NULL OR excluded.last_seen >= l.last_seen THEN excluded.tls_version ELSE l.tls_version END,
	cipher_suite = CASE WHEN l.last_seen IS NULL OR excluded.last_seen >= l.last_seen THEN excluded.cipher_suite ELSE l.cipher_suite END,
	chain_index = CASE WHEN l.last_seen IS NULL OR excluded.last_seen >= l.last_seen THEN excluded.chain_index ELSE l.chain_index END,
	file_mode = CASE WHEN l.last_seen IS NULL OR excluded.last_seen >= l.last_seen THEN excluded.file_mode ELSE l.file_mode END,
	file_owner = CASE WHEN l.last_seen IS NULL OR excluded.last_seen >= l.last_seen THEN excluded.file_owner ELSE l.file_owner END,
	detail = CASE WHEN l.last_seen IS NULL OR excluded.last_seen >= l.last_seen THEN excluded.detail ELSE l.detail END
	RETURNING (xmax = 0)`

func (t *txn) UpsertLocations(ctx context.Context, locs []*store.InventoryLocation) (int, error) {
	b := &pgx.Batch{}
	for _, l := range locs {
		b.Queue(upsertLocationSQL, l.Fingerprint, string(l.Kind), l.Host, l.Port, l.Path, l.SNI,
			ts(l.FirstSeen), ts(l.LastSeen), l.TLSVersion, l.CipherSuite, l.ChainIndex, int64(l.FileMode),
			l.FileOwner, l.Detail)
	}
	br := t.tx.SendBatch(ctx, b)
	defer br.Close()
	created := 0
	for _, l := range locs {
		var inserted bool
		if err := br.QueryRow().Scan(&inserted); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23503" {
				return created, fmt.Errorf("%w: inventory identity %s", store.ErrNotFound, l.Fingerprint)
			}
			return created, writeErr(err, "inventory location")
		}
		if inserted {
			created++
		}
	}
	return created, br.Close()
}

func (t *txn) SetInventoryOwner(ctx context.Context, fingerprint, owner string, labels map[string]string) error {
	var cur map[string]string
	if err := t.tx.QueryRow(ctx, "SELECT labels FROM inventory_identities WHERE fingerprint = $1 FOR UPDATE",
		fingerprint).Scan(&cur); err != nil {
		return readErr(err, "inventory identity "+fingerprint)
	}
	if cur == nil {
		cur = map[string]string{}
	}
	for k, v := range labels {
		if v == "" {
			delete(cur, k)
		} else {
			cur[k] = v
		}
	}
	if _, err := t.tx.Exec(ctx, "UPDATE inventory_identities SET owner = $1, labels = $2 WHERE fingerprint = $3",
		owner, labelsArg(cur), fingerprint); err != nil {
		return writeErr(err, "inventory identity "+fingerprint)
	}
	return nil
}

func scanIdentity(row pgx.Row) (*store.InventoryIdentity, error) {
	var (
		id                  store.InventoryIdentity
		kind, source        string
		nb, na, first, last pgtype.Timestamptz
		keySize             int32
		lintErrs, lintWarns *[]string
	)
	if err := row.Scan(&id.Fingerprint, &kind, &source, &id.Subject, &id.Issuer, &id.SANs, &id.Serial, &nb, &na,
		&id.IsCA, &id.SignatureAlg, &id.KeyAlgorithm, &keySize, &id.SPKISHA256, &id.RuleID, &id.IssuedSerial,
		&id.Owner, &id.Labels, &first, &last, &id.DER, &lintErrs, &lintWarns); err != nil {
		return nil, err
	}
	if lintErrs != nil {
		id.Lint = &store.InventoryLint{Errors: nilIfEmpty(*lintErrs)}
		if lintWarns != nil {
			id.Lint.Warnings = nilIfEmpty(*lintWarns)
		}
	}
	id.Kind, id.Source, id.KeySize = store.InventoryKind(kind), store.InventorySource(source), int(keySize)
	id.NotBefore, id.NotAfter, id.FirstSeen, id.LastSeen = fromTS(nb), fromTS(na), fromTS(first), fromTS(last)
	id.DER, id.SANs = nilIfEmpty(id.DER), nilIfEmpty(id.SANs)
	if len(id.Labels) == 0 {
		id.Labels = nil
	}
	return &id, nil
}

func (s *Store) GetInventoryIdentity(ctx context.Context, fingerprint string) (*store.InventoryIdentity, error) {
	id, err := scanIdentity(s.pool.QueryRow(ctx, "SELECT "+invColumns+" FROM inventory_identities WHERE fingerprint = $1", fingerprint))
	if err != nil {
		return nil, readErr(err, "inventory identity "+fingerprint)
	}
	return id, nil
}

func (s *Store) GetInventoryIdentities(ctx context.Context, fingerprints []string) ([]*store.InventoryIdentity, error) {
	if len(fingerprints) == 0 {
		return nil, nil
	}
	return queryAll(ctx, s.pool, "inventory identities", "SELECT "+invColumns+" FROM inventory_identities WHERE fingerprint = ANY($1)",
		scanIdentity, fingerprints)
}

func (s *Store) ListInventory(ctx context.Context, f store.InventoryFilter) ([]*store.InventoryIdentity, error) {
	var w whereClause
	if f.Kind != "" {
		w.add("kind = ?", string(f.Kind))
	}
	if f.Source != "" {
		w.add("source = ?", string(f.Source))
	}
	if f.Owner != "" {
		w.add("owner = ?", f.Owner)
	}
	if f.Issuer != "" {
		w.add("issuer = ?", f.Issuer)
	}
	if f.KeyAlgorithm != "" {
		w.add("key_algorithm = ?", f.KeyAlgorithm)
	}
	if f.SPKISHA256 != "" {
		w.add("spki_sha256 = ?", f.SPKISHA256)
	}
	if f.IssuerUnknown {
		w.add(`kind = 'x509' AND source <> 'issued' AND issuer NOT IN
			(SELECT subject FROM inventory_identities WHERE is_ca AND source IN ('issued', 'imported'))`)
	}
	if f.Label != "" {
		k, v, hasV := strings.Cut(f.Label, "=")
		if hasV {
			w.add("labels ->> ? = ?", k, v)
		} else {
			w.add("jsonb_exists(labels, ?)", k)
		}
	}
	if f.Location != "" {
		m := store.ParseLocation(f.Location)
		switch {
		case m.PathPrefix != "":
			lo, hi := m.PathRange()
			w.add("fingerprint IN (SELECT fingerprint FROM inventory_locations WHERE path = ? OR (path >= ? AND path < ?))", m.PathPrefix, lo, hi)
		case m.Port != 0:
			w.add("fingerprint IN (SELECT fingerprint FROM inventory_locations WHERE host = ? AND port = ?)", m.Host, m.Port)
		default:
			w.add("fingerprint IN (SELECT fingerprint FROM inventory_locations WHERE host = ?)", m.Host)
		}
	}
	if !f.NotAfterBefore.IsZero() {
		w.add("not_after < ?", ceilMicros(f.NotAfterBefore))
	}
	if !f.NotAfterAfter.IsZero() {
		w.add("not_after > ?", floorMicros(f.NotAfterAfter))
	}
	if !f.SeenSince.IsZero() {
		w.add("last_seen >= ?", ceilMicros(f.SeenSince))
	}
	if f.After != "" {
		w.add("fingerprint > ?", f.After)
	}
	q := w.limit("SELECT "+invColumns+" FROM inventory_identities"+w.String()+" ORDER BY fingerprint", f.Limit)
	return queryAll(ctx, s.pool, "inventory", q, scanIdentity, w.args...)
}

func scanLocation(row pgx.Row) (*store.InventoryLocation, error) {
	var (
		l                store.InventoryLocation
		kind             string
		first, last      pgtype.Timestamptz
		port, chainIndex int32
		mode             int64
	)
	if err := row.Scan(&l.Fingerprint, &kind, &l.Host, &port, &l.Path, &l.SNI, &first, &last, &l.TLSVersion,
		&l.CipherSuite, &chainIndex, &mode, &l.FileOwner, &l.Detail); err != nil {
		return nil, err
	}
	l.Kind, l.Port, l.ChainIndex, l.FileMode = store.LocationKind(kind), int(port), int(chainIndex), uint32(mode)
	l.FirstSeen, l.LastSeen = fromTS(first), fromTS(last)
	return &l, nil
}

func (s *Store) ListInventoryLocations(ctx context.Context, fingerprints ...string) ([]*store.InventoryLocation, error) {
	if len(fingerprints) == 0 {
		return nil, nil
	}
	return queryAll(ctx, s.pool, "inventory locations", "SELECT "+locColumns+
		" FROM inventory_locations WHERE fingerprint = ANY($1) ORDER BY fingerprint, kind, host, port, path, sni",
		scanLocation, fingerprints)
}

func (s *Store) UnlintedInventory(ctx context.Context, fingerprints []string) ([]string, error) {
	if len(fingerprints) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT fingerprint FROM inventory_identities WHERE lint_errors IS NOT NULL AND fingerprint = ANY($1)", fingerprints)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading inventory lint state: %w", err)
	}
	defer rows.Close()
	linted := map[string]bool{}
	for rows.Next() {
		var fp string
		if err := rows.Scan(&fp); err != nil {
			return nil, fmt.Errorf("postgres: reading inventory lint state: %w", err)
		}
		linted[fp] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: reading inventory lint state: %w", err)
	}
	var out []string
	for _, fp := range fingerprints {
		if !linted[fp] {
			out = append(out, fp)
		}
	}
	return out, nil
}

func (s *Store) IssuedSerialsBySHA256(ctx context.Context, fingerprints []string) (map[string]string, error) {
	out := map[string]string{}
	if len(fingerprints) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT sha256, serial FROM certificates WHERE sha256 <> '' AND sha256 = ANY($1)", fingerprints)
	if err != nil {
		return nil, fmt.Errorf("postgres: looking up issued certificates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var fp, serial string
		if err := rows.Scan(&fp, &serial); err != nil {
			return nil, fmt.Errorf("postgres: looking up issued certificates: %w", err)
		}
		out[fp] = serial
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: looking up issued certificates: %w", err)
	}
	return out, nil
}

const keyReuseSQL = `WITH k AS (
	SELECT i.spki_sha256 AS spki,
		COUNT(DISTINCT CASE WHEN i.kind = 'x509' THEN i.fingerprint END) AS certs,
		COUNT(DISTINCT CASE WHEN l.detail LIKE 'private key%' THEN l.kind || '|' || l.host || '|' || l.port || '|' || l.path END) AS keylocs
	FROM inventory_identities i LEFT JOIN inventory_locations l ON l.fingerprint = i.fingerprint
	WHERE i.spki_sha256 <> ''
	GROUP BY i.spki_sha256)
SELECT k.spki, k.certs, k.keylocs, i.fingerprint FROM k JOIN inventory_identities i ON i.spki_sha256 = k.spki
WHERE k.certs > 1 OR k.keylocs > 1
ORDER BY k.spki, i.fingerprint`

func (s *Store) ListKeyReuse(ctx context.Context, limit int) ([]*store.KeyReuse, error) {
	rows, err := s.pool.Query(ctx, keyReuseSQL)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing key reuse: %w", err)
	}
	defer rows.Close()
	var out []*store.KeyReuse
	for rows.Next() {
		var spki, fp string
		var certs, keylocs int64
		if err := rows.Scan(&spki, &certs, &keylocs, &fp); err != nil {
			return nil, fmt.Errorf("postgres: listing key reuse: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].SPKISHA256 != spki {
			if limit > 0 && len(out) == limit {
				break
			}
			out = append(out, &store.KeyReuse{SPKISHA256: spki, Certificates: int(certs), KeyLocations: int(keylocs)})
		}
		last := out[len(out)-1]
		last.Fingerprints = append(last.Fingerprints, fp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: listing key reuse: %w", err)
	}
	return out, nil
}

// Scan schedules.

const schedColumns = "name, targets, ports, sni, every_us, timeout_us, concurrency, created_by, created_at, next_run, last_run, last_result"

func intArray(l []int) any {
	if len(l) == 0 {
		return nil
	}
	out := make([]int32, len(l))
	for i, v := range l {
		out[i] = int32(v)
	}
	return out
}

func (t *txn) PutScanSchedule(ctx context.Context, sc *store.ScanSchedule) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO scan_schedules (`+schedColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (name) DO UPDATE SET targets = excluded.targets, ports = excluded.ports, sni = excluded.sni,
		every_us = excluded.every_us, timeout_us = excluded.timeout_us, concurrency = excluded.concurrency,
		created_by = excluded.created_by, created_at = excluded.created_at, next_run = excluded.next_run,
		last_run = excluded.last_run, last_result = excluded.last_result`,
		sc.Name, textArray(sc.Targets), intArray(sc.Ports), textArray(sc.SNI), sc.Every.Microseconds(),
		sc.Timeout.Microseconds(), sc.Concurrency, sc.CreatedBy, ts(sc.CreatedAt), ts(sc.NextRun), ts(sc.LastRun),
		sc.LastResult)
	if err != nil {
		return writeErr(err, "scan schedule "+sc.Name)
	}
	return nil
}

func (t *txn) DeleteScanSchedule(ctx context.Context, name string) error {
	tag, err := t.tx.Exec(ctx, "DELETE FROM scan_schedules WHERE name = $1", name)
	if err != nil {
		return writeErr(err, "scan schedule "+name)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: scan schedule %s", store.ErrNotFound, name)
	}
	return nil
}

func (t *txn) MarkScanScheduleRun(ctx context.Context, name string, ran, next time.Time, result string) error {
	tag, err := t.tx.Exec(ctx, "UPDATE scan_schedules SET last_run = $1, next_run = $2, last_result = $3 WHERE name = $4",
		ts(ran), ts(next), result, name)
	if err != nil {
		return writeErr(err, "scan schedule "+name)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: scan schedule %s", store.ErrNotFound, name)
	}
	return nil
}

func scanSchedule(row pgx.Row) (*store.ScanSchedule, error) {
	var (
		s                   store.ScanSchedule
		ports               []int32
		every, timeout      int64
		concurrency         int32
		created, next, last pgtype.Timestamptz
	)
	if err := row.Scan(&s.Name, &s.Targets, &ports, &s.SNI, &every, &timeout, &concurrency, &s.CreatedBy,
		&created, &next, &last, &s.LastResult); err != nil {
		return nil, err
	}
	for _, p := range ports {
		s.Ports = append(s.Ports, int(p))
	}
	s.Targets, s.SNI = nilIfEmpty(s.Targets), nilIfEmpty(s.SNI)
	s.Every, s.Timeout, s.Concurrency = time.Duration(every)*time.Microsecond, time.Duration(timeout)*time.Microsecond, int(concurrency)
	s.CreatedAt, s.NextRun, s.LastRun = fromTS(created), fromTS(next), fromTS(last)
	return &s, nil
}

func (s *Store) GetScanSchedule(ctx context.Context, name string) (*store.ScanSchedule, error) {
	sc, err := scanSchedule(s.pool.QueryRow(ctx, "SELECT "+schedColumns+" FROM scan_schedules WHERE name = $1", name))
	if err != nil {
		return nil, readErr(err, "scan schedule "+name)
	}
	return sc, nil
}

func (s *Store) ListScanSchedules(ctx context.Context) ([]*store.ScanSchedule, error) {
	return queryAll(ctx, s.pool, "scan schedules", "SELECT "+schedColumns+" FROM scan_schedules ORDER BY name", scanSchedule)
}
