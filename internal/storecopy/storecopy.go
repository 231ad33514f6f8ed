// Package storecopy moves everything one Sigil store holds into another,
// empty one (SQLite to PostgreSQL or back): issuers, profiles, tokens,
// certificates, CRLs, agents' machines and join tokens, the inventory and
// scan schedules, ACME directories, accounts, orders and EAB keys, findings,
// webhooks and their deliveries, audit sink positions, and the audit log, whose events keep their sequence
// numbers and hashes so the copied chain verifies, with the same head, as the
// original. The copy is checked by counting every kind of record on both
// sides and verifying the destination's chain end to end.
//
// The source must not change during the copy: stop the servers using it.
// A change is detected (the source's audit head moves) and fails the copy.
package storecopy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/postgres"
	"github.com/sigil-pki/sigil/internal/store/sqlite"
)

// BatchSize is how many records (certificates, audit events) one destination
// transaction writes.
const BatchSize = 1000

// Counts is the number of records of each kind in a store.
type Counts struct {
	Issuers      int
	Profiles     int
	Tokens       int
	Certificates int
	CRLs         int
	AuditEvents  int64
	More         MoreCounts // agents, inventory, ACME, monitoring
}

// Report describes a finished, verified copy.
type Report struct {
	Source      Counts
	Destination Counts
	// HeadSeq and HeadHash are the audit chain head, the same on both sides.
	HeadSeq  int64
	HeadHash string
}

// Kinds returns the counts as (kind, source, destination) rows, for display.
func (r *Report) Kinds() []struct {
	Kind     string
	From, To int64
} {
	type row = struct {
		Kind     string
		From, To int64
	}
	s, d := r.Source, r.Destination
	out := []row{
		{"issuers", int64(s.Issuers), int64(d.Issuers)},
		{"profiles", int64(s.Profiles), int64(d.Profiles)},
		{"tokens", int64(s.Tokens), int64(d.Tokens)},
		{"certificates", int64(s.Certificates), int64(d.Certificates)},
		{"crls", int64(s.CRLs), int64(d.CRLs)},
		{"audit events", s.AuditEvents, d.AuditEvents},
	}
	for i, m := range s.More.rows() {
		out = append(out, row{m.Kind, int64(m.N), int64(d.More.rows()[i].N)})
	}
	return out
}

// ErrNotEmpty is returned when the destination already holds records.
var ErrNotEmpty = errors.New("destination store is not empty")

// Open opens a store named like the server's --db flag: "sqlite:PATH" or
// "postgres://..." ("postgresql://..."). With mustExist, a SQLite file that
// does not exist is an error instead of being created (a copy's source).
func Open(ctx context.Context, db string, mustExist bool) (store.Store, error) {
	switch {
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		return postgres.Open(ctx, db)
	case strings.HasPrefix(db, "sqlite:"):
		path := strings.TrimPrefix(db, "sqlite:")
		if path == "" {
			return nil, errors.New("sqlite: needs a path: sqlite:PATH")
		}
		if mustExist {
			fi, err := os.Stat(path)
			if err != nil {
				return nil, fmt.Errorf("source database: %w", err)
			}
			if fi.IsDir() {
				return nil, fmt.Errorf("source database %s is a directory, not a SQLite file", path)
			}
		}
		return sqlite.Open(ctx, path)
	}
	return nil, fmt.Errorf("unsupported store %q: use sqlite:PATH or postgres://...", Redact(db))
}

// Redact hides a password in a DSN for messages.
func Redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return dsn
}

// Copy copies everything from into to, which must be empty, then verifies
// the result. progress, if not nil, is told what is being done.
func Copy(ctx context.Context, from store.Reader, to store.Store, progress func(string)) (*Report, error) {
	if progress == nil {
		progress = func(string) {}
	}
	dst, err := count(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("reading destination: %w", err)
	}
	if dst != (Counts{}) {
		return nil, fmt.Errorf("%w: it holds %d issuers, %d profiles, %d tokens, %d certificates, %d CRLs, %d audit events and %+v; copy only into a new, empty database",
			ErrNotEmpty, dst.Issuers, dst.Profiles, dst.Tokens, dst.Certificates, dst.CRLs, dst.AuditEvents, dst.More)
	}
	headSeq, headHash, err := from.AuditHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading source: %w", err)
	}

	var src Counts
	issuers, err := from.ListIssuers(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading source issuers: %w", err)
	}
	// Put the default issuer last: putting a default demotes the previous one.
	if err := to.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, def := range []bool{false, true} {
			for _, i := range issuers {
				if i.IsDefault == def {
					if err := tx.PutIssuer(ctx, i); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("copying issuers: %w", err)
	}
	src.Issuers = len(issuers)
	progress(fmt.Sprintf("copied %d issuers", src.Issuers))

	profiles, err := from.ListProfiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading source profiles: %w", err)
	}
	if err := to.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, p := range profiles {
			if err := tx.PutProfile(ctx, p); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("copying profiles: %w", err)
	}
	src.Profiles = len(profiles)
	progress(fmt.Sprintf("copied %d profiles", src.Profiles))

	tokens, err := from.ListTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading source tokens: %w", err)
	}
	if err := inBatches(ctx, to, tokens, func(ctx context.Context, tx store.Tx, k *identity.Token) error {
		return tx.InsertToken(ctx, k)
	}); err != nil {
		return nil, fmt.Errorf("copying tokens: %w", err)
	}
	src.Tokens = len(tokens)
	progress(fmt.Sprintf("copied %d tokens", src.Tokens))

	certs, err := from.ListCertificates(ctx, store.CertFilter{})
	if err != nil {
		return nil, fmt.Errorf("reading source certificates: %w", err)
	}
	if err := inBatches(ctx, to, certs, func(ctx context.Context, tx store.Tx, c *identity.Certificate) error {
		return tx.InsertCertificate(ctx, c)
	}); err != nil {
		return nil, fmt.Errorf("copying certificates: %w", err)
	}
	src.Certificates = len(certs)
	certs = nil
	progress(fmt.Sprintf("copied %d certificates", src.Certificates))

	crls, err := from.ListCRLs(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("reading source CRLs: %w", err)
	}
	if err := inBatches(ctx, to, crls, func(ctx context.Context, tx store.Tx, c *store.CRL) error {
		return tx.InsertCRL(ctx, c)
	}); err != nil {
		return nil, fmt.Errorf("copying CRLs: %w", err)
	}
	src.CRLs = len(crls)
	progress(fmt.Sprintf("copied %d CRLs", src.CRLs))

	if src.More, err = copyMore(ctx, from, to, progress); err != nil {
		return nil, err
	}

	// The audit log, streamed in seq order and checked on the way: a source
	// chain that does not verify is not copied.
	var v audit.Verifier
	batch := make([]*audit.Event, 0, BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := to.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			for _, e := range batch {
				if err := tx.ImportAuditEvent(ctx, e); err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	var sourceChainErr error
	err = from.WalkAudit(ctx, func(e *audit.Event) error {
		if e.Seq > headSeq {
			return nil // appended after the copy began: caught below
		}
		if err := v.Next(e); err != nil {
			sourceChainErr = err
			return err
		}
		batch = append(batch, e)
		if len(batch) == BatchSize {
			if err := flush(); err != nil {
				return err
			}
			progress(fmt.Sprintf("copied %d audit events", v.Count()))
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if sourceChainErr != nil {
		return nil, fmt.Errorf("the source audit chain does not verify, so it was not copied (the destination is incomplete: drop it): %w", sourceChainErr)
	}
	if err != nil {
		return nil, fmt.Errorf("copying audit events: %w", err)
	}
	if _, err := v.Finish(headSeq, headHash); err != nil {
		return nil, fmt.Errorf("the source audit chain does not verify against its head (the destination is incomplete: drop it): %w", err)
	}
	src.AuditEvents = v.Count()
	progress(fmt.Sprintf("copied %d audit events", src.AuditEvents))

	// The source must not have changed while we read it.
	if seq, hash, err := from.AuditHead(ctx); err != nil {
		return nil, fmt.Errorf("reading source: %w", err)
	} else if seq != headSeq || hash != headHash {
		return nil, fmt.Errorf("the source changed during the copy (its audit head moved from event %d to %d): stop every server using it and copy again into a new, empty database", headSeq, seq)
	}
	now, err := count(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("reading source: %w", err)
	}
	if now != src {
		return nil, fmt.Errorf("the source changed during the copy (%+v, then %+v): stop every server using it and copy again into a new, empty database", src, now)
	}

	return verify(ctx, to, src, headSeq, headHash)
}

// verify checks the destination holds as many records of each kind as the
// source and that its audit chain verifies up to the source's head.
func verify(ctx context.Context, to store.Reader, src Counts, headSeq int64, headHash string) (*Report, error) {
	dst, err := count(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("verifying destination: %w", err)
	}
	r := &Report{Source: src, Destination: dst, HeadSeq: headSeq, HeadHash: headHash}
	for _, k := range r.Kinds() {
		if k.From != k.To {
			return r, fmt.Errorf("verification failed: the source has %d %s, the destination %d", k.From, k.Kind, k.To)
		}
	}
	var v audit.Verifier
	if err := to.WalkAudit(ctx, v.Next); err != nil {
		return r, fmt.Errorf("verification failed: destination audit chain: %w", err)
	}
	seq, hash, err := to.AuditHead(ctx)
	if err != nil {
		return r, fmt.Errorf("verifying destination: %w", err)
	}
	if _, err := v.Finish(seq, hash); err != nil {
		return r, fmt.Errorf("verification failed: destination audit chain: %w", err)
	}
	if seq != headSeq || hash != headHash {
		return r, fmt.Errorf("verification failed: destination audit head is event %d %s, the source's is event %d %s", seq, hash, headSeq, headHash)
	}
	return r, nil
}

// count counts every kind of record in s.
func count(ctx context.Context, s store.Reader) (Counts, error) {
	var c Counts
	issuers, err := s.ListIssuers(ctx)
	if err != nil {
		return c, err
	}
	profiles, err := s.ListProfiles(ctx)
	if err != nil {
		return c, err
	}
	tokens, err := s.ListTokens(ctx)
	if err != nil {
		return c, err
	}
	certs, err := s.ListCertificates(ctx, store.CertFilter{})
	if err != nil {
		return c, err
	}
	crls, err := s.ListCRLs(ctx, "")
	if err != nil {
		return c, err
	}
	// Count the events themselves, not just the head.
	var n int64
	if err := s.WalkAudit(ctx, func(*audit.Event) error { n++; return nil }); err != nil {
		return c, err
	}
	c.Issuers, c.Profiles, c.Tokens, c.Certificates, c.CRLs, c.AuditEvents = len(issuers), len(profiles), len(tokens), len(certs), len(crls), n
	c.More, err = countMore(ctx, s)
	return c, err
}

// inBatches writes items to s, BatchSize per transaction.
func inBatches[T any](ctx context.Context, s store.Store, items []T, put func(context.Context, store.Tx, T) error) error {
	for start := 0; start < len(items); start += BatchSize {
		chunk := items[start:min(start+BatchSize, len(items))]
		if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			for _, it := range chunk {
				if err := put(ctx, tx, it); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
