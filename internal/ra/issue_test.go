package ra_test

import (
	"bytes"
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

// TestIssueRecordsBeforeReturning: a returned certificate is already stored
// as issued, is byte for byte the stored DER, was signed over exactly the
// planned TBS, and has its cert.issue audit event.
func TestIssueRecordsBeforeReturning(t *testing.T) {
	e := newEnv(t)
	before := e.head()
	out := e.issue("www.bar.test")

	cert := parseCert(t, out.CertPEM)
	if err := cert.CheckSignatureFrom(e.inter.Cert); err != nil {
		t.Fatalf("certificate not signed by the intermediate: %v", err)
	}
	if got := identity.SerialFromBig(cert.SerialNumber); got != out.Record.Serial {
		t.Fatalf("certificate serial %s, record %s", got, out.Record.Serial)
	}
	if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %x: want positive with >= 64 bits", cert.SerialNumber)
	}
	if out.Record.TBS != nil {
		t.Error("returned record still carries the TBS bytes")
	}
	if !bytes.Equal(out.ChainPEM, e.inter.ChainPEM()) {
		t.Error("ChainPEM is not the intermediate's chain")
	}

	rec, err := e.st.GetCertificate(e.ctx, out.Record.Serial)
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"status", rec.Status, identity.StatusIssued},
		{"profile", rec.Profile, "web"},
		{"issuer", rec.IssuerID, intermediateID},
		{"requester", rec.Requester, ra.System},
		{"common name", rec.CommonName, "www.bar.test"},
		{"fingerprint", rec.Fingerprint, identity.Fingerprint(cert.Raw)},
		{"not after", rec.NotAfter.Unix(), cert.NotAfter.Unix()},
		{"key type", rec.KeyType, identity.KeyECDSAP256},
	} {
		if c.got != c.want {
			t.Errorf("stored %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !bytes.Equal(rec.DER, cert.Raw) {
		t.Error("stored DER differs from the returned certificate")
	}
	// Once issued, the record drops the planned TBS: the DER holds it (the
	// CA's tests check the signed TBS is byte for byte the planned one).
	if rec.TBS != nil {
		t.Errorf("issued record still stores the planned TBS (%d bytes)", len(rec.TBS))
	}

	evs := e.eventsAfter(before)
	if len(evs) != 1 {
		t.Fatalf("issuance appended %d audit events, want 1: %+v", len(evs), evs)
	}
	ev := evs[0]
	if ev.Action != "cert.issue" || ev.Object != string(out.Record.Serial) || ev.Result != audit.ResultSuccess || ev.Actor != ra.System {
		t.Errorf("audit event = %+v, want cert.issue/%s/success by system", ev, out.Record.Serial)
	}
	if !bytes.Contains([]byte(ev.Detail), []byte(rec.Fingerprint)) {
		t.Errorf("audit detail lacks the certificate fingerprint: %s", ev.Detail)
	}
	e.verifyChain()
}

// TestIssueSignerFailureLeavesPlanned: when the CA key fails after the
// certificate was planned, nothing is returned, the planned row stays (the
// crash-safety record), OCSP never calls it good, it cannot be revoked and
// it is not on the CRL.
func TestIssueSignerFailureLeavesPlanned(t *testing.T) {
	e := newEnv(t)
	before := e.head()
	e.signer.fail.Store(true)
	out, err := e.ra.Issue(e.ctx, ra.Caller{}, ra.IssueRequest{Profile: "web", CSR: csr(t, "crash.test")})
	e.signer.fail.Store(false)
	if err == nil || out != nil {
		t.Fatalf("Issue with a failing signer = %v, %v; want an error and nothing returned", out, err)
	}
	if !errors.Is(err, errSignerDown) {
		t.Errorf("error does not carry the signer failure: %v", err)
	}

	all := e.certs("")
	if len(all) != 1 || all[0].Status != identity.StatusPlanned {
		t.Fatalf("store holds %d certificates %+v; want exactly one planned", len(all), all)
	}
	planned := all[0]
	if len(planned.TBS) == 0 || len(planned.DER) != 0 || planned.Fingerprint != "" {
		t.Errorf("planned record: TBS %d bytes, DER %d bytes, fingerprint %q; want TBS only", len(planned.TBS), len(planned.DER), planned.Fingerprint)
	}
	serial := planned.Serial.Big()

	// The failure is audited as an error, and nothing claims it was issued.
	for _, ev := range e.eventsAfter(before) {
		if ev.Action == "cert.issue" && ev.Result == audit.ResultSuccess {
			t.Errorf("a failed issuance was audited as success: %+v", ev)
		}
	}
	if evs := e.eventsAfter(before); len(evs) != 1 || evs[0].Result != audit.ResultError {
		t.Errorf("want one cert.issue error event, got %+v", evs)
	}

	if resp := e.ocspStatus(e.inter.Cert, serial); resp.Status != ocsp.Unknown {
		t.Errorf("OCSP for a planned serial = %d, want Unknown (%d)", resp.Status, ocsp.Unknown)
	}

	_, err = e.ra.Revoke(e.ctx, ra.Caller{}, planned.Serial, identity.ReasonKeyCompromise)
	if fail.KindOf(err) != fail.Conflict {
		t.Errorf("Revoke of a planned certificate = %v (kind %v), want Conflict", err, fail.KindOf(err))
	}
	if rec, _ := e.st.GetCertificate(e.ctx, planned.Serial); rec.Status != identity.StatusPlanned {
		t.Errorf("planned certificate is now %s", rec.Status)
	}
	crl, err := e.ra.PublishCRL(e.ctx, intermediateID)
	if err != nil {
		t.Fatalf("PublishCRL: %v", err)
	}
	if ents := e.crlEntries(crl); len(ents) != 0 {
		t.Errorf("CRL lists %v; a planned certificate must not appear", ents)
	}

	// The CA recovers and issues under a new serial.
	next := e.issue("crash.test")
	if next.Record.Serial == planned.Serial {
		t.Error("a new issuance reused the planned serial")
	}
	if resp := e.ocspStatus(e.inter.Cert, next.Record.Serial.Big()); resp.Status != ocsp.Good {
		t.Errorf("OCSP for the recovered issuance = %d, want Good", resp.Status)
	}
	e.verifyChain()
}

// TestSignerPanicDoesNotWedgeStore: a signer that panics inside a store
// transaction (CRL signing happens inside one) must not leave the single
// writer connection holding an open transaction: later changes still work.
func TestSignerPanicDoesNotWedgeStore(t *testing.T) {
	e := newEnv(t)
	e.signer.panics.Store(true)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("PublishCRL did not reach the panicking signer")
			}
		}()
		// A context that is never cancelled, as in a background job.
		_, _ = e.ra.PublishCRL(context.Background(), intermediateID)
	}()
	e.signer.panics.Store(false)

	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	req := ra.IssueRequest{Profile: "web", CSR: csr(t, "after-panic.test")}
	res := make(chan error, 1)
	go func() { _, err := e.ra.Issue(ctx, ra.Caller{}, req); res <- err }()
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("Issue after a panic inside a transaction: %v (the writer is wedged)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Issue after a panic inside a transaction did not return in 10s: the writer is wedged")
	}
	if _, err := e.ra.PublishCRL(ctx, intermediateID); err != nil {
		t.Fatalf("PublishCRL after a panic: %v", err)
	}
	e.verifyChain()
}

// TestAuditFailsClosed: when audit events cannot be written, every state
// change is refused as Unavailable and nothing is changed; once the audit
// log works again, so does everything else.
func TestAuditFailsClosed(t *testing.T) {
	e := newEnv(t)
	issued := e.issue("before.test")
	_, opTok := e.token(identity.RoleOperator)
	db := e.db()
	if _, err := db.ExecContext(e.ctx, `CREATE TRIGGER no_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit disk full'); END;`); err != nil {
		t.Fatalf("creating trigger: %v", err)
	}
	head := e.head()
	tokensBefore, _ := e.st.ListTokens(e.ctx)
	profilesBefore, _ := e.st.ListProfiles(e.ctx)
	newProfile := mustDoc(t, "profiles:\n  - name: extra\n    dns: [\"*.extra.test\"]\n")

	cases := []struct {
		name string
		do   func() error
	}{
		{"issue", func() error {
			out, err := e.ra.Issue(e.ctx, ra.Caller{}, ra.IssueRequest{Profile: "web", CSR: csr(t, "during.test")})
			if out != nil {
				t.Error("Issue returned a certificate while the audit log was down")
			}
			return err
		}},
		{"revoke", func() error {
			_, err := e.ra.Revoke(e.ctx, ra.Caller{}, issued.Record.Serial, identity.ReasonSuperseded)
			return err
		}},
		{"apply profiles", func() error {
			_, err := e.ra.ApplyProfiles(e.ctx, ra.Caller{}, newProfile)
			return err
		}},
		{"create token", func() error {
			_, _, err := e.ra.CreateToken(e.ctx, ra.Caller{}, ra.TokenRequest{Role: identity.RoleAuditor})
			return err
		}},
		{"revoke token", func() error { return e.ra.RevokeToken(e.ctx, ra.Caller{}, opTok.ID) }},
		// A refusal that cannot be audited is not reported as a refusal.
		{"forbidden request", func() error {
			_, err := e.ra.ApplyProfiles(e.ctx, ra.Caller{Token: opTok}, newProfile)
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			if fail.KindOf(err) != fail.Unavailable {
				t.Fatalf("error = %v (kind %v), want Unavailable", err, fail.KindOf(err))
			}
			if !errors.Is(err, audit.ErrUnavailable) {
				t.Errorf("error does not wrap audit.ErrUnavailable: %v", err)
			}
		})
	}

	// Nothing changed: no new issued certificate (a planned row is the
	// crash-safety record and is allowed), the revoked one stays issued, no
	// profile, no token, no audit event.
	if got := e.certs(identity.StatusIssued); len(got) != 1 || got[0].Serial != issued.Record.Serial {
		t.Errorf("issued certificates = %d, want only the one issued before", len(got))
	}
	if got := e.certs(identity.StatusPlanned); len(got) > 1 {
		t.Errorf("%d planned certificates, want at most 1", len(got))
	}
	if got := e.certs(identity.StatusRevoked); len(got) != 0 {
		t.Errorf("%d revoked certificates, want 0", len(got))
	}
	if _, err := e.st.GetProfile(e.ctx, "extra"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("profile applied while the audit log was down: %v", err)
	}
	if ps, _ := e.st.ListProfiles(e.ctx); len(ps) != len(profilesBefore) {
		t.Errorf("%d profiles, want %d", len(ps), len(profilesBefore))
	}
	tokensAfter, _ := e.st.ListTokens(e.ctx)
	if len(tokensAfter) != len(tokensBefore) {
		t.Errorf("%d tokens, want %d", len(tokensAfter), len(tokensBefore))
	}
	if tok, _ := e.st.GetToken(e.ctx, opTok.ID); !tok.RevokedAt.IsZero() {
		t.Error("token revoked while the audit log was down")
	}
	if h := e.head(); h != head {
		t.Errorf("audit head moved from %d to %d", head, h)
	}

	if _, err := db.ExecContext(e.ctx, `DROP TRIGGER no_audit`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ra.Revoke(e.ctx, ra.Caller{}, issued.Record.Serial, identity.ReasonSuperseded); err != nil {
		t.Fatalf("Revoke after recovery: %v", err)
	}
	after := e.issue("after.test")
	if _, err := e.ra.ApplyProfiles(e.ctx, ra.Caller{}, newProfile); err != nil {
		t.Fatalf("ApplyProfiles after recovery: %v", err)
	}
	if _, _, err := e.ra.CreateToken(e.ctx, ra.Caller{}, ra.TokenRequest{Role: identity.RoleAuditor}); err != nil {
		t.Fatalf("CreateToken after recovery: %v", err)
	}
	if rec, _ := e.st.GetCertificate(e.ctx, issued.Record.Serial); rec.Status != identity.StatusRevoked {
		t.Errorf("certificate is %s after revocation, want revoked", rec.Status)
	}
	if resp := e.ocspStatus(e.inter.Cert, after.Record.Serial.Big()); resp.Status != ocsp.Good {
		t.Errorf("OCSP after recovery = %d, want Good", resp.Status)
	}
	e.verifyChain()
}

// bigSerial is a serial this CA never issued.
var bigSerial = new(big.Int).Lsh(big.NewInt(1), 100)
