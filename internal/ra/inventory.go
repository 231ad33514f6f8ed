package ra

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/store"
)

// issuedLookup recognises what this Sigil issued: leaf certificates from the
// certificates table, and its own CA certificates (the root and
// intermediates, with their chains), so that every certificate they signed
// has a known issuer.
type issuedLookup struct{ r *RA }

func (l issuedLookup) IssuedSerialsBySHA256(ctx context.Context, fps []string) (map[string]string, error) {
	out, err := l.r.store.IssuedSerialsBySHA256(ctx, fps)
	if err != nil || l.r.ca == nil {
		return out, err
	}
	want := map[string]bool{}
	for _, fp := range fps {
		want[fp] = true
	}
	for _, iss := range l.r.ca.Issuers() {
		for _, c := range append([]*x509.Certificate{iss.Cert}, iss.Chain...) {
			if c == nil {
				continue
			}
			if fp := inventory.SHA256Hex(c.Raw); want[fp] {
				out[fp] = strings.ToLower(c.SerialNumber.Text(16))
			}
		}
	}
	return out, nil
}

// Inventory page sizes.
const (
	DefaultInventoryPage = 100
	MaxInventoryPage     = 1000
)

// ReportDiscovery merges a scan's results into the inventory in one
// transaction with one audit event (not one per identity). Reposting the
// same report changes nothing but last-seen times.
func (r *RA) ReportDiscovery(ctx context.Context, c Caller, rep *inventory.Report) (inventory.Summary, error) {
	return r.ingest(ctx, c, "inventory.report", rep, store.SourceDiscovered)
}

// ImportInventory records certificates from other CAs (source imported).
func (r *RA) ImportInventory(ctx context.Context, c Caller, rep *inventory.Report) (inventory.Summary, error) {
	return r.ingest(ctx, c, "inventory.import", rep, store.SourceImported)
}

func (r *RA) ingest(ctx context.Context, c Caller, action string, rep *inventory.Report, source store.InventorySource) (inventory.Summary, error) {
	object := ""
	if rep != nil {
		object = strings.Trim(rep.Scanner+"@"+rep.Host, "@")
	}
	if err := r.authorize(ctx, c, auth.InventoryWrite, object); err != nil {
		return inventory.Summary{}, err
	}
	b, err := inventory.Prepare(ctx, issuedLookup{r}, rep, source, r.now())
	if err != nil {
		if fail.KindOf(err) == fail.Internal {
			err = storeErr(err, "inventory")
		}
		return inventory.Summary{}, r.refused(ctx, c, action, object, err)
	}
	if err := b.LintNew(ctx, r.store, r.monitor.lint); err != nil {
		return inventory.Summary{}, storeErr(err, "inventory")
	}
	var sum inventory.Summary
	err = r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		if sum, err = b.Apply(ctx, tx); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, action, object, audit.ResultSuccess, sum))
	})
	if err != nil {
		return inventory.Summary{}, auditErr(err)
	}
	return sum, nil
}

// InventoryPage is one page of a listing; Next is the cursor of the next page ("" at the end).
type InventoryPage struct {
	Items []inventory.Identity `json:"items"`
	Next  string               `json:"next,omitempty"`
}

// Inventory lists identities matching f (without their DER).
func (r *RA) Inventory(ctx context.Context, c Caller, f store.InventoryFilter) (*InventoryPage, error) {
	if err := r.authorize(ctx, c, auth.InventoryRead, ""); err != nil {
		return nil, err
	}
	if f.Limit <= 0 {
		f.Limit = DefaultInventoryPage
	}
	limit := min(f.Limit, MaxInventoryPage)
	f.Limit = limit + 1
	ids, err := r.store.ListInventory(ctx, f)
	if err != nil {
		return nil, storeErr(err, "inventory")
	}
	p := &InventoryPage{Items: make([]inventory.Identity, 0, len(ids))}
	if len(ids) > limit {
		ids = ids[:limit]
		p.Next = ids[limit-1].Fingerprint
	}
	for _, s := range ids {
		id := inventory.FromStore(s)
		id.DER = nil
		p.Items = append(p.Items, id)
	}
	return p, nil
}

// InventoryIdentity returns one identity with every location it was seen at.
// fingerprint may be hex or an OpenSSH "SHA256:…" fingerprint.
func (r *RA) InventoryIdentity(ctx context.Context, c Caller, fingerprint string) (*inventory.Identity, error) {
	if err := r.authorize(ctx, c, auth.InventoryRead, fingerprint); err != nil {
		return nil, err
	}
	fp := inventory.NormalizeFingerprint(fingerprint)
	if fp == "" {
		return nil, fail.New(fail.Malformed, "%q is not a SHA-256 fingerprint", fingerprint)
	}
	s, err := r.store.GetInventoryIdentity(ctx, fp)
	if err != nil {
		return nil, storeErr(err, "inventory identity "+fp)
	}
	locs, err := r.store.ListInventoryLocations(ctx, fp)
	if err != nil {
		return nil, storeErr(err, "inventory locations")
	}
	id := inventory.FromStore(s)
	for _, l := range locs {
		id.Locations = append(id.Locations, inventory.LocationFromStore(l))
	}
	return &id, nil
}

// InventoryKeyReuse lists public keys used by several certificates or whose
// private key sits in several places.
func (r *RA) InventoryKeyReuse(ctx context.Context, c Caller, limit int) ([]*store.KeyReuse, error) {
	if err := r.authorize(ctx, c, auth.InventoryRead, ""); err != nil {
		return nil, err
	}
	ks, err := r.store.ListKeyReuse(ctx, limit)
	return ks, storeErr(err, "key reuse")
}

func checkLabel(k, v string) error {
	if k == "" || len(k) > 128 || len(v) > 1024 || !utf8.ValidString(k) || !utf8.ValidString(v) ||
		strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
		return fail.New(fail.Malformed, "invalid label %q", k)
	}
	return nil
}

// SetInventoryOwner assigns an owner and merges labels (an empty value removes a label).
func (r *RA) SetInventoryOwner(ctx context.Context, c Caller, fingerprint, owner string, labels map[string]string) error {
	const action = "inventory.set-owner"
	if err := r.authorize(ctx, c, auth.InventoryWrite, fingerprint); err != nil {
		return err
	}
	fp := inventory.NormalizeFingerprint(fingerprint)
	if fp == "" {
		return r.refused(ctx, c, action, fingerprint, fail.New(fail.Malformed, "%q is not a SHA-256 fingerprint", fingerprint))
	}
	if len(owner) > 256 || !utf8.ValidString(owner) || strings.ContainsRune(owner, 0) {
		return r.refused(ctx, c, action, fp, fail.New(fail.Malformed, "invalid owner"))
	}
	if len(labels) > 64 {
		return r.refused(ctx, c, action, fp, fail.New(fail.Malformed, "at most 64 labels"))
	}
	for k, v := range labels {
		if err := checkLabel(k, v); err != nil {
			return r.refused(ctx, c, action, fp, err)
		}
	}
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.SetInventoryOwner(ctx, fp, owner, labels); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, action, fp, audit.ResultSuccess, map[string]any{"owner": owner, "labels": labels}))
	})
	if err != nil {
		if fail.KindOf(storeErr(err, "")) == fail.NotFound {
			return r.refused(ctx, c, action, fp, fail.New(fail.NotFound, "inventory identity %s not found", fp))
		}
		return auditErr(err)
	}
	return nil
}

// Scheduled scans.

// ScanScheduleRequest creates or replaces a scheduled network scan.
type ScanScheduleRequest struct {
	Name        string
	Targets     []string
	Ports       []int
	SNI         []string
	Every       time.Duration
	Timeout     time.Duration
	Concurrency int
}

// MinScanInterval keeps a schedule from turning the server into a scanner
// that never rests.
const MinScanInterval = time.Minute

// ValidateScanTargets is set by the server to the scanner's target parser,
// so a schedule with a target the scanner would refuse is refused at creation.
var ValidateScanTargets func(targets []string, ports []int) error

func (r *RA) PutScanSchedule(ctx context.Context, c Caller, req ScanScheduleRequest) (*store.ScanSchedule, error) {
	const action = "inventory.schedule.put"
	if err := r.authorize(ctx, c, auth.InventoryWrite, req.Name); err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) (*store.ScanSchedule, error) {
		return nil, r.refused(ctx, c, action, req.Name, fail.New(fail.Malformed, format, args...))
	}
	switch {
	case req.Name == "" || len(req.Name) > 64 || strings.ContainsAny(req.Name, "/ \t\n\x00"):
		return bad("invalid schedule name %q", req.Name)
	case len(req.Targets) == 0 || len(req.Targets) > 1000:
		return bad("a schedule needs 1 to 1000 targets")
	case len(req.Ports) > 100 || len(req.SNI) > 1000:
		return bad("at most 100 ports and 1000 SNI names")
	case req.Every < MinScanInterval:
		return bad("--every must be at least %s", MinScanInterval)
	case req.Timeout < 0 || req.Timeout > time.Minute || req.Concurrency < 0 || req.Concurrency > 4096:
		return bad("timeout must be at most 1m and concurrency at most 4096")
	}
	if ValidateScanTargets != nil {
		if err := ValidateScanTargets(req.Targets, req.Ports); err != nil {
			return bad("%v", err)
		}
	}
	now := r.now()
	sc := &store.ScanSchedule{Name: req.Name, Targets: req.Targets, Ports: req.Ports, SNI: req.SNI, Every: req.Every,
		Timeout: req.Timeout, Concurrency: req.Concurrency, CreatedBy: c.name(), CreatedAt: now, NextRun: now}
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.PutScanSchedule(ctx, sc); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, action, sc.Name, audit.ResultSuccess, map[string]any{
			"targets": sc.Targets, "ports": sc.Ports, "every": sc.Every.String()}))
	})
	if err != nil {
		return nil, auditErr(err)
	}
	return sc, nil
}

func (r *RA) ScanSchedules(ctx context.Context, c Caller) ([]*store.ScanSchedule, error) {
	if err := r.authorize(ctx, c, auth.InventoryRead, ""); err != nil {
		return nil, err
	}
	ss, err := r.store.ListScanSchedules(ctx)
	return ss, storeErr(err, "scan schedules")
}

func (r *RA) DeleteScanSchedule(ctx context.Context, c Caller, name string) error {
	const action = "inventory.schedule.delete"
	if err := r.authorize(ctx, c, auth.InventoryWrite, name); err != nil {
		return err
	}
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.DeleteScanSchedule(ctx, name); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, action, name, audit.ResultSuccess, nil))
	})
	if err != nil {
		if fail.KindOf(storeErr(err, "")) == fail.NotFound {
			return r.refused(ctx, c, action, name, fail.New(fail.NotFound, "scan schedule %q not found", name))
		}
		return auditErr(err)
	}
	return nil
}

// RecordScheduledScan stores a scheduled scan's results (as the system) and
// moves the schedule to its next run, in one transaction.
func (r *RA) RecordScheduledScan(ctx context.Context, sc *store.ScanSchedule, rep *inventory.Report, scanErr error) (inventory.Summary, error) {
	c := Caller{}
	now := r.now()
	var sum inventory.Summary
	var batches []*inventory.Batch
	if rep != nil {
		for _, part := range rep.Split(inventory.MaxIdentities) {
			b, err := inventory.Prepare(ctx, issuedLookup{r}, part, store.SourceDiscovered, now)
			if err != nil {
				return sum, fmt.Errorf("scheduled scan %s: %w", sc.Name, err)
			}
			batches = append(batches, b)
		}
	}
	result := ""
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		sum = inventory.Summary{}
		for _, b := range batches {
			s, err := b.Apply(ctx, tx)
			if err != nil {
				return err
			}
			sum.Identities += s.Identities
			sum.NewIdentities += s.NewIdentities
			sum.Locations += s.Locations
			sum.NewLocations += s.NewLocations
			sum.Issued += s.Issued
			sum.Errors += s.Errors
		}
		result = fmt.Sprintf("%d identities (%d new), %d locations (%d new), %d errors", sum.Identities,
			sum.NewIdentities, sum.Locations, sum.NewLocations, sum.Errors)
		if scanErr != nil {
			result = "interrupted: " + scanErr.Error() + "; " + result
		}
		if err := tx.MarkScanScheduleRun(ctx, sc.Name, now, now.Add(sc.Every), result); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, "inventory.scheduled-scan", sc.Name, audit.ResultSuccess, sum))
	})
	return sum, auditErr(err)
}
