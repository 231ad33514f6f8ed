package ra_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/ra"
)

// TestConcurrentIssue: 64 goroutines issuing 8 certificates each all
// succeed, with unique serials, all recorded and audited in one unbroken chain.
func TestConcurrentIssue(t *testing.T) {
	const workers, each = 64, 8
	e := newEnv(t)
	before := e.head()

	// CSRs are made up front so the goroutines race on the RA, not on keygen.
	csrs := make([][][]byte, workers)
	for w := range csrs {
		for i := range each {
			csrs[w] = append(csrs[w], csr(t, fmt.Sprintf("w%d-%d.test", w, i)))
		}
	}
	serials := make(chan identity.Serial, workers*each)
	errs := make(chan error, workers*each+1)
	var wg sync.WaitGroup
	// Verification runs alongside the writers: events appended during a
	// walk must never make a sound chain look broken.
	done := make(chan struct{})
	verified := make(chan int, 1)
	go func() {
		n := 0
		defer func() { verified <- n }()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := ra.VerifyChain(e.ctx, e.st); err != nil {
				errs <- fmt.Errorf("VerifyChain during issuance: %w", err)
				return
			}
			n++
		}
	}()
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				out, err := e.ra.Issue(e.ctx, ra.Caller{}, ra.IssueRequest{Profile: "web", CSR: csrs[w][i]})
				if err != nil {
					errs <- fmt.Errorf("worker %d issuance %d: %w", w, i, err)
					continue
				}
				serials <- out.Record.Serial
			}
		})
	}
	wg.Wait()
	close(done)
	if n := <-verified; n == 0 {
		t.Log("no verification ran during issuance")
	}
	close(serials)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[identity.Serial]bool{}
	for s := range serials {
		if seen[s] {
			t.Errorf("serial %s returned twice", s)
		}
		seen[s] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("%d unique serials, want %d", len(seen), workers*each)
	}
	issued := e.certs(identity.StatusIssued)
	if len(issued) != workers*each {
		t.Errorf("%d certificates recorded as issued, want %d", len(issued), workers*each)
	}
	for _, rec := range issued {
		if !seen[rec.Serial] {
			t.Errorf("stored certificate %s was never returned", rec.Serial)
		}
	}
	if n := len(e.certs(identity.StatusPlanned)); n != 0 {
		t.Errorf("%d certificates left planned", n)
	}
	evs := e.eventsAfter(before)
	if len(evs) != workers*each {
		t.Errorf("%d audit events for %d issuances", len(evs), workers*each)
	}
	for _, ev := range evs {
		if ev.Action != "cert.issue" || !seen[identity.Serial(ev.Object)] {
			t.Errorf("unexpected audit event %+v", ev)
		}
	}
	e.verifyChain()
}

// TestConcurrentRevoke: parallel revocations, each publishing a CRL, give
// unique CRL numbers and a newest CRL that lists every one of them.
func TestConcurrentRevoke(t *testing.T) {
	const n = 16
	e := newEnv(t)
	var certs []identity.Serial
	for i := range n {
		certs = append(certs, e.issue(fmt.Sprintf("r%d.test", i)).Record.Serial)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for _, s := range certs {
		wg.Go(func() {
			if _, err := e.ra.Revoke(e.ctx, ra.Caller{}, s, identity.ReasonSuperseded); err != nil {
				errs <- err
			}
		})
		// Scheduled publications race with the revocations too.
		wg.Go(func() {
			if _, err := e.ra.PublishCRL(e.ctx, intermediateID); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	latest, err := e.st.LatestCRL(e.ctx, intermediateID)
	if err != nil {
		t.Fatal(err)
	}
	ents := e.crlEntries(latest)
	for _, s := range certs {
		if _, ok := ents[s]; !ok {
			t.Errorf("newest CRL (number %d) lacks %s", latest.Number, s)
		}
	}
	// Every revocation and scheduled run stored its own number: 1..2n.
	if latest.Number != 2*n {
		t.Errorf("newest CRL number %d, want %d", latest.Number, 2*n)
	}
	e.verifyChain()
}

// TestCRLAndOCSP: revocations show in every later CRL (numbered upwards,
// signed by the intermediate, with reasons) while the certificate is valid,
// and OCSP answers good, revoked or unknown.
func TestCRLAndOCSP(t *testing.T) {
	e := newEnv(t)
	var certs []*ra.Issued
	for i := range 5 {
		certs = append(certs, e.issue(fmt.Sprintf("c%d.test", i)))
	}
	reasons := map[identity.Serial]identity.RevocationReason{
		certs[0].Record.Serial: identity.ReasonKeyCompromise,
		certs[1].Record.Serial: identity.ReasonSuperseded,
		certs[2].Record.Serial: identity.ReasonUnspecified,
	}
	var lastNumber int64
	if c, err := e.st.LatestCRL(e.ctx, intermediateID); err == nil {
		lastNumber = c.Number
	}
	for _, c := range certs[:3] {
		rec, err := e.ra.Revoke(e.ctx, ra.Caller{}, c.Record.Serial, reasons[c.Record.Serial])
		if err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if rec.Status != identity.StatusRevoked || rec.RevocationReason != reasons[c.Record.Serial] {
			t.Errorf("Revoke returned %s/%v", rec.Status, rec.RevocationReason)
		}
		// Revoke publishes a CRL itself.
		latest, err := e.st.LatestCRL(e.ctx, intermediateID)
		if err != nil || latest.Number <= lastNumber {
			t.Fatalf("no new CRL after revocation: %v (number %d after %d)", err, latest.Number, lastNumber)
		}
		lastNumber = latest.Number
	}
	if _, err := e.ra.Revoke(e.ctx, ra.Caller{}, certs[0].Record.Serial, identity.ReasonKeyCompromise); fail.KindOf(err) != fail.Conflict {
		t.Errorf("second revocation = %v, want Conflict", err)
	}
	if _, err := e.ra.Revoke(e.ctx, ra.Caller{}, identity.SerialFromBig(bigSerial), 0); fail.KindOf(err) != fail.NotFound {
		t.Errorf("revoking an unknown serial = %v, want NotFound", err)
	}

	checkCRL := func(when string, want map[identity.Serial]identity.RevocationReason) {
		t.Helper()
		crl, err := e.ra.PublishCRL(e.ctx, intermediateID)
		if err != nil {
			t.Fatalf("%s: PublishCRL: %v", when, err)
		}
		if crl.Number <= lastNumber {
			t.Errorf("%s: CRL number %d does not increase (previous %d)", when, crl.Number, lastNumber)
		}
		lastNumber = crl.Number
		ents := e.crlEntries(crl)
		if len(ents) != len(want) {
			t.Errorf("%s: CRL has %d entries, want %d", when, len(ents), len(want))
		}
		for s, reason := range want {
			ent, ok := ents[s]
			switch {
			case !ok:
				t.Errorf("%s: CRL lacks revoked serial %s", when, s)
			case ent.ReasonCode != int(reason):
				t.Errorf("%s: CRL reason for %s = %d, want %d", when, s, ent.ReasonCode, reason)
			case ent.RevocationTime.IsZero():
				t.Errorf("%s: CRL entry %s has no revocation time", when, s)
			}
		}
	}
	checkCRL("now", reasons)
	checkCRL("republished", reasons)
	e.clock.advance(10 * 24 * time.Hour)
	checkCRL("after 10 days", reasons)

	// A short-lived revoked certificate stays through its expiry plus the
	// grace period, then leaves the CRL.
	short := e.issueAs(ra.Caller{}, "web", "short.test", time.Hour)
	if _, err := e.ra.Revoke(e.ctx, ra.Caller{}, short.Record.Serial, identity.ReasonCessationOfOperation); err != nil {
		t.Fatal(err)
	}
	withShort := map[identity.Serial]identity.RevocationReason{short.Record.Serial: identity.ReasonCessationOfOperation}
	for s, r := range reasons {
		withShort[s] = r
	}
	checkCRL("short-lived revoked", withShort)
	e.clock.advance(2 * time.Hour)
	checkCRL("short-lived expired, within grace", withShort)
	e.clock.advance(24 * time.Hour)
	checkCRL("short-lived expired past grace", reasons)

	// OCSP: good, revoked (with reason and time), unknown.
	for _, c := range []struct {
		name   string
		serial identity.Serial
		status int
		reason identity.RevocationReason
	}{
		{"issued", certs[3].Record.Serial, ocsp.Good, 0},
		{"revoked keyCompromise", certs[0].Record.Serial, ocsp.Revoked, identity.ReasonKeyCompromise},
		{"revoked superseded", certs[1].Record.Serial, ocsp.Revoked, identity.ReasonSuperseded},
		{"never issued", identity.SerialFromBig(bigSerial), ocsp.Unknown, 0},
	} {
		t.Run("OCSP "+c.name, func(t *testing.T) {
			resp := e.ocspStatus(e.inter.Cert, c.serial.Big())
			if resp.Status != c.status {
				t.Fatalf("status = %d, want %d", resp.Status, c.status)
			}
			if c.status == ocsp.Revoked {
				rec, _ := e.st.GetCertificate(e.ctx, c.serial)
				if resp.RevocationReason != int(c.reason) || !resp.RevokedAt.Equal(rec.RevokedAt) {
					t.Errorf("revoked %v reason %d; want %v reason %d", resp.RevokedAt, resp.RevocationReason, rec.RevokedAt, c.reason)
				}
			}
		})
	}
	// A serial issued by the intermediate, asked about under the root: unknown.
	if resp := e.ocspStatus(e.root.Cert, certs[3].Record.Serial.Big()); resp.Status != ocsp.Unknown {
		t.Errorf("OCSP under the wrong issuer = %d, want Unknown", resp.Status)
	}
	// An issuer we do not hold is refused outright.
	other := ocspRequest(t, e.inter.Cert, certs[3].Record.Serial.Big())
	other.IssuerKeyHash = append([]byte(nil), other.IssuerKeyHash...)
	other.IssuerKeyHash[0] ^= 0xff
	if _, err := e.ra.OCSP(e.ctx, other, nil); err == nil {
		t.Error("OCSP answered for an issuer the CA does not hold")
	}

	// The current CRL (served by CRL) is the newest one.
	cur, err := e.ra.CRL(e.ctx, intermediateID)
	if err != nil || cur.Number != lastNumber {
		t.Errorf("CRL() = %v, %v; want number %d", cur, err, lastNumber)
	}
	if _, err := e.ra.CRL(e.ctx, "nope"); fail.KindOf(err) != fail.NotFound {
		t.Errorf("CRL of an unknown issuer = %v, want NotFound", err)
	}
	if got := len(e.certs(identity.StatusRevoked)); got != 4 {
		t.Errorf("%d revoked certificates, want 4", got)
	}
	e.verifyChain()
}
