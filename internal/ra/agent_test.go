package ra_test

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

func csrFor(t testing.TB, key crypto.Signer, dns ...string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: dns[0]}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func (e *env) joinToken(names ...string) string {
	e.t.Helper()
	plain, _, err := e.ra.CreateJoinToken(e.ctx, ra.Caller{}, ra.JoinTokenRequest{Profile: "web", Names: names})
	if err != nil {
		e.t.Fatal(err)
	}
	return plain
}

// enroll enrols a machine and returns its certificate chain as a TLS peer
// would present it, and its key.
func (e *env) enroll(name string) ([]*x509.Certificate, crypto.Signer) {
	e.t.Helper()
	key := mustKey(e.t)
	out, _, err := e.ra.Enroll(e.ctx, ra.EnrollRequest{JoinToken: e.joinToken(name), CSR: csrFor(e.t, key, name)})
	if err != nil {
		e.t.Fatalf("Enroll %s: %v", name, err)
	}
	return []*x509.Certificate{parseCert(e.t, out.CertPEM)}, key
}

func (e *env) agentCerts(machine string) (issued []*identity.Certificate) {
	for _, st := range []identity.CertStatus{identity.StatusIssued, identity.StatusRevoked} {
		for _, c := range e.certs(st) {
			if c.Labels[ra.AgentLabel] == machine {
				issued = append(issued, c)
			}
		}
	}
	return issued
}

func wantKind(t *testing.T, what string, err error, k fail.Kind, contains string) {
	t.Helper()
	if err == nil || fail.KindOf(err) != k || !strings.Contains(err.Error(), contains) {
		t.Fatalf("%s: got %v (kind %v), want %v containing %q", what, err, fail.KindOf(err), k, contains)
	}
}

func TestJoinTokenCreateRefusals(t *testing.T) {
	e := newEnv(t)
	_, operOther := e.token(identity.RoleOperator, "other")
	_, auditor := e.token(identity.RoleAuditor)
	for _, c := range []struct {
		name   string
		caller ra.Caller
		req    ra.JoinTokenRequest
		kind   fail.Kind
	}{
		{"no names", ra.Caller{}, ra.JoinTokenRequest{Profile: "web"}, fail.Malformed},
		{"hostile name", ra.Caller{}, ra.JoinTokenRequest{Profile: "web", Names: []string{"a.test\n\x00"}}, fail.Malformed},
		{"uri", ra.Caller{}, ra.JoinTokenRequest{Profile: "web", Names: []string{"spiffe://x/y"}}, fail.Malformed},
		{"ttl too long", ra.Caller{}, ra.JoinTokenRequest{Profile: "web", Names: []string{"a.test"}, TTL: 30 * 24 * time.Hour}, fail.Malformed},
		{"unknown profile", ra.Caller{}, ra.JoinTokenRequest{Profile: "nope", Names: []string{"a.test"}}, fail.NotFound},
		{"operator of another profile", ra.Caller{Token: operOther}, ra.JoinTokenRequest{Profile: "web", Names: []string{"a.test"}}, fail.Forbidden},
		{"auditor", ra.Caller{Token: auditor}, ra.JoinTokenRequest{Profile: "web", Names: []string{"a.test"}}, fail.Forbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			seq := e.head()
			_, _, err := e.ra.CreateJoinToken(e.ctx, c.caller, c.req)
			if fail.KindOf(err) != c.kind {
				t.Fatalf("got %v, want kind %v", err, c.kind)
			}
			if evs := e.eventsAfter(seq); len(evs) != 1 || evs[0].Result != "refused" {
				t.Fatalf("refusal not audited: %+v", evs)
			}
		})
	}
	ts, _ := e.st.ListJoinTokens(e.ctx)
	if len(ts) != 0 {
		t.Fatalf("%d join tokens stored by refused requests", len(ts))
	}
}

// TestEnrollRaceOneToken: of many enrolments racing with one token, one
// certificate is issued; the others are refused and none is issued.
func TestEnrollRaceOneToken(t *testing.T) {
	e := newEnv(t)
	tok := e.joinToken("race.test")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, _, errs[i] = e.ra.Enroll(e.ctx, ra.EnrollRequest{JoinToken: tok, CSR: csr(t, "race.test")})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if fail.KindOf(err) != fail.Unauthorized {
			t.Errorf("losing enrolment: %v", err)
		}
	}
	if got := len(e.agentCerts("race.test")); ok != 1 || got != 1 {
		t.Fatalf("%d enrolments succeeded, %d certificates issued; want 1 and 1", ok, got)
	}
	e.verifyChain()
}

func TestRenewRules(t *testing.T) {
	e := newEnv(t)
	peer, key := e.enroll("m1.test")
	other, _ := e.enroll("m2.test")

	// A plain renewal with a new key.
	out, err := e.ra.Renew(e.ctx, peer, csr(t, "m1.test"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := e.st.GetMachine(e.ctx, "m1.test")
	if m.CurrentSerial != out.Record.Serial {
		t.Fatalf("machine current serial %s, want %s", m.CurrentSerial, out.Record.Serial)
	}
	// The previous, still valid certificate may renew too (an answer lost
	// in transit), again and again while its answers are lost.
	for i := range 2 {
		if _, err := e.ra.Renew(e.ctx, peer, csr(t, "m1.test")); err != nil {
			t.Fatalf("renewal %d with the previous certificate: %v", i, err)
		}
	}
	_ = key
	// Once the agent has renewed with a newer certificate, the older one
	// authenticates nothing, though it is still valid.
	m, _ = e.st.GetMachine(e.ctx, "m1.test")
	current, err := e.st.GetCertificate(e.ctx, m.CurrentSerial)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := x509.ParseCertificate(current.DER)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := e.ra.Renew(e.ctx, []*x509.Certificate{cur}, csr(t, "m1.test"))
	if err != nil {
		t.Fatalf("renewal with the current certificate: %v", err)
	}
	before := len(e.agentCerts("m1.test"))
	_, err = e.ra.Renew(e.ctx, peer, csr(t, "m1.test"))
	wantKind(t, "superseded certificate", err, fail.Unauthorized, "superseded")
	if got := len(e.agentCerts("m1.test")); got != before {
		t.Errorf("a refused renewal changed the certificates: %d -> %d", before, got)
	}
	if m, _ = e.st.GetMachine(e.ctx, "m1.test"); m.CurrentSerial != newer.Record.Serial {
		t.Errorf("a refused renewal moved the machine to %s", m.CurrentSerial)
	}

	// Names outside the binding, another machine's names.
	_, err = e.ra.Renew(e.ctx, other, csr(t, "m1.test"))
	wantKind(t, "another machine's names", err, fail.Forbidden, "not bound")

	// A certificate not issued through the agent authenticates nothing, even
	// with the agent label set by whoever issued it.
	plain := []*x509.Certificate{parseCert(t, e.issue("m1.test").CertPEM)}
	_, err = e.ra.Renew(e.ctx, plain, csr(t, "m1.test"))
	wantKind(t, "non-agent certificate", err, fail.Unauthorized, "not issued to an agent")
	labelled, err := e.ra.Issue(e.ctx, ra.Caller{}, ra.IssueRequest{Profile: "web", CSR: csr(t, "m1.test"), Labels: map[string]string{ra.AgentLabel: "m1.test"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.ra.Renew(e.ctx, []*x509.Certificate{parseCert(t, labelled.CertPEM)}, csr(t, "m1.test"))
	wantKind(t, "labelled non-agent certificate", err, fail.Unauthorized, "not issued to an agent")

	// A forged certificate with a real agent certificate's serial and names.
	fkey := mustKey(t)
	tmpl := &x509.Certificate{SerialNumber: peer[0].SerialNumber, Subject: peer[0].Subject, DNSNames: peer[0].DNSNames,
		NotBefore: peer[0].NotBefore, NotAfter: peer[0].NotAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, fkey.Public(), fkey)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := x509.ParseCertificate(der)
	_, err = e.ra.Renew(e.ctx, []*x509.Certificate{forged}, csr(t, "m1.test"))
	wantKind(t, "forged certificate", err, fail.Unauthorized, "not issued by this CA")
	if _, err := e.ra.AgentStatusOf(e.ctx, []*x509.Certificate{forged}); fail.KindOf(err) != fail.Unauthorized {
		t.Fatalf("status with a forged certificate: %v", err)
	}

	// No certificate.
	_, err = e.ra.Renew(e.ctx, nil, csr(t, "m1.test"))
	wantKind(t, "no certificate", err, fail.Unauthorized, "client certificate is required")

	// Expired: refused, with the way out in the message.
	e.clock.advance(800 * time.Hour)
	_, err = e.ra.Renew(e.ctx, other, csr(t, "m2.test"))
	wantKind(t, "expired certificate", err, fail.Unauthorized, "expired")
	e.clock.advance(-800 * time.Hour)
}

func TestRekeyAfterRevocation(t *testing.T) {
	e := newEnv(t)
	peer, key := e.enroll("r.test")
	serial := identity.SerialFromBig(peer[0].SerialNumber)
	if _, err := e.ra.Revoke(e.ctx, ra.Caller{}, serial, identity.ReasonUnspecified); err != nil {
		t.Fatal(err)
	}
	st, err := e.ra.AgentStatusOf(e.ctx, peer)
	if err != nil || st.CertStatus != "revoked" || !st.RekeyAllowed || st.MachineState != store.MachineActive {
		t.Fatalf("status after revocation: %+v %v", st, err)
	}
	// The same key may not come back.
	_, err = e.ra.Renew(e.ctx, peer, csrFor(t, key, "r.test"))
	wantKind(t, "re-key with the revoked key", err, fail.Forbidden, "new key")
	out, err := e.ra.Renew(e.ctx, peer, csr(t, "r.test"))
	if err != nil {
		t.Fatalf("re-key: %v", err)
	}
	// Once replaced, and the replacement seen in use (the agent's status
	// check), the revoked certificate authenticates nothing.
	next := []*x509.Certificate{parseCert(t, out.CertPEM)}
	if _, err := e.ra.AgentStatusOf(e.ctx, next); err != nil {
		t.Fatal(err)
	}
	_, err = e.ra.Renew(e.ctx, peer, csr(t, "r.test"))
	wantKind(t, "second re-key", err, fail.Unauthorized, "revoked")

	// A key-compromise revocation cannot re-key.
	if _, err := e.ra.Revoke(e.ctx, ra.Caller{}, out.Record.Serial, identity.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.ra.AgentStatusOf(e.ctx, next); st.RekeyAllowed {
		t.Fatal("key compromise allows a re-key")
	}
	_, err = e.ra.Renew(e.ctx, next, csr(t, "r.test"))
	wantKind(t, "re-key after key compromise", err, fail.Unauthorized, "revoked")
}

func TestDisableMachine(t *testing.T) {
	e := newEnv(t)
	peer, _ := e.enroll("d.test")
	if _, err := e.ra.Renew(e.ctx, peer, csr(t, "d.test")); err != nil {
		t.Fatal(err)
	}
	_, oper := e.token(identity.RoleOperator, "other")
	_, _, err := e.ra.DisableMachine(e.ctx, ra.Caller{Token: oper}, "d.test")
	wantKind(t, "operator of another profile", err, fail.Forbidden, "profile")
	m, revoked, err := e.ra.DisableMachine(e.ctx, ra.Caller{}, "d.test")
	if err != nil || m.State != store.MachineDisabled || len(revoked) != 2 {
		t.Fatalf("disable: %+v %v %v", m, revoked, err)
	}
	for _, c := range e.agentCerts("d.test") {
		if c.Status != identity.StatusRevoked || c.RevocationReason != identity.ReasonCessationOfOperation {
			t.Errorf("certificate %s is %s (%s) after disable", c.Serial, c.Status, c.RevocationReason)
		}
	}
	st, err := e.ra.AgentStatusOf(e.ctx, peer)
	if err != nil || st.MachineState != store.MachineDisabled || st.RekeyAllowed {
		t.Fatalf("status: %+v %v", st, err)
	}
	_, err = e.ra.Renew(e.ctx, peer, csr(t, "d.test"))
	wantKind(t, "renewal of a disabled machine", err, fail.Forbidden, "disabled")
	_, _, err = e.ra.DisableMachine(e.ctx, ra.Caller{}, "nope.test")
	wantKind(t, "unknown machine", err, fail.NotFound, "not found")
	e.verifyChain()
}

// raceRenew runs n renewals with the same peer certificate at once and
// returns their results.
func (e *env) raceRenew(peer []*x509.Certificate, name string, n int) ([]*ra.Issued, []error) {
	csrs := make([][]byte, n)
	for i := range csrs {
		csrs[i] = csr(e.t, name)
	}
	outs, errs := make([]*ra.Issued, n), make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			outs[i], errs[i] = e.ra.Renew(e.ctx, peer, csrs[i])
		})
	}
	close(start)
	wg.Wait()
	return outs, errs
}

// TestRekeyRace: of many re-key requests racing with one revoked
// certificate, exactly one is issued; the others are refused and audited.
func TestRekeyRace(t *testing.T) {
	e := newEnv(t)
	peer, _ := e.enroll("rk.test")
	serial := identity.SerialFromBig(peer[0].SerialNumber)
	if _, err := e.ra.Revoke(e.ctx, ra.Caller{}, serial, identity.ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	seq := e.head()
	const n = 8
	outs, errs := e.raceRenew(peer, "rk.test", n)
	var won *ra.Issued
	for i, err := range errs {
		switch {
		case err == nil && won == nil:
			won = outs[i]
		case err == nil:
			t.Errorf("a second re-key with revoked certificate %s succeeded: %s", serial, outs[i].Record.Serial)
		case fail.KindOf(err) != fail.Conflict && fail.KindOf(err) != fail.Unauthorized:
			t.Errorf("losing re-key: %v (kind %v)", err, fail.KindOf(err))
		}
	}
	if won == nil {
		t.Fatalf("no re-key succeeded: %v", errs)
	}
	if got := len(e.agentCerts("rk.test")); got != 2 {
		t.Fatalf("%d certificates issued or revoked for the machine, want 2 (the revoked one and one replacement)", got)
	}
	if m, _ := e.st.GetMachine(e.ctx, "rk.test"); m.CurrentSerial != won.Record.Serial {
		t.Fatalf("machine current serial %s, want the winner's %s", m.CurrentSerial, won.Record.Serial)
	}
	refused := 0
	for _, ev := range e.eventsAfter(seq) {
		if ev.Action == "agent.renew" && ev.Result == "refused" {
			refused++
		}
	}
	if refused != n-1 {
		t.Fatalf("%d refused re-keys audited, want %d", refused, n-1)
	}
	e.verifyChain()
}

// TestRenewRace: renewals racing with one certificate never both replace
// the same current certificate: every successful renewal's "replaced"
// serial is distinct, so the machine's certificates form one line.
func TestRenewRace(t *testing.T) {
	e := newEnv(t)
	peer, _ := e.enroll("rn.test")
	first := identity.SerialFromBig(peer[0].SerialNumber)
	seq := e.head()
	const n = 8
	outs, errs := e.raceRenew(peer, "rn.test", n)
	issued := map[identity.Serial]bool{}
	for i, err := range errs {
		if err == nil {
			issued[outs[i].Record.Serial] = true
		} else if fail.KindOf(err) != fail.Conflict {
			t.Errorf("losing renewal: %v (kind %v)", err, fail.KindOf(err))
		}
	}
	replaced := map[identity.Serial]int{}
	refused := 0
	for _, ev := range e.eventsAfter(seq) {
		if ev.Action != "agent.renew" {
			continue
		}
		if ev.Result != "success" {
			refused++
			continue
		}
		var d struct {
			Replaced identity.Serial `json:"replaced"`
		}
		if err := json.Unmarshal([]byte(ev.Detail), &d); err != nil || d.Replaced == "" {
			t.Fatalf("renewal audit event without the replaced serial: %q %v", ev.Detail, err)
		}
		replaced[d.Replaced]++
		if d.Replaced != first && !issued[d.Replaced] {
			t.Errorf("a renewal replaced %s, neither the first certificate nor a renewal's", d.Replaced)
		}
	}
	for s, k := range replaced {
		if k > 1 {
			t.Errorf("%d renewals replaced the same current certificate %s", k, s)
		}
	}
	if len(issued) == 0 || refused != n-len(issued) {
		t.Fatalf("%d renewals succeeded, %d refusals audited, of %d", len(issued), refused, n)
	}
	if got := len(e.agentCerts("rn.test")); got != 1+len(issued) {
		t.Fatalf("%d certificates for the machine, want %d", got, 1+len(issued))
	}
	e.verifyChain()
}

// TestRenewLostAnswerWindow: the certificate that authenticated the latest
// renewal may renew again only until the agent is seen using the new one,
// never when the new one was revoked for key compromise; a re-key stays
// exactly one.
func TestRenewLostAnswerWindow(t *testing.T) {
	e := newEnv(t)
	chainOf := func(out *ra.Issued) []*x509.Certificate { return []*x509.Certificate{parseCert(t, out.CertPEM)} }
	c1, _ := e.enroll("w.test")
	out, err := e.ra.Renew(e.ctx, c1, csr(t, "w.test"))
	if err != nil {
		t.Fatal(err)
	}
	c2 := chainOf(out)
	// Before the agent uses c2, c1 is the lost-answer case: it may renew,
	// and the status says so.
	st, err := e.ra.AgentStatusOf(e.ctx, c1)
	if err != nil || !st.RenewAllowed || st.CurrentSerial == st.Serial {
		t.Fatalf("status of the previous certificate before the new one is used: %+v, %v", st, err)
	}
	// The agent checks its status with its new certificate: c1 is done.
	if st, err = e.ra.AgentStatusOf(e.ctx, c2); err != nil || !st.RenewAllowed || st.CurrentSerial != st.Serial {
		t.Fatalf("status of the current certificate: %+v, %v", st, err)
	}
	if st, err = e.ra.AgentStatusOf(e.ctx, c1); err != nil || st.RenewAllowed {
		t.Fatalf("status of a superseded certificate: %+v, %v", st, err)
	}
	if m, _ := e.st.GetMachine(e.ctx, "w.test"); m.RenewedBy != "" {
		t.Fatalf("RenewedBy %s after the agent used its current certificate", m.RenewedBy)
	}
	_, err = e.ra.Renew(e.ctx, c1, csr(t, "w.test"))
	wantKind(t, "the previous certificate after the new one was used", err, fail.Unauthorized, "superseded")

	// The next certificate is revoked for key compromise before the agent
	// got it: the one before may not renew around that.
	out, err = e.ra.Renew(e.ctx, c2, csr(t, "w.test"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ra.Revoke(e.ctx, ra.Caller{}, out.Record.Serial, identity.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	_, err = e.ra.Renew(e.ctx, c2, csr(t, "w.test"))
	wantKind(t, "renewal around a compromised current certificate", err, fail.Unauthorized, "keyCompromise")

	// A re-key is exactly one, even if its answer is lost: the revoked
	// certificate never mints a second replacement (the trust model).
	d1, _ := e.enroll("rk.test")
	if _, err := e.ra.Revoke(e.ctx, ra.Caller{}, identity.SerialFromBig(d1[0].SerialNumber), identity.ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ra.Renew(e.ctx, d1, csr(t, "rk.test")); err != nil {
		t.Fatalf("re-key with the revoked certificate: %v", err)
	}
	_, err = e.ra.Renew(e.ctx, d1, csr(t, "rk.test"))
	wantKind(t, "a second re-key with the same revoked certificate", err, fail.Unauthorized, "revoked")
}
