package ra

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// TokenRequest describes a token to create.
type TokenRequest struct {
	Role     identity.Role
	Name     string
	Profiles []string
	TTL      time.Duration
}

// CreateToken makes an API token. The plaintext is returned once and never stored.
func (r *RA) CreateToken(ctx context.Context, c Caller, req TokenRequest) (string, *identity.Token, error) {
	if err := r.authorize(ctx, c, auth.TokenWrite, string(req.Role)); err != nil {
		return "", nil, err
	}
	if _, err := identity.ParseRole(string(req.Role)); err != nil {
		return "", nil, r.refused(ctx, c, string(auth.TokenWrite), string(req.Role), fail.Wrap(fail.Malformed, err))
	}
	if req.TTL < 0 || len(req.Name) > 128 {
		return "", nil, r.refused(ctx, c, string(auth.TokenWrite), string(req.Role), fail.New(fail.Malformed, "token TTL must be positive and name at most 128 characters"))
	}
	plain, tok, err := auth.NewToken(req.Role, req.Name, req.Profiles, req.TTL, c.name(), r.now())
	if err != nil {
		return "", nil, fail.Wrap(fail.Internal, err)
	}
	err = r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.InsertToken(ctx, tok); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, string(auth.TokenWrite), tok.ID, audit.ResultSuccess, map[string]any{"role": tok.Role, "name": tok.Name, "profiles": tok.Profiles, "expires_at": tok.ExpiresAt}))
	})
	if err != nil {
		return "", nil, auditErr(err)
	}
	return plain, tok, nil
}

// RevokeToken disables a token at once.
func (r *RA) RevokeToken(ctx context.Context, c Caller, id string) error {
	if err := r.authorize(ctx, c, auth.TokenWrite, id); err != nil {
		return err
	}
	if err := r.keepOneAdmin(ctx, id); err != nil {
		return r.refused(ctx, c, "token.revoke", id, err)
	}
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.RevokeToken(ctx, id, r.now()); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, "token.revoke", id, audit.ResultSuccess, nil))
	})
	if errors.Is(err, store.ErrNotFound) {
		return r.refused(ctx, c, "token.revoke", id, fail.New(fail.NotFound, "token %q does not exist", id))
	}
	return auditErr(err)
}

// keepOneAdmin refuses to revoke the last active admin token: nobody could
// manage the server afterwards.
func (r *RA) keepOneAdmin(ctx context.Context, id string) error {
	ts, err := r.store.ListTokens(ctx)
	if err != nil {
		return storeErr(err, "tokens")
	}
	now, active, target := r.now(), 0, false
	for _, t := range ts {
		if t.Role == identity.RoleAdmin && t.Active(now) {
			active++
			target = target || t.ID == id
		}
	}
	if target && active == 1 {
		return fail.New(fail.Conflict, "token %s is the last active admin token: create another admin token first", id)
	}
	return nil
}

// Tokens lists tokens (never their secrets).
func (r *RA) Tokens(ctx context.Context, c Caller) ([]*identity.Token, error) {
	if err := r.authorize(ctx, c, auth.TokenRead, ""); err != nil {
		return nil, err
	}
	ts, err := r.store.ListTokens(ctx)
	return ts, storeErr(err, "tokens")
}

// Certificate returns one certificate record (with its DER).
func (r *RA) Certificate(ctx context.Context, c Caller, serial identity.Serial) (*identity.Certificate, error) {
	if err := r.authorize(ctx, c, auth.CertRead, string(serial)); err != nil {
		return nil, err
	}
	rec, err := r.store.GetCertificate(ctx, serial)
	if err != nil {
		return nil, storeErr(err, "certificate "+serial.OpenSSL())
	}
	if c.Token != nil && !c.Token.AllowsProfile(rec.Profile) {
		// The same answer as for an unknown serial: a scoped token learns
		// nothing about certificates outside its profiles.
		return nil, storeErr(store.ErrNotFound, "certificate "+serial.OpenSSL())
	}
	return rec, nil
}

// Certificates lists certificate records; a token scoped to profiles sees
// only theirs.
func (r *RA) Certificates(ctx context.Context, c Caller, f store.CertFilter) ([]*identity.Certificate, error) {
	if err := r.authorize(ctx, c, auth.CertRead, ""); err != nil {
		return nil, err
	}
	if c.Token == nil || len(c.Token.Profiles) == 0 {
		recs, err := r.store.ListCertificates(ctx, f)
		return recs, storeErr(err, "certificates")
	}
	if f.Profile != "" {
		if !c.Token.AllowsProfile(f.Profile) {
			return nil, r.refused(ctx, c, string(auth.CertRead), f.Profile, fail.New(fail.Forbidden, "token is not allowed to use profile %q", f.Profile))
		}
		recs, err := r.store.ListCertificates(ctx, f)
		return recs, storeErr(err, "certificates")
	}
	// One query per profile in scope, merged in the store's order
	// (CreatedAt descending, then serial), so Limit still applies exactly.
	var all []*identity.Certificate
	for _, p := range c.Token.Profiles {
		pf := f
		pf.Profile = p
		recs, err := r.store.ListCertificates(ctx, pf)
		if err != nil {
			return nil, storeErr(err, "certificates")
		}
		all = append(all, recs...)
	}
	slices.SortStableFunc(all, func(a, b *identity.Certificate) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		// Canonical serials compare numerically by length, then bytes.
		if c := cmp.Compare(len(a.Serial), len(b.Serial)); c != 0 {
			return c
		}
		return strings.Compare(string(a.Serial), string(b.Serial))
	})
	if f.Limit > 0 && len(all) > f.Limit {
		all = all[:f.Limit]
	}
	return all, nil
}

// AuditEvents lists audit events.
func (r *RA) AuditEvents(ctx context.Context, c Caller, f store.AuditFilter) ([]*audit.Event, error) {
	if err := r.authorize(ctx, c, auth.AuditRead, ""); err != nil {
		return nil, err
	}
	evs, err := r.store.ListAudit(ctx, f)
	return evs, storeErr(err, "audit events")
}

// VerifyAudit checks the whole audit chain and returns how many events verified.
// A broken chain is returned as an *audit.ChainError.
func (r *RA) VerifyAudit(ctx context.Context, c Caller) (int64, error) {
	if err := r.authorize(ctx, c, auth.AuditRead, ""); err != nil {
		return 0, err
	}
	return VerifyChain(ctx, r.store)
}

// VerifyChain verifies a store's audit chain end to end, including that it
// ends at the recorded head.
func VerifyChain(ctx context.Context, st store.Reader) (int64, error) {
	// Read the head first: events appended while we walk are past it and are
	// left for the next verification.
	seq, hash, err := st.AuditHead(ctx)
	if err != nil {
		return 0, err
	}
	var v audit.Verifier
	errPastHead := errors.New("past head")
	err = st.WalkAudit(ctx, func(e *audit.Event) error {
		if e.Seq > seq {
			return errPastHead
		}
		return v.Next(e)
	})
	if err != nil && !errors.Is(err, errPastHead) {
		return v.Count(), err
	}
	return v.Finish(seq, hash)
}
