package ra

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/store"
)

// IssueRequest asks for a certificate for the key in a CSR.
type IssueRequest struct {
	Profile string
	CSR     []byte // PEM or DER
	TTL     time.Duration
	Owner   string
	Labels  map[string]string
	// inTx, if set, runs in the transaction that marks the certificate
	// issued (agent.go: consuming a join token with the issuance it buys).
	inTx func(ctx context.Context, tx store.Tx, rec *identity.Certificate) error
	// parsed, if set, is CSR already parsed and checked by the caller
	// (agent.go), sparing a second signature check.
	parsed *ca.CSR
}

// Issued is a recorded, audited certificate, ready to return.
type Issued struct {
	Record   *identity.Certificate
	CertPEM  []byte
	ChainPEM []byte
}

// Issue signs a CSR under a profile. The order is what keeps a crash from
// leaving an unrecorded certificate: policy and lint first; then the serial
// and the exact to-be-signed bytes are stored (planned); then the real key
// signs; then the certificate is marked issued together with its audit event;
// only then is it returned. Refusals are audited too.
func (r *RA) Issue(ctx context.Context, c Caller, req IssueRequest) (*Issued, error) {
	if err := r.authorize(ctx, c, auth.CertIssue, req.Profile); err != nil {
		return nil, err
	}
	out, err := r.issue(ctx, c, req)
	if err != nil {
		if k := fail.KindOf(err); k == fail.Unavailable {
			return nil, err
		}
		return nil, r.refused(ctx, c, string(auth.CertIssue), req.Profile, err)
	}
	return out, nil
}

func (r *RA) issue(ctx context.Context, c Caller, req IssueRequest) (*Issued, error) {
	if c.Token != nil && !c.Token.AllowsProfile(req.Profile) {
		return nil, fail.New(fail.Forbidden, "token is not allowed to use profile %q", req.Profile)
	}
	prof, err := r.profiles.get(ctx, req.Profile)
	if err != nil {
		return nil, err
	}
	csr := req.parsed
	if csr == nil {
		if csr, err = ca.ParseCSR(req.CSR); err != nil {
			return nil, fail.Wrap(fail.Malformed, err)
		}
	}
	cr := csr.Request
	preq := &policy.Request{
		CommonName:  cr.Subject.CommonName,
		DNSNames:    cr.DNSNames,
		IPAddresses: cr.IPAddresses,
		URIs:        cr.URIs,
		Emails:      cr.EmailAddresses,
		KeyType:     csr.KeyType,
		TTL:         req.TTL,
		Owner:       req.Owner,
		Labels:      req.Labels,
		Requester:   policy.Requester{Name: c.name(), Role: string(c.role())},
	}
	dec, err := prof.Evaluate(preq)
	if err != nil {
		var ref *policy.Refusal
		if errors.As(err, &ref) {
			return nil, &fail.Error{Kind: fail.Refused, Msg: ref.Error(), Rule: ref.Rule, Reason: err}
		}
		return nil, fail.Wrap(fail.Refused, err)
	}
	// Names go into the certificate as policy matched them: DNS names are
	// case-insensitive, and lint wants the CN to be one of the SANs exactly.
	dns := make([]string, len(cr.DNSNames))
	for i, n := range cr.DNSNames {
		dns[i] = strings.ToLower(n)
	}
	leaf := &ca.LeafRequest{
		PublicKey:   cr.PublicKey,
		CommonName:  dec.CommonName,
		DNSNames:    dns,
		IPAddresses: cr.IPAddresses,
		URIs:        cr.URIs,
		Emails:      cr.EmailAddresses,
		NotBefore:   r.now(),
		TTL:         dec.TTL,
		KeyUsage:    dec.KeyUsage,
		ExtKeyUsage: dec.ExtKeyUsage,
	}
	meta := recordMeta{profile: req.Profile, issuer: prof.Profile().Issuer, owner: req.Owner, labels: req.Labels, keyType: csr.KeyType, inTx: req.inTx}
	return r.signAndRecord(ctx, c, leaf, meta)
}

type recordMeta struct {
	profile, issuer, owner, keyType string
	labels                          map[string]string
	inTx                            func(ctx context.Context, tx store.Tx, rec *identity.Certificate) error
}

// signAndRecord runs the crash-safe part of issuance for a request that has
// already passed policy.
func (r *RA) signAndRecord(ctx context.Context, c Caller, leaf *ca.LeafRequest, m recordMeta) (*Issued, error) {
	prep, err := r.ca.Prepare(m.issuer, leaf)
	if err != nil {
		if errors.Is(err, ca.ErrLint) {
			return nil, &fail.Error{Kind: fail.Refused, Msg: err.Error(), Rule: "lint", Reason: err}
		}
		return nil, fail.Wrap(fail.Internal, err)
	}
	spki, err := identity.SPKIFingerprint(leaf.PublicKey)
	if err != nil {
		return nil, fail.Wrap(fail.Malformed, err)
	}
	nb, na := prep.Validity()
	rec := &identity.Certificate{
		Serial:          prep.Serial(),
		IssuerID:        prep.Issuer().ID,
		Profile:         m.profile,
		Status:          identity.StatusPlanned,
		Requester:       c.name(),
		Owner:           m.owner,
		Labels:          maps.Clone(m.labels),
		CommonName:      leaf.CommonName,
		DNSNames:        leaf.DNSNames,
		IPAddresses:     ipStrings(leaf.IPAddresses),
		URIs:            uriStrings(leaf.URIs),
		Emails:          leaf.Emails,
		KeyType:         m.keyType,
		SPKIFingerprint: spki,
		NotBefore:       nb,
		NotAfter:        na,
		CreatedAt:       r.now().UTC().Truncate(time.Microsecond),
		TBS:             prep.TBS(),
	}
	if err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.InsertCertificate(ctx, rec)
	}); err != nil {
		return nil, auditErr(err)
	}
	der, err := r.ca.Sign(prep)
	if err != nil {
		// The planned row stays: OCSP answers unknown for it, never good.
		return nil, fail.Wrap(fail.Internal, fmt.Errorf("signing %s: %w", rec.Serial, err))
	}
	rec.DER, rec.Fingerprint = der, identity.Fingerprint(der)
	rec.IssuedAt = r.now().UTC().Truncate(time.Microsecond)
	rec.Status = identity.StatusIssued
	ev := r.event(c, string(auth.CertIssue), string(rec.Serial), audit.ResultSuccess, map[string]any{
		"profile": rec.Profile, "issuer": rec.IssuerID, "common_name": rec.CommonName,
		"dns": rec.DNSNames, "ips": rec.IPAddresses, "uris": rec.URIs, "emails": rec.Emails,
		"not_after": rec.NotAfter, "sha256": rec.Fingerprint, "owner": rec.Owner,
	})
	if err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.MarkIssued(ctx, rec.Serial, der, rec.Fingerprint, rec.IssuedAt); err != nil {
			return err
		}
		if m.inTx != nil {
			if err := m.inTx(ctx, tx, rec); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, ev)
	}); err != nil {
		return nil, auditErr(err)
	}
	rec.TBS = nil
	return &Issued{Record: rec, CertPEM: ca.PEM(der), ChainPEM: prep.Issuer().ChainPEM()}, nil
}

// IssueInternal issues a certificate for Sigil's own use (its TLS listener)
// without a profile: the names come from the server's configuration, not
// from a request. It is recorded and audited like any other.
func (r *RA) IssueInternal(ctx context.Context, pub crypto.PublicKey, dns []string, ips []net.IP, ttl time.Duration) (*Issued, error) {
	kt, err := identity.KeyTypeOf(pub)
	if err != nil {
		return nil, err
	}
	cn := ""
	if len(dns) > 0 {
		cn = dns[0]
	}
	leaf := &ca.LeafRequest{
		PublicKey: pub, CommonName: cn, DNSNames: dns, IPAddresses: ips,
		NotBefore: r.now(), TTL: ttl,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return r.signAndRecord(ctx, Caller{}, leaf, recordMeta{profile: "sigil-server", keyType: kt, owner: "sigil"})
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

func uriStrings(us []*url.URL) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}
