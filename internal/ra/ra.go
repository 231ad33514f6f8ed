// Package ra is the registration authority: it orchestrates every request
// that changes state — authorisation, policy, CA, store and audit — in the
// order that keeps the store and the audit log truthful. It holds no keys and
// writes no SQL.
package ra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// RA wires the CA, the store and the policy profiles together.
type RA struct {
	store store.Store
	ca    *ca.CA
	log   *slog.Logger
	now   func() time.Time

	profiles *profileCache

	crlMu       sync.Mutex // serialises CRL numbering within this process
	CRLValidity time.Duration
	// OCSPValidity is the NextUpdate horizon of OCSP responses. Responses are
	// signed on demand, so a revocation shows at once.
	OCSPValidity time.Duration

	monitor monitorHooks // audit-sink gate and webhook secret sealing (monitor.go)
}

// New returns an RA. now is injected so tests can fix the clock.
func New(st store.Store, authority *ca.CA, log *slog.Logger, now func() time.Time) *RA {
	if now == nil {
		now = time.Now
	}
	return &RA{
		store: st, ca: authority, log: log, now: now,
		profiles:     newProfileCache(st, 10*time.Second, now),
		CRLValidity:  24 * time.Hour,
		OCSPValidity: time.Hour,
	}
}

// CA returns the certificate authority.
func (r *RA) CA() *ca.CA { return r.ca }

// Store returns the underlying store for read-only callers.
func (r *RA) Store() store.Reader { return r.store }

// System is the actor name of the server's own actions.
const System = "system"

// Caller is who asks: a token holder, or the system itself (Token nil).
type Caller struct {
	Token     *identity.Token
	Anonymous bool // an unauthenticated request, only ever audited
	// Protocol names a caller authenticated by a protocol of its own (an
	// ACME account: "acme:<profile>/<id>"); it has no role and reaches only
	// the RA methods of that protocol, which check it themselves.
	Protocol string
}

func (c Caller) name() string {
	if c.Protocol != "" {
		return c.Protocol
	}
	if c.Anonymous {
		return "anonymous"
	}
	if c.Token == nil {
		return System
	}
	return auth.Actor(c.Token)
}

func (c Caller) role() identity.Role {
	if c.Anonymous || c.Protocol != "" {
		return ""
	}
	if c.Token == nil {
		return identity.RoleAdmin
	}
	return c.Token.Role
}

// authorize refuses (and audits the refusal of) an action the caller's role
// does not allow.
func (r *RA) authorize(ctx context.Context, c Caller, a auth.Action, object string) error {
	if auth.Allowed(c.role(), a) {
		return r.gateWrite(ctx, c, a, object)
	}
	err := fail.New(fail.Forbidden, "role %q may not %s", c.role(), a)
	return r.refused(ctx, c, string(a), object, err)
}

// refused records a refused request and returns err, or an Unavailable error
// if the refusal itself cannot be audited.
func (r *RA) refused(ctx context.Context, c Caller, action, object string, err error) error {
	result := audit.ResultRefused
	if fail.KindOf(err) == fail.Internal {
		result = audit.ResultError
	}
	detail := map[string]string{"error": err.Error()}
	if aerr := r.auditOnly(ctx, c, action, object, result, detail); aerr != nil {
		return aerr
	}
	return err
}

// auditOnly appends a lone audit event in its own transaction.
func (r *RA) auditOnly(ctx context.Context, c Caller, action, object, result string, detail any) error {
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.AppendAudit(ctx, r.event(c, action, object, result, detail))
	})
	return auditErr(err)
}

func (r *RA) event(c Caller, action, object, result string, detail any) *audit.Event {
	var d string
	if detail != nil {
		b, _ := json.Marshal(detail)
		d = string(b)
	}
	return &audit.Event{Time: r.now(), Actor: c.name(), Action: action, Object: object, Result: result, Detail: d}
}

// auditErr turns any failure of a transaction that carries an audit event
// into the right kind: audit failures fail closed as Unavailable.
func auditErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, audit.ErrUnavailable):
		return &fail.Error{Kind: fail.Unavailable, Msg: "audit log unavailable: the change was refused", Reason: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case fail.KindOf(err) != fail.Internal:
		return err
	}
	return &fail.Error{Kind: fail.Unavailable, Msg: "store unavailable: the change was refused", Reason: err}
}

// storeErr maps store errors for reads.
func storeErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fail.New(fail.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrConflict):
		return &fail.Error{Kind: fail.Conflict, Msg: fmt.Sprintf("%s: %v", what, err), Reason: err}
	}
	return &fail.Error{Kind: fail.Unavailable, Msg: "store unavailable", Reason: err}
}

// AuditAuthFailure records a request that presented no valid credentials.
func (r *RA) AuditAuthFailure(ctx context.Context, request string) error {
	return r.auditOnly(ctx, Caller{Anonymous: true}, "auth", request, audit.ResultRefused, map[string]string{"error": "invalid, expired or revoked token"})
}

// AuditRefusal records a request a front end refused before it reached the
// RA (malformed or oversized input) and returns err, or an Unavailable error
// if the refusal cannot be audited.
func (r *RA) AuditRefusal(ctx context.Context, c Caller, action, object string, err error) error {
	return r.refused(ctx, c, action, object, err)
}
