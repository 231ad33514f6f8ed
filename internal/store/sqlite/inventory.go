package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sigil-pki/sigil/internal/store"
)

const invColumns = `fingerprint, kind, source, subject, issuer, sans, serial, not_before, not_after, is_ca,
	signature_alg, key_algorithm, key_size, spki_sha256, rule_id, issued_serial, owner, labels,
	first_seen, last_seen, der, lint_errors, lint_warnings`

func (t *txn) UpsertIdentities(ctx context.Context, ids []*store.InventoryIdentity) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	// Count the new ones first: an upsert does not say whether it inserted.
	fps := make([]string, len(ids))
	for i, id := range ids {
		fps[i] = id.Fingerprint
	}
	known := map[string]bool{}
	for chunk := range chunks(fps, 500) {
		rows, err := t.tx.QueryContext(ctx, "SELECT fingerprint FROM inventory_identities WHERE fingerprint IN ("+
			placeholders(len(chunk))+")", anySlice(chunk)...)
		if err != nil {
			return 0, fmt.Errorf("sqlite: reading inventory: %w", err)
		}
		for rows.Next() {
			var fp string
			if err := rows.Scan(&fp); err != nil {
				rows.Close()
				return 0, fmt.Errorf("sqlite: reading inventory: %w", err)
			}
			known[fp] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return 0, fmt.Errorf("sqlite: reading inventory: %w", err)
		}
	}
	ins, err := t.tx.PrepareContext(ctx, `INSERT INTO inventory_identities (`+invColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (fingerprint) DO UPDATE SET `+store.InventoryMergeSQL("inventory_identities"))
	if err != nil {
		return 0, fmt.Errorf("sqlite: preparing inventory upsert: %w", err)
	}
	defer ins.Close()
	created := 0
	for _, id := range ids {
		args, err := identityArgs(id)
		if err != nil {
			return created, err
		}
		if _, err := ins.ExecContext(ctx, args...); err != nil {
			return created, writeErr(err, "inventory identity "+id.Fingerprint)
		}
		if !known[id.Fingerprint] {
			known[id.Fingerprint] = true
			created++
		}
	}
	return created, nil
}

// identityArgs encodes id as the values of invColumns, in order.
func identityArgs(id *store.InventoryIdentity) ([]any, error) {
	sans, err := jsonText(id.SANs, len(id.SANs))
	if err != nil {
		return nil, fmt.Errorf("sqlite: encoding SANs: %w", err)
	}
	labels, err := jsonText(id.Labels, len(id.Labels))
	if err != nil {
		return nil, fmt.Errorf("sqlite: encoding labels: %w", err)
	}
	lintErrs, lintWarns, err := lintText(id.Lint)
	if err != nil {
		return nil, fmt.Errorf("sqlite: encoding lint results: %w", err)
	}
	return []any{id.Fingerprint, string(id.Kind), string(id.Source), id.Subject, id.Issuer,
		sans, id.Serial, micros(id.NotBefore), micros(id.NotAfter), id.IsCA, id.SignatureAlg, id.KeyAlgorithm,
		id.KeySize, id.SPKISHA256, id.RuleID, id.IssuedSerial, id.Owner, labels,
		micros(id.FirstSeen), micros(id.LastSeen), blob(id.DER), lintErrs, lintWarns}, nil
}

// locationArgs encodes l as the values of locColumns, in order.
func locationArgs(l *store.InventoryLocation) []any {
	return []any{l.Fingerprint, string(l.Kind), l.Host, l.Port, l.Path, l.SNI,
		micros(l.FirstSeen), micros(l.LastSeen), l.TLSVersion, l.CipherSuite, l.ChainIndex, int64(l.FileMode),
		l.FileOwner, l.Detail}
}

// lintText encodes lint results as two JSON arrays ("[]" when empty, so
// that linted-clean differs from not linted, NULL).
func lintText(l *store.InventoryLint) (errs, warns any, err error) {
	if l == nil {
		return nil, nil, nil
	}
	e, err := json.Marshal(append([]string{}, l.Errors...))
	if err != nil {
		return nil, nil, err
	}
	w, err := json.Marshal(append([]string{}, l.Warnings...))
	if err != nil {
		return nil, nil, err
	}
	return string(e), string(w), nil
}

const locColumns = `fingerprint, kind, host, port, path, sni, first_seen, last_seen, tls_version, cipher_suite,
	chain_index, file_mode, file_owner, detail`

func isForeignKey(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

func (t *txn) UpsertLocations(ctx context.Context, locs []*store.InventoryLocation) (int, error) {
	if len(locs) == 0 {
		return 0, nil
	}
	ins, err := t.tx.PrepareContext(ctx, `INSERT INTO inventory_locations (`+locColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (fingerprint, kind, host, port, path, sni) DO NOTHING`)
	if err != nil {
		return 0, fmt.Errorf("sqlite: preparing location insert: %w", err)
	}
	defer ins.Close()
	var upd *sql.Stmt
	created := 0
	for _, l := range locs {
		n, err := affected(ins.ExecContext(ctx, locationArgs(l)...))
		if err != nil {
			if isForeignKey(err) {
				return created, fmt.Errorf("%w: inventory identity %s", store.ErrNotFound, l.Fingerprint)
			}
			return created, writeErr(err, "inventory location")
		}
		if n == 1 {
			created++
			continue
		}
		if upd == nil {
			if upd, err = t.tx.PrepareContext(ctx, `UPDATE inventory_locations SET
				first_seen = CASE WHEN first_seen IS NULL OR ?1 < first_seen THEN COALESCE(?1, first_seen) ELSE first_seen END,
				last_seen = CASE WHEN last_seen IS NULL OR ?2 >= last_seen THEN COALESCE(?2, last_seen) ELSE last_seen END,
				tls_version = CASE WHEN last_seen IS NULL OR ?2 >= last_seen THEN ?3 ELSE tls_version END,
				cipher_suite = CASE WHEN last_seen IS NULL OR ?2 >= last_seen THEN ?4 ELSE cipher_suite END,
				chain_index = CASE WHEN last_seen IS NULL OR ?2 >= last_seen THEN ?5 ELSE chain_index END,
				file_mode = CASE WHEN last_seen IS NULL OR ?2 >= last_seen THEN ?6 ELSE file_mode END,
				file_owner = CASE WHEN last_seen IS NULL OR ?2 >= last_seen THEN ?7 ELSE file_owner END,
				detail = CASE WHEN last_seen IS NULL OR ?2 >= last_seen THEN ?8 ELSE detail END
				WHERE fingerprint = ?9 AND kind = ?10 AND host = ?11 AND port = ?12 AND path = ?13 AND sni = ?14`); err != nil {
				return created, fmt.Errorf("sqlite: preparing location update: %w", err)
			}
			defer upd.Close()
		}
		if _, err := upd.ExecContext(ctx, micros(l.FirstSeen), micros(l.LastSeen), l.TLSVersion, l.CipherSuite,
			l.ChainIndex, int64(l.FileMode), l.FileOwner, l.Detail,
			l.Fingerprint, string(l.Kind), l.Host, l.Port, l.Path, l.SNI); err != nil {
			return created, writeErr(err, "inventory location")
		}
	}
	return created, nil
}

func (t *txn) SetInventoryOwner(ctx context.Context, fingerprint, owner string, labels map[string]string) error {
	var cur sql.NullString
	if err := t.tx.QueryRowContext(ctx, "SELECT labels FROM inventory_identities WHERE fingerprint = ?", fingerprint).Scan(&cur); err != nil {
		return readErr(err, "inventory identity "+fingerprint)
	}
	merged := map[string]string{}
	if err := fromJSON(cur, &merged); err != nil {
		return fmt.Errorf("sqlite: decoding labels: %w", err)
	}
	for k, v := range labels {
		if v == "" {
			delete(merged, k)
		} else {
			merged[k] = v
		}
	}
	lj, err := jsonText(merged, len(merged))
	if err != nil {
		return fmt.Errorf("sqlite: encoding labels: %w", err)
	}
	if _, err := t.tx.ExecContext(ctx, "UPDATE inventory_identities SET owner = ?, labels = ? WHERE fingerprint = ?",
		owner, lj, fingerprint); err != nil {
		return writeErr(err, "inventory identity "+fingerprint)
	}
	return nil
}

func scanIdentity(sc scanner) (*store.InventoryIdentity, error) {
	var (
		id                  store.InventoryIdentity
		kind, source        string
		sans, labels        sql.NullString
		lintErrs, lintWarns sql.NullString
		nb, na, first, last sql.NullInt64
		der                 []byte
	)
	if err := sc.Scan(&id.Fingerprint, &kind, &source, &id.Subject, &id.Issuer, &sans, &id.Serial, &nb, &na, &id.IsCA,
		&id.SignatureAlg, &id.KeyAlgorithm, &id.KeySize, &id.SPKISHA256, &id.RuleID, &id.IssuedSerial, &id.Owner,
		&labels, &first, &last, &der, &lintErrs, &lintWarns); err != nil {
		return nil, err
	}
	if lintErrs.Valid {
		// Most certificates lint clean ("[]"): no JSON decoding for them,
		// since assessment reads every row.
		id.Lint = &store.InventoryLint{}
		if lintErrs.String != "[]" {
			if err := fromJSON(lintErrs, &id.Lint.Errors); err != nil {
				return nil, err
			}
		}
		if lintWarns.String != "[]" {
			if err := fromJSON(lintWarns, &id.Lint.Warnings); err != nil {
				return nil, err
			}
		}
		if len(id.Lint.Errors) == 0 {
			id.Lint.Errors = nil
		}
		if len(id.Lint.Warnings) == 0 {
			id.Lint.Warnings = nil
		}
	}
	id.Kind, id.Source = store.InventoryKind(kind), store.InventorySource(source)
	id.NotBefore, id.NotAfter, id.FirstSeen, id.LastSeen = fromMicros(nb), fromMicros(na), fromMicros(first), fromMicros(last)
	id.DER = nilIfEmpty(der)
	if err := fromJSON(sans, &id.SANs); err != nil {
		return nil, err
	}
	if err := fromJSON(labels, &id.Labels); err != nil {
		return nil, err
	}
	return &id, nil
}

func (s *Store) GetInventoryIdentity(ctx context.Context, fingerprint string) (*store.InventoryIdentity, error) {
	id, err := scanIdentity(s.r.QueryRowContext(ctx, "SELECT "+invColumns+" FROM inventory_identities WHERE fingerprint = ?", fingerprint))
	if err != nil {
		return nil, readErr(err, "inventory identity "+fingerprint)
	}
	return id, nil
}

func (s *Store) GetInventoryIdentities(ctx context.Context, fingerprints []string) ([]*store.InventoryIdentity, error) {
	var out []*store.InventoryIdentity
	for chunk := range chunks(fingerprints, 500) {
		rows, err := s.r.QueryContext(ctx, "SELECT "+invColumns+" FROM inventory_identities WHERE fingerprint IN ("+
			placeholders(len(chunk))+")", anySlice(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: reading inventory identities: %w", err)
		}
		for rows.Next() {
			id, err := scanIdentity(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: reading inventory identities: %w", err)
			}
			out = append(out, id)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: reading inventory identities: %w", err)
		}
	}
	return out, nil
}

// inventoryWhere builds the filter conditions shared by ListInventory.
func inventoryWhere(f store.InventoryFilter) ([]string, []any) {
	var conds []string
	var args []any
	add := func(c string, a ...any) { conds = append(conds, c); args = append(args, a...) }
	if f.Kind != "" {
		add("kind = ?", string(f.Kind))
	}
	if f.Source != "" {
		add("source = ?", string(f.Source))
	}
	if f.Owner != "" {
		add("owner = ?", f.Owner)
	}
	if f.Issuer != "" {
		add("issuer = ?", f.Issuer)
	}
	if f.KeyAlgorithm != "" {
		add("key_algorithm = ?", f.KeyAlgorithm)
	}
	if f.SPKISHA256 != "" {
		add("spki_sha256 = ?", f.SPKISHA256)
	}
	if f.IssuerUnknown {
		add(`kind = 'x509' AND source <> 'issued' AND issuer NOT IN
			(SELECT subject FROM inventory_identities WHERE is_ca = 1 AND source IN ('issued', 'imported'))`)
	}
	if f.Label != "" {
		k, v, hasV := strings.Cut(f.Label, "=")
		if hasV {
			add("EXISTS (SELECT 1 FROM json_each(labels) WHERE key = ? AND value = ?)", k, v)
		} else {
			add("EXISTS (SELECT 1 FROM json_each(labels) WHERE key = ?)", k)
		}
	}
	if f.Location != "" {
		m := store.ParseLocation(f.Location)
		switch {
		case m.PathPrefix != "":
			lo, hi := m.PathRange()
			add("fingerprint IN (SELECT fingerprint FROM inventory_locations WHERE path = ? OR (path >= ? AND path < ?))", m.PathPrefix, lo, hi)
		case m.Port != 0:
			add("fingerprint IN (SELECT fingerprint FROM inventory_locations WHERE host = ? AND port = ?)", m.Host, m.Port)
		default:
			add("fingerprint IN (SELECT fingerprint FROM inventory_locations WHERE host = ?)", m.Host)
		}
	}
	if !f.NotAfterBefore.IsZero() {
		add("not_after < ?", ceilMicros(f.NotAfterBefore))
	}
	if !f.NotAfterAfter.IsZero() {
		add("not_after > ?", f.NotAfterAfter.UnixMicro())
	}
	if !f.SeenSince.IsZero() {
		add("last_seen >= ?", ceilMicros(f.SeenSince))
	}
	if f.After != "" {
		add("fingerprint > ?", f.After)
	}
	return conds, args
}

func (s *Store) ListInventory(ctx context.Context, f store.InventoryFilter) ([]*store.InventoryIdentity, error) {
	conds, args := inventoryWhere(f)
	q, args := limitClause("SELECT "+invColumns+" FROM inventory_identities"+where(conds)+" ORDER BY fingerprint", args, f.Limit)
	return queryAll(ctx, s.r, "inventory", q, scanIdentity, args...)
}

func scanLocation(sc scanner) (*store.InventoryLocation, error) {
	var (
		l           store.InventoryLocation
		kind        string
		first, last sql.NullInt64
		mode        int64
	)
	if err := sc.Scan(&l.Fingerprint, &kind, &l.Host, &l.Port, &l.Path, &l.SNI, &first, &last, &l.TLSVersion,
		&l.CipherSuite, &l.ChainIndex, &mode, &l.FileOwner, &l.Detail); err != nil {
		return nil, err
	}
	l.Kind, l.FileMode = store.LocationKind(kind), uint32(mode)
	l.FirstSeen, l.LastSeen = fromMicros(first), fromMicros(last)
	return &l, nil
}

func (s *Store) ListInventoryLocations(ctx context.Context, fingerprints ...string) ([]*store.InventoryLocation, error) {
	if len(fingerprints) == 0 {
		return nil, nil
	}
	var out []*store.InventoryLocation
	for chunk := range chunks(fingerprints, 500) {
		ls, err := queryAll(ctx, s.r, "inventory locations", "SELECT "+locColumns+
			" FROM inventory_locations WHERE fingerprint IN ("+placeholders(len(chunk))+")"+
			" ORDER BY fingerprint, kind, host, port, path, sni", scanLocation, anySlice(chunk)...)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	if len(fingerprints) > 500 {
		store.SortLocations(out)
	}
	return out, nil
}

func (s *Store) UnlintedInventory(ctx context.Context, fingerprints []string) ([]string, error) {
	linted := map[string]bool{}
	for chunk := range chunks(fingerprints, 500) {
		rows, err := s.r.QueryContext(ctx, "SELECT fingerprint FROM inventory_identities WHERE lint_errors IS NOT NULL AND fingerprint IN ("+
			placeholders(len(chunk))+")", anySlice(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: reading inventory lint state: %w", err)
		}
		for rows.Next() {
			var fp string
			if err := rows.Scan(&fp); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: reading inventory lint state: %w", err)
			}
			linted[fp] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: reading inventory lint state: %w", err)
		}
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
	for chunk := range chunks(fingerprints, 500) {
		rows, err := s.r.QueryContext(ctx, "SELECT sha256, serial FROM certificates WHERE sha256 <> '' AND sha256 IN ("+
			placeholders(len(chunk))+")", anySlice(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: looking up issued certificates: %w", err)
		}
		for rows.Next() {
			var fp, serial string
			if err := rows.Scan(&fp, &serial); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: looking up issued certificates: %w", err)
			}
			out[fp] = serial
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: looking up issued certificates: %w", err)
		}
	}
	return out, nil
}

const keyReuseSQL = `WITH k AS (
	SELECT i.spki_sha256 AS spki,
		COUNT(DISTINCT CASE WHEN i.kind = 'x509' THEN i.fingerprint END) AS certs,
		COUNT(DISTINCT CASE WHEN l.detail LIKE 'private key%' THEN l.kind || '|' || l.host || '|' || l.port || '|' || l.path END) AS keylocs
	FROM inventory_identities i LEFT JOIN inventory_locations l ON l.fingerprint = i.fingerprint
	WHERE i.spki_sha256 <> ''
	GROUP BY i.spki_sha256
	HAVING certs > 1 OR keylocs > 1)
SELECT k.spki, k.certs, k.keylocs, i.fingerprint FROM k JOIN inventory_identities i ON i.spki_sha256 = k.spki
ORDER BY k.spki, i.fingerprint`

func (s *Store) ListKeyReuse(ctx context.Context, limit int) ([]*store.KeyReuse, error) {
	rows, err := s.r.QueryContext(ctx, keyReuseSQL)
	if err != nil {
		return nil, fmt.Errorf("sqlite: listing key reuse: %w", err)
	}
	defer rows.Close()
	var out []*store.KeyReuse
	for rows.Next() {
		var spki, fp string
		var certs, keylocs int
		if err := rows.Scan(&spki, &certs, &keylocs, &fp); err != nil {
			return nil, fmt.Errorf("sqlite: listing key reuse: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].SPKISHA256 != spki {
			if limit > 0 && len(out) == limit {
				break
			}
			out = append(out, &store.KeyReuse{SPKISHA256: spki, Certificates: certs, KeyLocations: keylocs})
		}
		last := out[len(out)-1]
		last.Fingerprints = append(last.Fingerprints, fp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: listing key reuse: %w", err)
	}
	return out, nil
}

// Scan schedules.

const schedColumns = "name, targets, ports, sni, every_us, timeout_us, concurrency, created_by, created_at, next_run, last_run, last_result"

func (t *txn) PutScanSchedule(ctx context.Context, sc *store.ScanSchedule) error {
	targets, err := jsonText(sc.Targets, len(sc.Targets))
	if err != nil {
		return err
	}
	ports, err := jsonText(sc.Ports, len(sc.Ports))
	if err != nil {
		return err
	}
	sni, err := jsonText(sc.SNI, len(sc.SNI))
	if err != nil {
		return err
	}
	_, err = t.tx.ExecContext(ctx, `INSERT OR REPLACE INTO scan_schedules (`+schedColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, sc.Name, targets, ports, sni, sc.Every.Microseconds(),
		sc.Timeout.Microseconds(), sc.Concurrency, sc.CreatedBy, micros(sc.CreatedAt), micros(sc.NextRun),
		micros(sc.LastRun), sc.LastResult)
	if err != nil {
		return writeErr(err, "scan schedule "+sc.Name)
	}
	return nil
}

func (t *txn) DeleteScanSchedule(ctx context.Context, name string) error {
	n, err := affected(t.tx.ExecContext(ctx, "DELETE FROM scan_schedules WHERE name = ?", name))
	if err != nil {
		return writeErr(err, "scan schedule "+name)
	}
	if n == 0 {
		return fmt.Errorf("%w: scan schedule %s", store.ErrNotFound, name)
	}
	return nil
}

func (t *txn) MarkScanScheduleRun(ctx context.Context, name string, ran, next time.Time, result string) error {
	n, err := affected(t.tx.ExecContext(ctx, "UPDATE scan_schedules SET last_run = ?, next_run = ?, last_result = ? WHERE name = ?",
		micros(ran), micros(next), result, name))
	if err != nil {
		return writeErr(err, "scan schedule "+name)
	}
	if n == 0 {
		return fmt.Errorf("%w: scan schedule %s", store.ErrNotFound, name)
	}
	return nil
}

func scanSchedule(sc scanner) (*store.ScanSchedule, error) {
	var (
		s                   store.ScanSchedule
		targets, ports, sni sql.NullString
		every, timeout      int64
		created, next, last sql.NullInt64
	)
	if err := sc.Scan(&s.Name, &targets, &ports, &sni, &every, &timeout, &s.Concurrency, &s.CreatedBy,
		&created, &next, &last, &s.LastResult); err != nil {
		return nil, err
	}
	s.Every, s.Timeout = time.Duration(every)*time.Microsecond, time.Duration(timeout)*time.Microsecond
	s.CreatedAt, s.NextRun, s.LastRun = fromMicros(created), fromMicros(next), fromMicros(last)
	for _, p := range []struct {
		src sql.NullString
		dst any
	}{{targets, &s.Targets}, {ports, &s.Ports}, {sni, &s.SNI}} {
		if err := fromJSON(p.src, p.dst); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

func (s *Store) GetScanSchedule(ctx context.Context, name string) (*store.ScanSchedule, error) {
	sc, err := scanSchedule(s.r.QueryRowContext(ctx, "SELECT "+schedColumns+" FROM scan_schedules WHERE name = ?", name))
	if err != nil {
		return nil, readErr(err, "scan schedule "+name)
	}
	return sc, nil
}

func (s *Store) ListScanSchedules(ctx context.Context) ([]*store.ScanSchedule, error) {
	return queryAll(ctx, s.r, "scan schedules", "SELECT "+schedColumns+" FROM scan_schedules ORDER BY name", scanSchedule)
}

// Helpers for IN lists.

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func chunks(ss []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(ss) > 0 {
			k := min(n, len(ss))
			if !yield(ss[:k]) {
				return
			}
			ss = ss[k:]
		}
	}
}
