package ra

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// Agent enrolment, renewal and machine management (issue 3).
//
// Trust model: a join token (single-use, short-lived, hashed at rest)
// authenticates exactly one enrolment, consumed in the same transaction that
// marks its certificate issued. From then on the machine authenticates with
// its current certificate over mTLS. A revoked certificate authenticates
// nothing except ONE re-key request, and only while its machine is active,
// it is still the machine's current certificate and the reason is not
// keyCompromise: the agent can then replace an identity an operator revoked
// (e.g. a mis-issued or superseded certificate) without a new token, while a
// disabled machine or a compromised key needs a human (disable, or re-enrol
// with a new join token). Besides the current certificate, only the one that
// authenticated the latest renewal may renew (its answer may have been lost
// in transit, leaving the agent without the new certificate), and only
// until the agent is seen using the new one (its status check clears it);
// an older certificate, even unexpired, authenticates no renewal.

// AgentLabel is the certificate label naming the machine a certificate was
// issued to through the agent.
const AgentLabel = "sigil.agent/machine"

// AttestJoinToken is the attestation method of a join-token enrolment.
const AttestJoinToken = "join_token"

const joinTokenPrefix = "sgj_"

// Join token lifetimes: long enough to paste into a provisioning job, short
// enough that a leaked token is soon useless.
const (
	DefaultJoinTokenTTL = 15 * time.Minute
	MaxJoinTokenTTL     = 7 * 24 * time.Hour
)

// JoinTokenRequest asks for a join token.
type JoinTokenRequest struct {
	Profile string
	Names   []string // Names[0] is the machine name
	TTL     time.Duration
}

// CreateJoinToken creates a single-use join token and returns its plaintext
// (shown once) and record. Whoever may issue under the profile may create one.
func (r *RA) CreateJoinToken(ctx context.Context, c Caller, req JoinTokenRequest) (string, *store.JoinToken, error) {
	const action = "agent.join_token.create"
	if err := r.authorize(ctx, c, auth.CertIssue, req.Profile); err != nil {
		return "", nil, err
	}
	plain, tok, err := r.newJoinToken(ctx, c, req)
	if err != nil {
		return "", nil, r.refused(ctx, c, action, req.Profile, err)
	}
	err = r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.InsertJoinToken(ctx, tok); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, action, tok.ID, audit.ResultSuccess, map[string]any{
			"profile": tok.Profile, "names": tok.Names, "expires_at": tok.ExpiresAt}))
	})
	if err != nil {
		return "", nil, auditErr(err)
	}
	return plain, tok, nil
}

func (r *RA) newJoinToken(ctx context.Context, c Caller, req JoinTokenRequest) (string, *store.JoinToken, error) {
	if c.Token != nil && !c.Token.AllowsProfile(req.Profile) {
		return "", nil, fail.New(fail.Forbidden, "token is not allowed to use profile %q", req.Profile)
	}
	if _, err := r.profiles.get(ctx, req.Profile); err != nil {
		return "", nil, err
	}
	if len(req.Names) == 0 {
		return "", nil, fail.New(fail.Malformed, "a join token binds at least one name (--name)")
	}
	names := make([]string, 0, len(req.Names))
	for _, n := range req.Names {
		n = strings.ToLower(strings.TrimSpace(n))
		if err := checkBoundName(n); err != nil {
			return "", nil, err
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultJoinTokenTTL
	}
	if ttl < time.Minute || ttl > MaxJoinTokenTTL {
		return "", nil, fail.New(fail.Malformed, "join token ttl %s is outside 1m..%s", ttl, MaxJoinTokenTTL)
	}
	idb, secret := make([]byte, 8), make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return "", nil, fail.Wrap(fail.Internal, err)
	}
	if _, err := rand.Read(secret); err != nil {
		return "", nil, fail.Wrap(fail.Internal, err)
	}
	id, sec := hex.EncodeToString(idb), base64.RawURLEncoding.EncodeToString(secret)
	now := r.now().UTC().Truncate(time.Microsecond)
	tok := &store.JoinToken{
		ID: id, SecretHash: hashJoinSecret(sec), Profile: req.Profile, Names: names,
		CreatedBy: c.name(), CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	return joinTokenPrefix + id + "_" + sec, tok, nil
}

// checkBoundName accepts a DNS name or an IP address: what a machine
// certificate may carry. Policy still decides what the profile allows.
func checkBoundName(n string) error {
	if n == "" || len(n) > 253 {
		return fail.New(fail.Malformed, "invalid name %q", n)
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == ':' || r == '*') {
			return fail.New(fail.Malformed, "invalid name %q: only DNS names and IP addresses may be bound", n)
		}
	}
	return nil
}

func hashJoinSecret(secret string) []byte {
	s := sha256.Sum256([]byte(secret))
	return s[:]
}

// ListJoinTokens lists join tokens (never their secrets).
func (r *RA) ListJoinTokens(ctx context.Context, c Caller) ([]*store.JoinToken, error) {
	if err := r.authorize(ctx, c, auth.CertRead, "join-tokens"); err != nil {
		return nil, err
	}
	ts, err := r.store.ListJoinTokens(ctx)
	return ts, storeErr(err, "join tokens")
}

// RevokeJoinToken makes an unused join token useless.
func (r *RA) RevokeJoinToken(ctx context.Context, c Caller, id string) error {
	const action = "agent.join_token.revoke"
	tok, err := r.store.GetJoinToken(ctx, id)
	if err != nil {
		return r.refused(ctx, c, action, id, storeErr(err, "join token "+id))
	}
	if err := r.authorize(ctx, c, auth.CertIssue, tok.Profile); err != nil {
		return err
	}
	if c.Token != nil && !c.Token.AllowsProfile(tok.Profile) {
		return r.refused(ctx, c, action, id, fail.New(fail.Forbidden, "token is not allowed to use profile %q", tok.Profile))
	}
	return auditErr(r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.RevokeJoinToken(ctx, id, r.now().UTC()); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, action, id, audit.ResultSuccess, nil))
	}))
}

// EnrollRequest is an agent's first request: a join token and a CSR for the
// key it generated.
type EnrollRequest struct {
	JoinToken string
	CSR       []byte
}

// errBadJoinToken hides which part of an unknown or forged token was wrong.
var errBadJoinToken = fail.New(fail.Unauthorized, "invalid join token")

// Enroll exchanges a join token for the machine's first certificate and
// records the machine. The token is consumed in the transaction that marks
// the certificate issued: of two enrolments racing with one token, one
// certificate is issued and the other stays planned (never returned).
func (r *RA) Enroll(ctx context.Context, req EnrollRequest) (*Issued, *store.Machine, error) {
	const action = "agent.enroll"
	c := Caller{Anonymous: true}
	tok, err := r.checkJoinToken(ctx, req.JoinToken)
	if err != nil {
		object := ""
		if tok != nil {
			object = tok.ID
		}
		return nil, nil, r.refused(ctx, c, action, object, err)
	}
	name := tok.Names[0]
	c = Caller{Protocol: agentActor(name)}
	csr, err := checkCSRNames(req.CSR, tok.Names)
	if err != nil {
		return nil, nil, r.refused(ctx, c, action, tok.ID, err)
	}
	now := r.now().UTC().Truncate(time.Microsecond)
	m := &store.Machine{
		Name: name, Profile: tok.Profile, Names: tok.Names, Attestation: AttestJoinToken,
		JoinTokenID: tok.ID, State: store.MachineActive, FirstSeen: now, LastSeen: now,
	}
	out, err := r.issue(ctx, c, IssueRequest{
		Profile: tok.Profile, CSR: req.CSR, parsed: csr, Labels: map[string]string{AgentLabel: name},
		inTx: func(ctx context.Context, tx store.Tx, rec *identity.Certificate) error {
			if err := tx.ConsumeJoinToken(ctx, tok.ID, string(rec.Serial), now); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return fail.New(fail.Unauthorized, "join token %s has already been used", tok.ID)
				}
				return err
			}
			m.CurrentSerial = rec.Serial
			if err := tx.PutMachine(ctx, m); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, r.event(c, action, name, audit.ResultSuccess, map[string]any{
				"join_token": tok.ID, "serial": rec.Serial, "profile": tok.Profile, "attestation": AttestJoinToken}))
		},
	})
	if err != nil {
		if fail.KindOf(err) == fail.Unavailable {
			return nil, nil, err
		}
		return nil, nil, r.refused(ctx, c, action, tok.ID, err)
	}
	return out, m, nil
}

// checkJoinToken finds and checks a presented join token. The returned
// token is non-nil once the secret matched, so refusals name it.
func (r *RA) checkJoinToken(ctx context.Context, plain string) (*store.JoinToken, error) {
	id, secret, ok := parseJoinToken(plain)
	if !ok {
		return nil, errBadJoinToken
	}
	tok, err := r.store.GetJoinToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errBadJoinToken
	}
	if err != nil {
		return nil, storeErr(err, "join token")
	}
	if subtle.ConstantTimeCompare(tok.SecretHash, hashJoinSecret(secret)) != 1 {
		return nil, errBadJoinToken
	}
	now := r.now()
	switch {
	case !tok.UsedAt.IsZero():
		return tok, fail.New(fail.Unauthorized, "join token %s has already been used (at %s)", tok.ID, tok.UsedAt.Format(time.RFC3339))
	case !tok.RevokedAt.IsZero():
		return tok, fail.New(fail.Unauthorized, "join token %s has been revoked", tok.ID)
	case !now.Before(tok.ExpiresAt):
		return tok, fail.New(fail.Unauthorized, "join token %s expired at %s", tok.ID, tok.ExpiresAt.Format(time.RFC3339))
	case len(tok.Names) == 0:
		return tok, fail.New(fail.Unauthorized, "join token %s binds no names", tok.ID)
	}
	return tok, nil
}

// parseJoinToken splits sgj_<16 hex id>_<secret>.
func parseJoinToken(plain string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(plain), joinTokenPrefix)
	id, secret, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || len(id) != 16 || secret == "" || len(secret) > 128 {
		return "", "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// checkCSRNames parses a CSR (checking its signature) and refuses it if it
// names anything outside the bound names.
func checkCSRNames(csrData []byte, bound []string) (*ca.CSR, error) {
	csr, err := ca.ParseCSR(csrData)
	if err != nil {
		return nil, fail.Wrap(fail.Malformed, err)
	}
	return csr, checkNames(csr, bound)
}

func checkNames(csr *ca.CSR, bound []string) error {
	cr := csr.Request
	var asked []string
	if cr.Subject.CommonName != "" {
		asked = append(asked, cr.Subject.CommonName)
	}
	asked = append(asked, cr.DNSNames...)
	for _, ip := range cr.IPAddresses {
		asked = append(asked, ip.String())
	}
	if len(cr.URIs) > 0 || len(cr.EmailAddresses) > 0 {
		return fail.New(fail.Forbidden, "the CSR asks for URIs or e-mail addresses; a machine may obtain only its bound names %v", bound)
	}
	if len(asked) == 0 {
		return fail.New(fail.Malformed, "the CSR names nothing")
	}
	for _, n := range asked {
		if !slices.Contains(bound, strings.ToLower(n)) {
			return fail.New(fail.Forbidden, "the CSR asks for %q, which is not bound to this machine (bound: %s)", n, strings.Join(bound, ", "))
		}
	}
	return nil
}

// agentActor names a machine's own requests in the audit log and in the
// requester of its certificates.
func agentActor(machine string) string { return "agent:" + machine }

// AgentIdentity is who an mTLS client certificate proves to be.
type AgentIdentity struct {
	Cert    *identity.Certificate
	Machine *store.Machine
}

// authenticateAgent identifies the machine behind a TLS client certificate.
// The anchor is the inventory, not a chain walk: the certificate must be
// byte-identical to one this CA issued and recorded (only the RA writes
// DER into the store), and the TLS handshake has already checked the
// client's signature with its public key, proving possession of the key.
// That is what chain verification would establish, without two signature
// checks per request. It must be within its validity (an expired
// certificate authenticates nothing). Revocation is not checked here:
// callers decide.
func (r *RA) authenticateAgent(ctx context.Context, peer []*x509.Certificate) (*AgentIdentity, error) {
	if len(peer) == 0 {
		return nil, fail.New(fail.Unauthorized, "a client certificate is required (mTLS with the agent's current certificate)")
	}
	leaf := peer[0]
	now := r.now()
	if now.After(leaf.NotAfter) {
		return nil, fail.New(fail.Unauthorized, "the client certificate expired at %s: enrol again with a new join token", leaf.NotAfter.Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fail.New(fail.Unauthorized, "the client certificate is not valid before %s", leaf.NotBefore.Format(time.RFC3339))
	}
	serial := identity.SerialFromBig(leaf.SerialNumber)
	rec, err := r.store.GetCertificate(ctx, serial)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fail.New(fail.Unauthorized, "the client certificate %s was not issued by this CA", serial.OpenSSL())
		}
		return nil, storeErr(err, "certificate")
	}
	if len(rec.DER) == 0 || string(rec.DER) != string(leaf.Raw) {
		return nil, fail.New(fail.Unauthorized, "the client certificate %s was not issued by this CA", serial.OpenSSL())
	}
	// The label alone is not enough: anyone allowed to issue may set labels.
	// The requester proves the certificate came from an enrolment or renewal.
	name := rec.Labels[AgentLabel]
	if name == "" || rec.Requester != agentActor(name) {
		return nil, fail.New(fail.Unauthorized, "certificate %s was not issued to an agent", serial.OpenSSL())
	}
	m, err := r.store.GetMachine(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fail.New(fail.Unauthorized, "machine %s is not enrolled", name)
		}
		return nil, storeErr(err, "machine")
	}
	return &AgentIdentity{Cert: rec, Machine: m}, nil
}

// rekeyAllowed reports whether a revoked certificate may authenticate one
// re-key request (see the trust model at the top of this file).
// It is exactly one: a re-key whose answer is lost is not retried with the
// revoked certificate (the agent then needs a new join token), so that a
// revoked certificate never mints more than one replacement.
func rekeyAllowed(id *AgentIdentity) bool {
	return id.Cert.Status == identity.StatusRevoked && id.Machine.State == store.MachineActive &&
		id.Cert.Serial == id.Machine.CurrentSerial && id.Cert.RevocationReason != identity.ReasonKeyCompromise
}

// Renew issues a machine's next certificate, authenticated by its current
// one (peer is the verified-by-us TLS client chain).
func (r *RA) Renew(ctx context.Context, peer []*x509.Certificate, csrData []byte) (*Issued, error) {
	const action = "agent.renew"
	id, err := r.authenticateAgent(ctx, peer)
	if err != nil {
		object := ""
		if len(peer) > 0 {
			object = string(identity.SerialFromBig(peer[0].SerialNumber))
		}
		return nil, r.refused(ctx, Caller{Anonymous: true}, action, object, err)
	}
	m := id.Machine
	c := Caller{Protocol: agentActor(m.Name)}
	rekey, err := r.renewRefusal(ctx, id)
	if k := fail.KindOf(err); err != nil && (k == fail.Unavailable || k == fail.Internal) {
		return nil, err
	}
	var csr *ca.CSR
	if err == nil {
		csr, err = checkCSRNames(csrData, m.Names)
	}
	if err == nil && rekey {
		if spki, _ := identity.SPKIFingerprint(csr.Request.PublicKey); spki == id.Cert.SPKIFingerprint {
			err = fail.New(fail.Forbidden, "certificate %s is revoked: the replacement needs a new key", id.Cert.Serial.OpenSSL())
		}
	}
	if err != nil {
		return nil, r.refused(ctx, c, action, m.Name, err)
	}
	now := r.now().UTC().Truncate(time.Microsecond)
	out, err := r.issue(ctx, c, IssueRequest{
		Profile: m.Profile, CSR: csrData, parsed: csr, Labels: map[string]string{AgentLabel: m.Name},
		inTx: func(ctx context.Context, tx store.Tx, rec *identity.Certificate) error {
			// The checks above read the machine outside this transaction;
			// the compare-and-swap on its current serial makes them hold
			// at commit: of requests racing to replace one certificate,
			// one wins and the others' certificates stay planned.
			if err := tx.SetMachineCert(ctx, m.Name, m.CurrentSerial, rec.Serial, id.Cert.Serial, now); err != nil {
				switch {
				case errors.Is(err, store.ErrMachineDisabled):
					return fail.New(fail.Forbidden, "machine %s is disabled: renewal refused", m.Name)
				case errors.Is(err, store.ErrConflict) && rekey:
					return fail.New(fail.Conflict, "revoked certificate %s has already been replaced by a concurrent re-key", id.Cert.Serial.OpenSSL())
				case errors.Is(err, store.ErrConflict):
					return fail.New(fail.Conflict, "machine %s: certificate %s was replaced by a concurrent renewal; retry", m.Name, m.CurrentSerial.OpenSSL())
				}
				return err
			}
			return tx.AppendAudit(ctx, r.event(c, action, m.Name, audit.ResultSuccess, map[string]any{
				"previous": id.Cert.Serial, "replaced": m.CurrentSerial, "serial": rec.Serial, "rekey_after_revocation": rekey}))
		},
	})
	if err != nil {
		if fail.KindOf(err) == fail.Unavailable {
			return nil, err
		}
		return nil, r.refused(ctx, c, action, m.Name, err)
	}
	return out, nil
}

// renewRefusal decides whether id may authenticate a renewal: nil, or the
// refusal (a fail.Error). rekey: the renewal replaces a revoked
// certificate and needs a new key.
func (r *RA) renewRefusal(ctx context.Context, id *AgentIdentity) (rekey bool, err error) {
	m := id.Machine
	switch {
	case m.State != store.MachineActive:
		return false, fail.New(fail.Forbidden, "machine %s is disabled: renewal refused", m.Name)
	case id.Cert.Status == identity.StatusRevoked && !rekeyAllowed(id):
		return false, fail.New(fail.Unauthorized, "certificate %s is revoked (%s) and cannot authenticate a renewal: enrol again with a new join token", id.Cert.Serial.OpenSSL(), id.Cert.RevocationReason)
	case id.Cert.Status == identity.StatusRevoked:
		return true, nil
	case id.Cert.Status != identity.StatusIssued:
		return false, fail.New(fail.Unauthorized, "certificate %s is %s", id.Cert.Serial.OpenSSL(), id.Cert.Status)
	case id.Cert.Serial != m.CurrentSerial && id.Cert.Serial != m.RenewedBy:
		// Only the current certificate, or the one that authenticated the
		// renewal that replaced it (its answer may have been lost), renews:
		// a still-valid older certificate, say from a backup, must not mint
		// the machine's identity anew.
		return false, fail.New(fail.Unauthorized, "certificate %s has been superseded by %s and cannot authenticate a renewal: renew with the current certificate, or enrol again with a new join token",
			id.Cert.Serial.OpenSSL(), m.CurrentSerial.OpenSSL())
	case id.Cert.Serial != m.CurrentSerial:
		// The lost-answer path. If the certificate it would replace was
		// revoked for key compromise, a human decides (as for the current
		// certificate itself): with --reuse-key both hold the same key.
		cur, err := r.store.GetCertificate(ctx, m.CurrentSerial)
		switch {
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return false, storeErr(err, "certificate")
		case err == nil && cur.Status == identity.StatusRevoked && cur.RevocationReason == identity.ReasonKeyCompromise:
			return false, fail.New(fail.Unauthorized, "the machine's current certificate %s was revoked for keyCompromise: enrol again with a new join token", m.CurrentSerial.OpenSSL())
		}
	}
	return false, nil
}

// AgentStatus is what the status endpoint tells an agent about itself.
type AgentStatus struct {
	Machine          string                    `json:"machine"`
	MachineState     store.MachineState        `json:"machine_state"`
	Serial           identity.Serial           `json:"serial"`
	CertStatus       string                    `json:"cert_status"` // issued, revoked, expired
	RevocationReason identity.RevocationReason `json:"revocation_reason,omitempty"`
	CurrentSerial    identity.Serial           `json:"current_serial"`
	// RekeyAllowed: the certificate is revoked, but may authenticate one
	// re-key request.
	RekeyAllowed bool `json:"rekey_allowed"`
	// RenewAllowed: the certificate may authenticate a renewal (or the
	// re-key RekeyAllowed announces). With Serial not CurrentSerial it
	// tells a lost answer (true: renew now) from a superseded certificate
	// (false: only a new join token helps).
	RenewAllowed bool `json:"renew_allowed"`
}

// lastSeenEvery bounds the write load of status polls: LastSeen moves at
// most this often per machine (it is telemetry, not a state change).
const lastSeenEvery = 5 * time.Minute

// AgentStatusOf answers a status poll authenticated by the agent's
// certificate, revoked or not.
func (r *RA) AgentStatusOf(ctx context.Context, peer []*x509.Certificate) (*AgentStatus, error) {
	id, err := r.authenticateAgent(ctx, peer)
	if err != nil {
		// Not audited: polls are frequent and change nothing; a wrong
		// certificate learns nothing but the refusal.
		return nil, err
	}
	_, renewErr := r.renewRefusal(ctx, id)
	if k := fail.KindOf(renewErr); renewErr != nil && (k == fail.Unavailable || k == fail.Internal) {
		return nil, renewErr
	}
	now := r.now()
	// The agent uses its current certificate: no answer was lost, so the
	// certificate before it may no longer renew.
	confirm := id.Cert.Serial == id.Machine.CurrentSerial && id.Machine.RenewedBy != ""
	if confirm || now.Sub(id.Machine.LastSeen) > lastSeenEvery {
		if err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			if confirm {
				if err := tx.ConfirmMachineCert(ctx, id.Machine.Name, id.Cert.Serial); err != nil {
					return err
				}
			}
			return tx.TouchMachine(ctx, id.Machine.Name, now.UTC())
		}); err != nil {
			r.log.Warn("recording agent contact", "machine", id.Machine.Name, "err", err)
		}
	}
	return &AgentStatus{
		Machine: id.Machine.Name, MachineState: id.Machine.State, Serial: id.Cert.Serial,
		CertStatus: id.Cert.EffectiveStatus(now), RevocationReason: id.Cert.RevocationReason,
		CurrentSerial: id.Machine.CurrentSerial, RekeyAllowed: rekeyAllowed(id), RenewAllowed: renewErr == nil,
	}, nil
}

// ListMachines lists enrolled machines.
func (r *RA) ListMachines(ctx context.Context, c Caller) ([]*store.Machine, error) {
	if err := r.authorize(ctx, c, auth.CertRead, "agents"); err != nil {
		return nil, err
	}
	ms, err := r.store.ListMachines(ctx)
	return ms, storeErr(err, "machines")
}

// GetMachine returns one machine.
func (r *RA) GetMachine(ctx context.Context, c Caller, name string) (*store.Machine, error) {
	if err := r.authorize(ctx, c, auth.CertRead, name); err != nil {
		return nil, err
	}
	m, err := r.store.GetMachine(ctx, name)
	return m, storeErr(err, "machine "+name)
}

// DisableMachine stops a machine for good: it is marked disabled (renewals
// and re-keys are refused from the moment that commits), then every issued
// certificate of the machine is revoked (cessationOfOperation).
func (r *RA) DisableMachine(ctx context.Context, c Caller, name string) (*store.Machine, []identity.Serial, error) {
	const action = "agent.disable"
	if err := r.authorize(ctx, c, auth.CertRevoke, name); err != nil {
		return nil, nil, err
	}
	m, err := r.store.GetMachine(ctx, name)
	if err != nil {
		return nil, nil, r.refused(ctx, c, action, name, storeErr(err, "machine "+name))
	}
	if c.Token != nil && !c.Token.AllowsProfile(m.Profile) {
		return nil, nil, r.refused(ctx, c, action, name, fail.New(fail.Forbidden, "token is not allowed to use profile %q", m.Profile))
	}
	now := r.now().UTC()
	if err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.DisableMachine(ctx, name, now); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, action, name, audit.ResultSuccess, nil))
	}); err != nil {
		return nil, nil, auditErr(err)
	}
	certs, err := r.store.ListCertificates(ctx, store.CertFilter{Status: identity.StatusIssued, Profile: m.Profile, NotAfterAfter: now})
	if err != nil {
		return nil, nil, storeErr(err, "certificates")
	}
	var revoked []identity.Serial
	for _, cert := range certs {
		if cert.Labels[AgentLabel] != name || cert.Requester != agentActor(name) {
			continue
		}
		if _, err := r.Revoke(ctx, c, cert.Serial, identity.ReasonCessationOfOperation); err != nil && fail.KindOf(err) != fail.Conflict {
			return nil, revoked, fmt.Errorf("machine %s is disabled, but revoking %s failed: %w", name, cert.Serial.OpenSSL(), err)
		}
		revoked = append(revoked, cert.Serial)
	}
	m, err = r.store.GetMachine(ctx, name)
	return m, revoked, storeErr(err, "machine "+name)
}
