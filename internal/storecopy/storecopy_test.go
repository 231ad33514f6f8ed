package storecopy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
	"github.com/sigil-pki/sigil/internal/storecopy"
)

type opener func(t *testing.T) (store.Store, string)

func openSQLite(t *testing.T) (store.Store, string) {
	t.Helper()
	db := "sqlite:" + filepath.Join(t.TempDir(), "sigil.db")
	return openDB(t, db), db
}

func openPostgres(t *testing.T) (store.Store, string) {
	t.Helper()
	db := pgtest.FreshDatabase(t)
	return openDB(t, db), db
}

func openDB(t *testing.T, db string) store.Store {
	t.Helper()
	s, err := storecopy.Open(t.Context(), db, false)
	if err != nil {
		t.Fatalf("Open(%s): %v", db, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var base = time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.UTC)

// populate fills s with some of everything, through the ordinary Tx methods.
func populate(t *testing.T, s store.Store, events int) {
	t.Helper()
	ctx := t.Context()
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, i := range []*store.Issuer{
			{ID: "root", CertDER: []byte{0x30, 1, 2, 3}, KeyRef: "root.key", CreatedAt: base},
			{ID: "int-2029", CertDER: []byte{0x30, 4}, KeyRef: "int-2029.key", ParentID: "root", IsDefault: true, CreatedAt: base.Add(time.Hour)},
			{ID: "int-2030", CertDER: []byte{0x30, 5}, KeyRef: "int-2030.key", ParentID: "root", IsDefault: true, CreatedAt: base.Add(2 * time.Hour)},
		} {
			if err := tx.PutIssuer(ctx, i); err != nil {
				return err
			}
		}
		for _, p := range []*store.Profile{
			{Name: "web", Doc: []byte(`{"name":"web","ttl":"720h"}`), UpdatedAt: base},
			{Name: "mtls", Doc: []byte(`{"name":"mtls","ttl":"24h"}`), UpdatedAt: base.Add(time.Minute)},
		} {
			if err := tx.PutProfile(ctx, p); err != nil {
				return err
			}
		}
		for i, k := range []*identity.Token{
			{ID: "tok-admin", Name: "bootstrap", Role: identity.RoleAdmin, SecretHash: []byte{1, 2, 3}, CreatedBy: "server", CreatedAt: base},
			{ID: "tok-ops", Name: "ops", Role: identity.RoleOperator, Profiles: []string{"web", "mtls"}, SecretHash: []byte{4, 5}, CreatedBy: "tok-admin", CreatedAt: base.Add(time.Second), ExpiresAt: base.Add(90 * 24 * time.Hour)},
			{ID: "tok-old", Name: "old", Role: identity.RoleAuditor, SecretHash: []byte{6}, CreatedBy: "tok-admin", CreatedAt: base.Add(2 * time.Second)},
		} {
			if err := tx.InsertToken(ctx, k); err != nil {
				return err
			}
			if i == 2 {
				if err := tx.RevokeToken(ctx, k.ID, base.Add(time.Hour)); err != nil {
					return err
				}
			}
		}
		for i := range 12 {
			serial := identity.Serial(fmt.Sprintf("%x", 0x1000+i))
			created := base.Add(time.Duration(i) * time.Minute)
			c := &identity.Certificate{
				Serial: serial, IssuerID: "int-2030", Profile: "web", Status: identity.StatusPlanned,
				Requester: "token:tok-ops", Owner: "team-a", Labels: map[string]string{"env": "prod", "n": fmt.Sprint(i)},
				CommonName: fmt.Sprintf("svc%d.example.com", i), DNSNames: []string{fmt.Sprintf("svc%d.example.com", i)},
				KeyType: identity.KeyECDSAP256, SPKIFingerprint: fmt.Sprintf("%064x", i),
				NotBefore: created, NotAfter: created.Add(720 * time.Hour), CreatedAt: created,
				TBS: []byte{0x30, byte(i), 0xff},
			}
			if i%4 == 1 {
				c.IPAddresses, c.URIs, c.Emails = []string{"192.0.2.1"}, []string{"spiffe://example/x"}, []string{"a@example.com"}
			}
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
			if i%4 == 0 {
				continue // stays planned
			}
			if err := tx.MarkIssued(ctx, serial, []byte{0x30, 0x82, byte(i)}, fmt.Sprintf("%064x", 0xf00+i), created.Add(time.Second)); err != nil {
				return err
			}
			if i%4 == 3 {
				if err := tx.Revoke(ctx, serial, identity.ReasonKeyCompromise, created.Add(time.Hour)); err != nil {
					return err
				}
			}
		}
		for _, c := range []*store.CRL{
			{IssuerID: "int-2029", Number: 1, ThisUpdate: base, NextUpdate: base.Add(24 * time.Hour), DER: []byte{0x30, 9}},
			{IssuerID: "int-2030", Number: 1, ThisUpdate: base, NextUpdate: base.Add(24 * time.Hour), DER: []byte{0x30, 10}},
			{IssuerID: "int-2030", Number: 2, ThisUpdate: base.Add(time.Hour), NextUpdate: base.Add(25 * time.Hour), DER: []byte{0x30, 11}},
		} {
			if err := tx.InsertCRL(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("populate: %v", err)
	}
	for start := 0; start < events; start += 70 {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			for i := start; i < min(start+70, events); i++ {
				e := &audit.Event{Time: base.Add(time.Duration(i) * time.Second), Actor: "token:tok-ops", Action: "cert.issue",
					Object: fmt.Sprintf("serial:%x", i), Result: audit.ResultSuccess, Detail: fmt.Sprintf("event %d ü", i)}
				if i%17 == 0 {
					e.Result, e.Detail, e.Object = audit.ResultRefused, "", ""
				}
				if err := tx.AppendAudit(ctx, e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("populate audit: %v", err)
		}
	}
}

// snapshot is everything a store holds, normalised so that equivalent
// representations (nil and empty) compare equal.
type snapshot struct {
	Issuers  []*store.Issuer
	Profiles []*store.Profile
	Tokens   []*identity.Token
	Certs    []*identity.Certificate
	CRLs     []*store.CRL
	Events   []*audit.Event
	HeadSeq  int64
	HeadHash string
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func takeSnapshot(t *testing.T, s store.Reader) snapshot {
	t.Helper()
	ctx := t.Context()
	var snap snapshot
	var err error
	if snap.Issuers, err = s.ListIssuers(ctx); err != nil {
		t.Fatal(err)
	}
	if snap.Profiles, err = s.ListProfiles(ctx); err != nil {
		t.Fatal(err)
	}
	if snap.Tokens, err = s.ListTokens(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range snap.Tokens {
		k.Profiles, k.SecretHash = nilIfEmpty(k.Profiles), nilIfEmpty(k.SecretHash)
	}
	if snap.Certs, err = s.ListCertificates(ctx, store.CertFilter{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range snap.Certs {
		if len(c.Labels) == 0 {
			c.Labels = nil
		}
		c.DNSNames, c.IPAddresses, c.URIs, c.Emails = nilIfEmpty(c.DNSNames), nilIfEmpty(c.IPAddresses), nilIfEmpty(c.URIs), nilIfEmpty(c.Emails)
		c.TBS, c.DER = nilIfEmpty(c.TBS), nilIfEmpty(c.DER)
	}
	if snap.CRLs, err = s.ListCRLs(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.WalkAudit(ctx, func(e *audit.Event) error { snap.Events = append(snap.Events, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if snap.HeadSeq, snap.HeadHash, err = s.AuditHead(ctx); err != nil {
		t.Fatal(err)
	}
	return snap
}

func compare(t *testing.T, got, want snapshot) {
	t.Helper()
	compareFields(t, got, want)
}

// compareFields compares two structs field by field, naming each that differs.
func compareFields[T any](t *testing.T, got, want T) {
	t.Helper()
	v, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range v.NumField() {
		if g, x := v.Field(i).Interface(), w.Field(i).Interface(); !reflect.DeepEqual(g, x) {
			t.Errorf("%s differ:\n got %s\nwant %s", v.Type().Field(i).Name, dump(g), dump(x))
		}
	}
}

func dump(v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return fmt.Sprint(v)
	}
	var b strings.Builder
	for i := range rv.Len() {
		fmt.Fprintf(&b, "\n  %+v", rv.Index(i).Elem().Interface())
	}
	return b.String()
}

func TestCopy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to opener
	}{
		{"sqlite-to-sqlite", openSQLite, openSQLite},
		{"sqlite-to-postgres", openSQLite, openPostgres},
		{"postgres-to-sqlite", openPostgres, openSQLite},
		{"postgres-to-postgres", openPostgres, openPostgres},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			from, _ := tc.from(t)
			to, _ := tc.to(t)
			populate(t, from, 2*storecopy.BatchSize+200)
			more := populateMore(t, from, storecopy.BatchSize+300)
			var steps []string
			r, err := storecopy.Copy(t.Context(), from, to, func(s string) { steps = append(steps, s) })
			if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			want := storecopy.Counts{Issuers: 3, Profiles: 2, Tokens: 3, Certificates: 12, CRLs: 3, AuditEvents: 2*storecopy.BatchSize + 200, More: more}
			if r.Source != want || r.Destination != want {
				t.Errorf("report counts: source %+v destination %+v, want %+v", r.Source, r.Destination, want)
			}
			src := takeSnapshot(t, from)
			if r.HeadSeq != src.HeadSeq || r.HeadHash != src.HeadHash {
				t.Errorf("report head %d %s, source head %d %s", r.HeadSeq, r.HeadHash, src.HeadSeq, src.HeadHash)
			}
			compare(t, takeSnapshot(t, to), src)
			checkMoreCopied(t, takeMoreSnapshot(t, to), takeMoreSnapshot(t, from))
			if len(steps) == 0 {
				t.Error("no progress reported")
			}

			// The copy is a working store: the chain goes on, a revoked
			// certificate stays on the CRL list, the default issuer is kept.
			if err := to.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
				return tx.AppendAudit(ctx, &audit.Event{Time: time.Now(), Actor: "test", Action: "x.after", Result: audit.ResultSuccess})
			}); err != nil {
				t.Fatalf("append after copy: %v", err)
			}
			if seq, _, _ := to.AuditHead(t.Context()); seq != src.HeadSeq+1 {
				t.Errorf("head after append = %d, want %d", seq, src.HeadSeq+1)
			}
			revoked, err := to.RevokedCertificates(t.Context(), "int-2030", base)
			if err != nil || len(revoked) != 3 {
				t.Errorf("RevokedCertificates after copy = %v, %v", revoked, err)
			}
			def, err := to.GetIssuer(t.Context(), "int-2030")
			if err != nil || !def.IsDefault {
				t.Errorf("default issuer after copy = %+v, %v", def, err)
			}
		})
	}
}

func TestCopyRefusesNonEmptyDestination(t *testing.T) {
	from, _ := openSQLite(t)
	populate(t, from, 5)
	for name, fill := range map[string]func(ctx context.Context, tx store.Tx) error{
		"issuer": func(ctx context.Context, tx store.Tx) error { return tx.PutIssuer(ctx, &store.Issuer{ID: "x"}) },
		"token": func(ctx context.Context, tx store.Tx) error {
			return tx.InsertToken(ctx, &identity.Token{ID: "t", Role: identity.RoleAdmin})
		},
		"audit": func(ctx context.Context, tx store.Tx) error {
			return tx.AppendAudit(ctx, &audit.Event{Actor: "a", Action: "b", Result: audit.ResultSuccess})
		},
		"certificate": func(ctx context.Context, tx store.Tx) error {
			return tx.InsertCertificate(ctx, &identity.Certificate{Serial: "1", Status: identity.StatusPlanned, KeyType: identity.KeyECDSAP256})
		},
	} {
		t.Run(name, func(t *testing.T) {
			to, _ := openSQLite(t)
			if err := to.Update(t.Context(), fill); err != nil {
				t.Fatal(err)
			}
			before := takeSnapshot(t, to)
			_, err := storecopy.Copy(t.Context(), from, to, nil)
			if !errors.Is(err, storecopy.ErrNotEmpty) {
				t.Fatalf("Copy into a store with a %s: %v, want ErrNotEmpty", name, err)
			}
			compare(t, takeSnapshot(t, to), before)
		})
	}
}

func TestCopyTamperedSourceChain(t *testing.T) {
	for name, tamper := range map[string]string{
		"edited event":  "UPDATE audit_events SET detail = 'nothing to see' WHERE seq = 50",
		"removed event": "DELETE FROM audit_events WHERE seq = 120",
		"removed head":  "DELETE FROM audit_events WHERE seq = 200",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sigil.db")
			from := openDB(t, "sqlite:"+path)
			populate(t, from, 200)
			raw, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := raw.Exec(tamper); err != nil {
				t.Fatal(err)
			}
			raw.Close()
			to, _ := openSQLite(t)
			_, err = storecopy.Copy(t.Context(), from, to, nil)
			if err == nil || !strings.Contains(err.Error(), "source audit chain does not verify") {
				t.Fatalf("Copy of a tampered chain: %v, want a verification failure", err)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.db")
	if _, err := storecopy.Open(t.Context(), "sqlite:"+missing, true); err == nil {
		t.Fatal("Open of a missing source succeeded")
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("Open of a missing source created it: %v", err)
	}
	for _, db := range []string{"mysql://x", "sqlite:", "./sigil.db"} {
		if _, err := storecopy.Open(t.Context(), db, false); err == nil {
			t.Errorf("Open(%q) succeeded", db)
		}
	}
	if _, err := storecopy.Open(t.Context(), "mysql://u:secret@h/db", false); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("Open error leaks the password: %v", err)
	}
}
