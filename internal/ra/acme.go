package ra

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/store"
)

// ACME operations. The acme package speaks the protocol and authenticates
// accounts; every state change it makes goes through ACMEChange (one
// transaction with its audit event) and every certificate through ACMEIssue,
// the same policy → lint → store → audit path as Issue.

// ACMECaller is the caller for an ACME account.
func ACMECaller(profile, accountID string) Caller {
	return Caller{Protocol: "acme:" + profile + "/" + accountID}
}

// ACMEChange runs fn and appends one audit event in the same transaction.
// A nonce, when not empty, is spent in that transaction too.
func (r *RA) ACMEChange(ctx context.Context, c Caller, action, object string, detail any, fn func(ctx context.Context, tx store.Tx) error) error {
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if fn != nil {
			if err := fn(ctx, tx); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, r.event(c, action, object, audit.ResultSuccess, detail))
	})
	return auditErr(err)
}

// ACMERefused audits a refused ACME request (result "error" when the
// server failed, else "refused") and returns err, or an Unavailable error
// if the refusal cannot be audited. fn, if not nil, runs in the same
// transaction (to spend the request's nonce).
func (r *RA) ACMERefused(ctx context.Context, c Caller, action, object string, err error, serverFault bool, fn func(ctx context.Context, tx store.Tx) error) error {
	result := audit.ResultRefused
	if serverFault {
		result = audit.ResultError
	}
	uerr := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if fn != nil {
			if err := fn(ctx, tx); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
		return tx.AppendAudit(ctx, r.event(c, action, object, result, map[string]string{"error": err.Error()}))
	})
	if uerr != nil {
		return auditErr(uerr)
	}
	return err
}

// ACMEIssue signs the CSR of a finalized ACME order under profile, owned
// by owner. The ACME layer has checked that the CSR's names are exactly
// the order's validated identifiers.
func (r *RA) ACMEIssue(ctx context.Context, c Caller, req IssueRequest) (*Issued, error) {
	out, err := r.issue(ctx, c, req)
	if err != nil {
		if fail.KindOf(err) == fail.Unavailable {
			return nil, err
		}
		return nil, r.refused(ctx, c, string(auth.CertIssue), req.Profile, err)
	}
	return out, nil
}

// ACMECheckNames asks the profile's policy whether it would issue for these
// DNS names and IP addresses at all, so that an order for a name outside the
// profile (its dns patterns, its ips ranges) is refused before any
// validation is attempted.
func (r *RA) ACMECheckNames(ctx context.Context, c Caller, profile, owner string, names []string, ips []net.IP) error {
	prof, err := r.profiles.get(ctx, profile)
	if err != nil {
		return err
	}
	kt := identity.KeyECDSAP256
	if kts := prof.Profile().KeyTypes; len(kts) > 0 {
		kt = kts[0]
	}
	cn := ""
	if len(names) > 0 {
		cn = names[0]
	}
	preq := &policy.Request{CommonName: cn, DNSNames: names, IPAddresses: ips, KeyType: kt, Owner: owner, Requester: policy.Requester{Name: c.name()}}
	if _, err := prof.Evaluate(preq); err != nil {
		var ref *policy.Refusal
		if errors.As(err, &ref) {
			return &fail.Error{Kind: fail.Refused, Msg: ref.Error(), Rule: ref.Rule, Reason: err}
		}
		return fail.Wrap(fail.Refused, err)
	}
	return nil
}

// ACMERevoke revokes a certificate for an ACME client that proved control
// (account that ordered it, or the certificate's own key).
func (r *RA) ACMERevoke(ctx context.Context, c Caller, serial identity.Serial, reason identity.RevocationReason) (*identity.Certificate, error) {
	return r.revoke(ctx, c, serial, reason)
}

// ACMEProfileSettings are what an admin sets with `sigil acme enable`.
type ACMEProfileSettings struct {
	Profile     string `json:"profile"`
	Enabled     bool   `json:"enabled"`
	EABRequired bool   `json:"eab_required"`
}

// SetACMEProfile enables or disables ACME for an existing profile.
func (r *RA) SetACMEProfile(ctx context.Context, c Caller, s ACMEProfileSettings) (*store.ACMEProfile, error) {
	if err := r.authorize(ctx, c, auth.ProfileWrite, "acme:"+s.Profile); err != nil {
		return nil, err
	}
	if _, err := r.store.GetProfile(ctx, s.Profile); err != nil {
		return nil, r.refused(ctx, c, "acme.profile", s.Profile, storeErr(err, fmt.Sprintf("profile %q", s.Profile)))
	}
	p := &store.ACMEProfile{Profile: s.Profile, Enabled: s.Enabled, EABRequired: s.EABRequired, UpdatedAt: r.now().UTC().Truncate(time.Microsecond)}
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.PutACMEProfile(ctx, p); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, "acme.profile", s.Profile, audit.ResultSuccess, s))
	})
	if err != nil {
		return nil, auditErr(err)
	}
	return p, nil
}

// ACMEProfiles lists the ACME settings of every profile that has some.
func (r *RA) ACMEProfiles(ctx context.Context, c Caller) ([]*store.ACMEProfile, error) {
	if err := r.authorize(ctx, c, auth.ProfileRead, "acme"); err != nil {
		return nil, err
	}
	ps, err := r.store.ListACMEProfiles(ctx)
	return ps, storeErr(err, "ACME profiles")
}

// Sealer encrypts secrets at rest (the server's KEK); installed with
// SetSealer, it seals EAB keys and webhook secrets.
type Sealer interface {
	Seal(plaintext, additionalData []byte) ([]byte, error)
}

// EABAdditionalData binds a sealed EAB key to its key ID.
func EABAdditionalData(kid string) []byte { return []byte("sigil-acme-eab:" + kid) }

// CreateEABKey makes an External Account Binding key for a profile and
// owner. The HMAC key is returned once (base64url) and stored sealed.
func (r *RA) CreateEABKey(ctx context.Context, c Caller, profile, owner string) (*store.EABKey, string, error) {
	if err := r.authorize(ctx, c, auth.ProfileWrite, "acme-eab:"+profile); err != nil {
		return nil, "", err
	}
	if _, err := r.store.GetProfile(ctx, profile); err != nil {
		return nil, "", r.refused(ctx, c, "acme.eab.create", profile, storeErr(err, fmt.Sprintf("profile %q", profile)))
	}
	if len(owner) > 128 || strings.ContainsAny(owner, "\x00\n\r") {
		return nil, "", r.refused(ctx, c, "acme.eab.create", profile, fail.New(fail.Malformed, "owner must be at most 128 characters on one line"))
	}
	idb, key := make([]byte, 12), make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return nil, "", fail.Wrap(fail.Internal, err)
	}
	if _, err := rand.Read(key); err != nil {
		return nil, "", fail.Wrap(fail.Internal, err)
	}
	kid := "eab_" + hex.EncodeToString(idb)
	if r.monitor.sealer == nil {
		return nil, "", fail.New(fail.Internal, "no key-encryption key to seal EAB keys with (RA.SetSealer)")
	}
	sealed, err := r.monitor.sealer.Seal(key, EABAdditionalData(kid))
	if err != nil {
		return nil, "", fail.Wrap(fail.Internal, err)
	}
	k := &store.EABKey{KID: kid, Profile: profile, Owner: owner, Sealed: sealed, CreatedAt: r.now().UTC().Truncate(time.Microsecond)}
	err = r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.InsertEABKey(ctx, k); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, "acme.eab.create", kid, audit.ResultSuccess, map[string]string{"profile": profile, "owner": owner}))
	})
	if err != nil {
		return nil, "", auditErr(err)
	}
	k.Sealed = nil
	return k, base64.RawURLEncoding.EncodeToString(key), nil
}

// EABKeys lists EAB keys (never their secrets).
func (r *RA) EABKeys(ctx context.Context, c Caller, profile string) ([]*store.EABKey, error) {
	if err := r.authorize(ctx, c, auth.ProfileRead, "acme-eab"); err != nil {
		return nil, err
	}
	ks, err := r.store.ListEABKeys(ctx, profile)
	if err != nil {
		return nil, storeErr(err, "EAB keys")
	}
	for _, k := range ks {
		k.Sealed = nil
	}
	return ks, nil
}

// RevokeEABKey stops a key from binding new accounts.
func (r *RA) RevokeEABKey(ctx context.Context, c Caller, kid string) error {
	if err := r.authorize(ctx, c, auth.ProfileWrite, kid); err != nil {
		return err
	}
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.RevokeEABKey(ctx, kid, r.now()); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, "acme.eab.revoke", kid, audit.ResultSuccess, nil))
	})
	if errors.Is(err, store.ErrNotFound) {
		return r.refused(ctx, c, "acme.eab.revoke", kid, fail.New(fail.NotFound, "EAB key %q does not exist", kid))
	}
	return auditErr(err)
}

// ACMESpend runs fn (spending a nonce) in a transaction of its own, without
// an audit event: it backs ACME reads (POST-as-GET), which change nothing else.
func (r *RA) ACMESpend(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	return auditErr(r.store.Update(ctx, fn))
}

// MarkRenewEarly asks ACME clients to renew certificates now: their ARI
// renewal window (RFC 9773) opens at once, so clients that poll it
// (cert-manager, certbot, lego) replace them during an incident without
// revoking them first.
func (r *RA) MarkRenewEarly(ctx context.Context, c Caller, serials []identity.Serial) error {
	if err := r.authorize(ctx, c, auth.CertRevoke, "acme-renew-early"); err != nil {
		return err
	}
	if len(serials) == 0 || len(serials) > 1000 {
		return r.refused(ctx, c, "acme.renew-early", "", fail.New(fail.Malformed, "give 1 to 1000 serials"))
	}
	for _, s := range serials {
		rec, err := r.store.GetCertificate(ctx, s)
		if err != nil {
			return r.refused(ctx, c, "acme.renew-early", string(s), storeErr(err, "certificate "+s.OpenSSL()))
		}
		if rec.Status != identity.StatusIssued {
			return r.refused(ctx, c, "acme.renew-early", string(s), fail.New(fail.Conflict, "certificate %s is %s, not issued", s.OpenSSL(), rec.Status))
		}
	}
	at := r.now().UTC().Truncate(time.Microsecond)
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, s := range serials {
			if err := tx.MarkRenewEarly(ctx, string(s), at); err != nil {
				return err
			}
			if err := tx.AppendAudit(ctx, r.event(c, "acme.renew-early", string(s), audit.ResultSuccess, nil)); err != nil {
				return err
			}
		}
		return nil
	})
	return auditErr(err)
}
