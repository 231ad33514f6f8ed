package acme

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

// certificate serves the PEM chain of an issued certificate to the account
// that ordered it.
func (s *Server) certificate(ctx context.Context, q *request) (*response, error) {
	if !q.postAsGet() {
		return nil, malformed("a certificate is fetched with POST-as-GET (empty payload)")
	}
	serial, err := identity.ParseSerial(q.r.PathValue("id"))
	if err != nil {
		return nil, notFound("no certificate %q", q.r.PathValue("id"))
	}
	rec, err := s.st.GetCertificate(ctx, serial)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("no certificate %q", serial)
	}
	if err != nil {
		return nil, toProblem(err)
	}
	if rec.Requester != q.caller.Protocol {
		return nil, unauthorized("the certificate was not ordered by this account")
	}
	iss, err := s.ra.CA().Issuer(rec.IssuerID)
	if err != nil {
		return nil, serverInternal("issuer %s: %v", rec.IssuerID, err)
	}
	if err := s.spendOnly(ctx, q); err != nil {
		return nil, err
	}
	body := append(ca.PEM(rec.DER), iss.ChainPEM()...)
	return &response{status: http.StatusOK, raw: body, ctype: "application/pem-certificate-chain"}, nil
}

// revokeCert revokes by the ordering account's key or by the certificate's
// own key (RFC 8555 §7.6).
func (s *Server) revokeCert(ctx context.Context, q *request) (*response, error) {
	var in struct {
		Certificate string `json:"certificate"`
		Reason      *int   `json:"reason"`
	}
	if err := strictJSON(q.payload, &in); err != nil {
		return nil, err
	}
	der, err := base64.RawURLEncoding.DecodeString(in.Certificate)
	if err != nil {
		return nil, malformed("certificate is not base64url DER")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, malformed("certificate: %v", err)
	}
	reason := identity.ReasonUnspecified
	if in.Reason != nil {
		switch r := *in.Reason; r {
		case 0, 1, 3, 4, 5:
			reason = identity.RevocationReason(r)
		default:
			return nil, prob("badRevocationReason", http.StatusBadRequest, "reason %d is not allowed", r)
		}
	}
	serial := identity.SerialFromBig(cert.SerialNumber)
	rec, err := s.st.GetCertificate(ctx, serial)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !bytes.Equal(rec.DER, der)) {
		return nil, notFound("the certificate was not issued by this CA")
	}
	if err != nil {
		return nil, toProblem(err)
	}
	if rec.Profile != q.profile {
		return nil, unauthorized("the certificate belongs to another profile")
	}
	if q.acct != nil {
		if rec.Requester != q.caller.Protocol {
			return nil, unauthorized("the certificate was not ordered by this account")
		}
	} else {
		certKey := jose.JSONWebKey{Key: cert.PublicKey}
		if !keysEqual(&certKey, q.jws.jwk) {
			return nil, unauthorized("the JWS is signed neither by the ordering account nor by the certificate's key")
		}
		q.caller = ra.Caller{Protocol: "acme:" + q.profile + "/certkey"}
	}
	if rec.Status == identity.StatusRevoked {
		return nil, prob("alreadyRevoked", http.StatusBadRequest, "the certificate is already revoked")
	}
	if err := s.spendOnly(ctx, q); err != nil {
		return nil, err
	}
	if _, err := s.ra.ACMERevoke(ctx, q.caller, serial, reason); err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, raw: []byte{}, ctype: "application/json"}, nil
}

// ARI (RFC 9773). The certID is base64url(AKI keyIdentifier) "."
// base64url(serial DER integer contents).

// parseARIID splits a certID into the AKI key identifier and the serial.
func parseARIID(certID string) ([]byte, *big.Int, error) {
	akiB64, serB64, ok := strings.Cut(certID, ".")
	aki, err1 := base64.RawURLEncoding.Strict().DecodeString(akiB64)
	ser, err2 := base64.RawURLEncoding.Strict().DecodeString(serB64)
	if !ok || err1 != nil || err2 != nil || len(aki) == 0 || len(aki) > 64 || len(ser) == 0 || len(ser) > 21 {
		return nil, nil, malformed("%q is not a renewal-info certificate ID", certID)
	}
	// The serial is a DER INTEGER's contents: minimal, and positive.
	if ser[0]&0x80 != 0 || (len(ser) > 1 && ser[0] == 0 && ser[1] < 0x80) {
		return nil, nil, malformed("%q is not a renewal-info certificate ID", certID)
	}
	return aki, new(big.Int).SetBytes(ser), nil
}

func (s *Server) certByARIID(ctx context.Context, certID string) (*identity.Certificate, error) {
	aki, serial, err := parseARIID(certID)
	if err != nil {
		return nil, err
	}
	rec, err := s.st.GetCertificate(ctx, identity.SerialFromBig(serial))
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("no certificate %q", certID)
	}
	if err != nil {
		return nil, toProblem(err)
	}
	if rec.DER != nil {
		c, err := x509.ParseCertificate(rec.DER)
		if err != nil || !bytes.Equal(c.AuthorityKeyId, aki) {
			return nil, notFound("no certificate %q", certID)
		}
	}
	return rec, nil
}

// ARICertID computes a certificate's renewal-info ID.
func ARICertID(c *x509.Certificate) string {
	return base64.RawURLEncoding.EncodeToString(c.AuthorityKeyId) + "." + base64.RawURLEncoding.EncodeToString(serialBytes(c.SerialNumber))
}

func serialBytes(n *big.Int) []byte {
	b, _ := asn1.Marshal(n)
	// strip the INTEGER tag and short length (serials are ≤ 20 bytes)
	return b[2:]
}

func (s *Server) renewalInfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if _, err := s.enabled(ctx, r.PathValue("profile")); err != nil {
		writeProblem(w, toProblem(err))
		return
	}
	rec, err := s.certByARIID(ctx, r.PathValue("id"))
	if err != nil {
		writeProblem(w, toProblem(err))
		return
	}
	marked := false
	if _, err := s.st.RenewEarlyAt(ctx, string(rec.Serial)); err == nil {
		marked = true
	} else if !errors.Is(err, store.ErrNotFound) {
		writeProblem(w, toProblem(err))
		return
	}
	start, end, retry := RenewalWindow(rec, marked, s.now())
	w.Header().Set("Retry-After", retry)
	writeJSON(w, http.StatusOK, map[string]any{"suggestedWindow": map[string]string{
		"start": start.UTC().Format(time.RFC3339), "end": end.UTC().Format(time.RFC3339),
	}})
}

// RenewalWindow is the suggested renewal window: normally the start of the
// last third of the lifetime; for a revoked certificate or one an operator
// marked (sigil acme renew-early), a window already open and ending now,
// so that ARI clients renew at once.
func RenewalWindow(rec *identity.Certificate, marked bool, now time.Time) (time.Time, time.Time, string) {
	if rec.Status == identity.StatusRevoked || marked {
		return now.Add(-time.Hour).Truncate(time.Second), now.Truncate(time.Second), "3600"
	}
	life := rec.NotAfter.Sub(rec.NotBefore)
	start := rec.NotBefore.Add(life * 2 / 3)
	end := start.Add(life / 9)
	return start.Truncate(time.Second), end.Truncate(time.Second), "21600"
}
