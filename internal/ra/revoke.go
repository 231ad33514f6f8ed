package ra

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// Revoke revokes an issued certificate, then publishes a new CRL for its
// issuer. OCSP answers from the store, so it says revoked as soon as the
// revocation commits.
func (r *RA) Revoke(ctx context.Context, c Caller, serial identity.Serial, reason identity.RevocationReason) (*identity.Certificate, error) {
	if err := r.authorize(ctx, c, auth.CertRevoke, string(serial)); err != nil {
		return nil, err
	}
	return r.revoke(ctx, c, serial, reason)
}

// revoke is Revoke for a caller already authorised.
func (r *RA) revoke(ctx context.Context, c Caller, serial identity.Serial, reason identity.RevocationReason) (*identity.Certificate, error) {
	rec, err := r.store.GetCertificate(ctx, serial)
	if err != nil {
		return nil, r.refused(ctx, c, string(auth.CertRevoke), string(serial), storeErr(err, "certificate "+serial.OpenSSL()))
	}
	if c.Token != nil && !c.Token.AllowsProfile(rec.Profile) {
		return nil, r.refused(ctx, c, string(auth.CertRevoke), string(serial), fail.New(fail.Forbidden, "token is not allowed to use profile %q", rec.Profile))
	}
	if rec.Status != identity.StatusIssued {
		return nil, r.refused(ctx, c, string(auth.CertRevoke), string(serial), fail.New(fail.Conflict, "certificate %s is %s, not issued", serial.OpenSSL(), rec.Status))
	}
	at := r.now().UTC().Truncate(time.Second)
	err = r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.Revoke(ctx, serial, reason, at); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, string(auth.CertRevoke), string(serial), audit.ResultSuccess, map[string]string{"reason": reason.String(), "profile": rec.Profile}))
	})
	if errors.Is(err, store.ErrConflict) {
		return nil, r.refused(ctx, c, string(auth.CertRevoke), string(serial), fail.New(fail.Conflict, "certificate %s is already revoked", serial.OpenSSL()))
	}
	if err != nil {
		return nil, auditErr(err)
	}
	rec.Status, rec.RevokedAt, rec.RevocationReason = identity.StatusRevoked, at, reason
	if _, err := r.PublishCRL(ctx, rec.IssuerID); err != nil {
		// The revocation stands; the scheduled job will publish the CRL.
		r.log.Error("publishing CRL after revocation", "issuer", rec.IssuerID, "serial", serial, "err", err)
	}
	return rec, nil
}

// crlGrace keeps an entry on the CRL for a while after its certificate
// expires, so a relying party with a slow clock still sees it.
const crlGrace = 24 * time.Hour

// PublishCRL signs and stores a new CRL for an issuer. Entries stay until
// their certificate has been expired for crlGrace: no cleanup removes a
// revoked, unexpired certificate.
func (r *RA) PublishCRL(ctx context.Context, issuerID string) (*store.CRL, error) {
	r.crlMu.Lock()
	defer r.crlMu.Unlock()
	now := r.now().UTC().Truncate(time.Second)
	crl := &store.CRL{IssuerID: issuerID, ThisUpdate: now, NextUpdate: now.Add(r.CRLValidity)}
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		n, err := tx.NextCRLNumber(ctx, issuerID)
		if err != nil {
			return err
		}
		// Read the entries only once the number is ours: a store that
		// serialises numbering across servers (PostgreSQL) then guarantees
		// that a higher-numbered CRL saw every revocation a lower one did.
		revoked, err := r.store.RevokedCertificates(ctx, issuerID, now.Add(-crlGrace))
		if err != nil {
			return fmt.Errorf("listing revoked certificates: %w", err)
		}
		entries := make([]ca.CRLEntry, len(revoked))
		for i, e := range revoked {
			entries[i] = ca.CRLEntry{Serial: e.Serial, RevokedAt: e.RevokedAt, Reason: e.Reason}
		}
		crl.Number = n
		if crl.DER, err = r.ca.SignCRL(issuerID, n, crl.ThisUpdate, crl.NextUpdate, entries); err != nil {
			return err
		}
		if err := tx.InsertCRL(ctx, crl); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(Caller{}, "crl.publish", issuerID, audit.ResultSuccess, map[string]any{"number": n, "entries": len(entries)}))
	})
	if err != nil {
		return nil, auditErr(err)
	}
	return crl, nil
}

// CRL returns the current CRL of an issuer, publishing one if none exists
// or the newest is past half its validity (the scheduled job normally keeps
// it fresh; this covers a server that was down).
func (r *RA) CRL(ctx context.Context, issuerID string) (*store.CRL, error) {
	// Only real IDs: an alias such as "default" would start a second,
	// empty CRL sequence for the same issuer.
	if iss, err := r.ca.Issuer(issuerID); err != nil || iss.ID != issuerID {
		return nil, fail.New(fail.NotFound, "issuer %q does not exist", issuerID)
	}
	crl, err := r.store.LatestCRL(ctx, issuerID)
	if err == nil && r.now().Before(crl.ThisUpdate.Add(crl.NextUpdate.Sub(crl.ThisUpdate)/2)) {
		return crl, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, storeErr(err, "CRL")
	}
	return r.PublishCRL(ctx, issuerID)
}

// OCSP answers a parsed OCSP request. Only certificates in the issued state
// are good; planned and unknown serials are unknown; a serial that belongs
// to another of our issuers is unknown too.
// A non-nil nonce (ca.OCSPNonce of the request) is echoed.
func (r *RA) OCSP(ctx context.Context, req *ocsp.Request, nonce []byte) ([]byte, error) {
	iss, err := r.ca.MatchOCSPIssuer(req)
	if err != nil {
		return nil, err
	}
	st := ca.OCSPStatus{Status: ocsp.Unknown}
	rec, err := r.store.GetCertificate(ctx, identity.SerialFromBig(req.SerialNumber))
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Our own CA certificates are not inventory records; answer for
		// the ones this issuer signed.
		for _, sub := range r.ca.Issuers() {
			if sub.Cert.SerialNumber.Cmp(req.SerialNumber) == 0 && sub != iss && sub.Cert.CheckSignatureFrom(iss.Cert) == nil {
				st.Status = ocsp.Good
			}
		}
	case err != nil:
		return nil, storeErr(err, "certificate")
	case rec.IssuerID != iss.ID:
	case rec.Status == identity.StatusIssued:
		st.Status = ocsp.Good
	case rec.Status == identity.StatusRevoked:
		st = ca.OCSPStatus{Status: ocsp.Revoked, RevokedAt: rec.RevokedAt, Reason: rec.RevocationReason}
	}
	return r.ca.SignOCSP(iss, req.SerialNumber, req.HashAlgorithm, st, r.now(), r.OCSPValidity, nonce)
}
