package ra_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

// TestRoles: what each role may do through the RA, and that every refusal
// is audited as refused.
func TestRoles(t *testing.T) {
	e := newEnv(t)
	doc := mustDoc(t, testProfiles)

	// Each action returns the function that attempts it, after any setup
	// (which may itself append audit events) is done.
	type action struct {
		name  string // the audited action
		setup func(c ra.Caller) func() error
	}
	actions := map[string]action{
		"Issue": {"cert.issue", func(c ra.Caller) func() error {
			req := ra.IssueRequest{Profile: "web", CSR: csr(t, "role.test")}
			return func() error { _, err := e.ra.Issue(e.ctx, c, req); return err }
		}},
		"Revoke": {"cert.revoke", func(c ra.Caller) func() error {
			s := e.issue("victim.test").Record.Serial
			return func() error { _, err := e.ra.Revoke(e.ctx, c, s, identity.ReasonSuperseded); return err }
		}},
		"ApplyProfiles": {"profile.write", func(c ra.Caller) func() error {
			return func() error { _, err := e.ra.ApplyProfiles(e.ctx, c, doc); return err }
		}},
		"CreateToken": {"token.write", func(c ra.Caller) func() error {
			return func() error {
				_, _, err := e.ra.CreateToken(e.ctx, c, ra.TokenRequest{Role: identity.RoleAuditor})
				return err
			}
		}},
		"Tokens": {"token.read", func(c ra.Caller) func() error {
			return func() error { _, err := e.ra.Tokens(e.ctx, c); return err }
		}},
		"AuditEvents": {"audit.read", func(c ra.Caller) func() error {
			return func() error { _, err := e.ra.AuditEvents(e.ctx, c, store.AuditFilter{}); return err }
		}},
		"VerifyAudit": {"audit.read", func(c ra.Caller) func() error {
			return func() error { _, err := e.ra.VerifyAudit(e.ctx, c); return err }
		}},
		"Certificates": {"cert.read", func(c ra.Caller) func() error {
			return func() error { _, err := e.ra.Certificates(e.ctx, c, store.CertFilter{}); return err }
		}},
	}
	allowed := map[identity.Role][]string{
		identity.RoleAdmin:    {"Issue", "Revoke", "ApplyProfiles", "CreateToken", "Tokens", "AuditEvents", "VerifyAudit", "Certificates"},
		identity.RoleOperator: {"Issue", "Revoke", "Certificates"},
		identity.RoleAuditor:  {"Tokens", "AuditEvents", "VerifyAudit", "Certificates"},
	}
	for _, role := range []identity.Role{identity.RoleAdmin, identity.RoleOperator, identity.RoleAuditor} {
		_, tok := e.token(role)
		c := ra.Caller{Token: tok}
		ok := map[string]bool{}
		for _, a := range allowed[role] {
			ok[a] = true
		}
		for name, a := range actions {
			t.Run(string(role)+"/"+name, func(t *testing.T) {
				attempt := a.setup(c)
				head := e.head()
				err := attempt()
				if ok[name] {
					if err != nil {
						t.Fatalf("allowed action failed: %v", err)
					}
					return
				}
				if fail.KindOf(err) != fail.Forbidden {
					t.Fatalf("error = %v (kind %v), want Forbidden", err, fail.KindOf(err))
				}
				evs := e.eventsAfter(head)
				if len(evs) != 1 {
					t.Fatalf("refusal appended %d audit events, want 1: %+v", len(evs), evs)
				}
				if ev := evs[0]; ev.Result != audit.ResultRefused || ev.Actor != auth.Actor(tok) || ev.Action != a.name {
					t.Errorf("refusal audited as %+v; want %s refused for %s", ev, a.name, auth.Actor(tok))
				}
			})
		}
	}
	e.verifyChain()
}

// TestOperatorScope: a token scoped to "web" may not issue or revoke under
// another profile, and the refusal is audited.
func TestOperatorScope(t *testing.T) {
	e := newEnv(t)
	_, tok := e.token(identity.RoleOperator, "web")
	c := ra.Caller{Token: tok}

	if out := e.issueAs(c, "web", "scoped.test", 0); out.Record.Requester != auth.Actor(tok) {
		t.Errorf("requester = %q, want %q", out.Record.Requester, auth.Actor(tok))
	}
	otherCert := e.issueAs(ra.Caller{}, "other", "x.other.internal", 0)
	for _, tc := range []struct {
		name, action string
		do           func() error
	}{
		{"issue under other", "cert.issue", func() error {
			_, err := e.ra.Issue(e.ctx, c, ra.IssueRequest{Profile: "other", CSR: csr(t, "y.other.internal")})
			return err
		}},
		{"revoke under other", "cert.revoke", func() error {
			_, err := e.ra.Revoke(e.ctx, c, otherCert.Record.Serial, identity.ReasonSuperseded)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := e.head()
			if err := tc.do(); fail.KindOf(err) != fail.Forbidden {
				t.Fatalf("error = %v, want Forbidden", err)
			}
			evs := e.eventsAfter(head)
			if len(evs) != 1 || evs[0].Result != audit.ResultRefused || evs[0].Action != tc.action {
				t.Errorf("refusal audited as %+v", evs)
			}
		})
	}
	if got := len(e.certs(identity.StatusIssued)); got != 2 {
		t.Errorf("%d issued certificates, want 2", got)
	}

	// Reads are scoped too: the other profile's certificate is invisible.
	if _, err := e.ra.Certificate(e.ctx, c, otherCert.Record.Serial); fail.KindOf(err) != fail.NotFound {
		t.Errorf("show out-of-scope certificate: %v, want NotFound", err)
	}
	list, err := e.ra.Certificates(e.ctx, c, store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Profile != "web" {
		t.Errorf("scoped list = %d certificates (first %+v), want the web one only", len(list), list)
	}
	if all, _ := e.ra.Certificates(e.ctx, ra.Caller{}, store.CertFilter{}); len(all) < 2 {
		t.Errorf("unscoped list = %d certificates", len(all))
	}
	head := e.head()
	if _, err := e.ra.Certificates(e.ctx, c, store.CertFilter{Profile: "other"}); fail.KindOf(err) != fail.Forbidden {
		t.Errorf("list other profile: %v, want Forbidden", err)
	}
	if evs := e.eventsAfter(head); len(evs) != 1 || evs[0].Result != audit.ResultRefused {
		t.Errorf("refused list audited as %+v", evs)
	}
	if rec, _ := e.st.GetCertificate(e.ctx, otherCert.Record.Serial); rec.Status != identity.StatusIssued {
		t.Errorf("out-of-scope certificate is %s", rec.Status)
	}
}

// TestTokenLifetime: expired and revoked tokens no longer authenticate.
func TestTokenLifetime(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	plain, tok, err := e.ra.CreateToken(e.ctx, ra.Caller{}, ra.TokenRequest{Role: identity.RoleOperator, Name: "short", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	forever, ftok := e.token(identity.RoleAuditor)
	for _, c := range []struct {
		name  string
		plain string
		at    time.Time
		ok    bool
	}{
		{"fresh", plain, now, true},
		{"just before expiry", plain, tok.ExpiresAt.Add(-time.Second), true},
		{"at expiry", plain, tok.ExpiresAt, false},
		{"after expiry", plain, now.Add(2 * time.Hour), false},
		{"no expiry, years later", forever, now.Add(10 * 365 * 24 * time.Hour), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := auth.Authenticate(e.ctx, e.st, c.plain, c.at)
			if c.ok && (err != nil || got == nil) {
				t.Fatalf("Authenticate = %v, %v; want the token", got, err)
			}
			if !c.ok && (!errors.Is(err, auth.ErrBadToken) || got != nil) {
				t.Fatalf("Authenticate = %v, %v; want ErrBadToken", got, err)
			}
		})
	}

	if err := e.ra.RevokeToken(e.ctx, ra.Caller{}, ftok.ID); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if _, err := auth.Authenticate(e.ctx, e.st, forever, time.Now()); !errors.Is(err, auth.ErrBadToken) {
		t.Errorf("revoked token authenticates: %v", err)
	}
	if err := e.ra.RevokeToken(e.ctx, ra.Caller{}, "0123456789abcdef"); fail.KindOf(err) != fail.NotFound {
		t.Errorf("revoking an unknown token = %v, want NotFound", err)
	}
	for _, bad := range []ra.TokenRequest{
		{Role: "root"},
		{Role: identity.RoleOperator, TTL: -time.Hour},
		{Role: identity.RoleOperator, Name: string(bytes.Repeat([]byte("n"), 129))},
	} {
		if _, _, err := e.ra.CreateToken(e.ctx, ra.Caller{}, bad); fail.KindOf(err) != fail.Malformed {
			t.Errorf("CreateToken(%+v) = %v, want Malformed", bad, err)
		}
	}
}

// TestApplyProfiles: a document is applied whole or not at all, and an
// unchanged re-apply changes and audits nothing.
func TestApplyProfiles(t *testing.T) {
	e := newEnv(t)
	webBefore, err := e.st.GetProfile(e.ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	newWeb := policy.Profile{Name: "web", DNS: []string{"*.changed.test"}}
	for _, c := range []struct {
		name string
		doc  *policy.Document
	}{
		{"unknown issuer", &policy.Document{Profiles: []policy.Profile{newWeb, {Name: "alpha", DNS: []string{"*.a.test"}}, {Name: "beta", Issuer: "nope", DNS: []string{"*.b.test"}}}}},
		{"bad rule", &policy.Document{Profiles: []policy.Profile{{Name: "alpha", DNS: []string{"*.a.test"}}, newWeb, {Name: "beta", Rule: "request.nope +"}}}},
		{"bad pattern", &policy.Document{Profiles: []policy.Profile{newWeb, {Name: "beta", DNS: []string{"*"}}}}},
		{"empty", &policy.Document{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			head := e.head()
			changes, err := e.ra.ApplyProfiles(e.ctx, ra.Caller{}, c.doc)
			if fail.KindOf(err) != fail.Malformed || changes != nil {
				t.Fatalf("ApplyProfiles = %v, %v; want Malformed and no changes", changes, err)
			}
			for _, name := range []string{"alpha", "beta"} {
				if _, err := e.st.GetProfile(e.ctx, name); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("profile %q created by a rejected document", name)
				}
			}
			if p, _ := e.st.GetProfile(e.ctx, "web"); !bytes.Equal(p.Doc, webBefore.Doc) {
				t.Error("profile web changed by a rejected document")
			}
			if evs := e.eventsAfter(head); len(evs) != 1 || evs[0].Result != audit.ResultRefused || evs[0].Action != "profile.write" {
				t.Errorf("rejected document audited as %+v; want one refused profile.write", evs)
			}
		})
	}

	t.Run("unchanged", func(t *testing.T) {
		head := e.head()
		changes, err := e.ra.ApplyProfiles(e.ctx, ra.Caller{}, mustDoc(t, testProfiles))
		if err != nil {
			t.Fatal(err)
		}
		want := []ra.ProfileChange{{Name: "web", Action: "unchanged"}, {Name: "other", Action: "unchanged"}}
		if len(changes) != len(want) || changes[0] != want[0] || changes[1] != want[1] {
			t.Errorf("changes = %+v, want %+v", changes, want)
		}
		if h := e.head(); h != head {
			t.Errorf("unchanged re-apply wrote %d audit events", h-head)
		}
	})

	t.Run("created and updated", func(t *testing.T) {
		e.issue("cached.test") // loads web into the profile cache
		head := e.head()
		doc := &policy.Document{Profiles: []policy.Profile{newWeb, {Name: "alpha", DNS: []string{"*.a.test"}}}}
		changes, err := e.ra.ApplyProfiles(e.ctx, ra.Caller{}, doc)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 2 || changes[0] != (ra.ProfileChange{Name: "web", Action: "updated"}) || changes[1] != (ra.ProfileChange{Name: "alpha", Action: "created"}) {
			t.Errorf("changes = %+v", changes)
		}
		evs := e.eventsAfter(head)
		if len(evs) != 2 || evs[0].Action != "profile.apply" || evs[0].Object != "web" || evs[1].Object != "alpha" {
			t.Errorf("audit events = %+v; want profile.apply for web and alpha", evs)
		}
		// The profile cache sees the update at once: the old names are refused.
		if _, err := e.ra.Issue(e.ctx, ra.Caller{}, ra.IssueRequest{Profile: "web", CSR: csr(t, "old.test")}); fail.KindOf(err) != fail.Refused {
			t.Errorf("issuing under the replaced pattern = %v, want Refused", err)
		}
		e.issue("new.changed.test")
	})
	e.verifyChain()
}
