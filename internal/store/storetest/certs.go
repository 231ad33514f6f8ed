package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

var certTests = []test{
	{"Lifecycle", testCertLifecycle},
	{"MinimalFields", testCertMinimal},
	{"DuplicateSerial", testCertDuplicate},
	{"GetUnknown", testCertGetUnknown},
	{"MarkIssuedErrors", testMarkIssuedErrors},
	{"RevokeErrors", testRevokeErrors},
	{"ListFilters", testListCertificates},
	{"RevokedCertificates", testRevokedCertificates},
	{"Ping", func(t *testing.T, s store.Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}},
}

// testCertLifecycle walks planned → issued → revoked, checking every field.
func testCertLifecycle(t *testing.T, s store.Store) {
	want := newCert("7f3a9c01", base)
	insert(t, s, want)
	checkCert(t, get(t, s, want.Serial), want)

	der := []byte{0x30, 0x82, 0x02, 0x00, 0x00, 0x01, 0xfe}
	issued := base.Add(time.Second + 999)
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.MarkIssued(ctx, want.Serial, der, identity.Fingerprint(der), issued)
	})
	want.Status, want.DER, want.Fingerprint, want.IssuedAt = identity.StatusIssued, der, identity.Fingerprint(der), issued
	want.TBS = nil // the DER holds it
	checkCert(t, get(t, s, want.Serial), want)

	revoked := base.Add(time.Hour + 1234)
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.Revoke(ctx, want.Serial, identity.ReasonKeyCompromise, revoked)
	})
	want.Status, want.RevokedAt, want.RevocationReason = identity.StatusRevoked, revoked, identity.ReasonKeyCompromise
	checkCert(t, get(t, s, want.Serial), want)
}

func testCertMinimal(t *testing.T, s store.Store) {
	want := &identity.Certificate{
		Serial: "1", IssuerID: "i", Profile: "p", Status: identity.StatusPlanned,
		Requester: "r", KeyType: identity.KeyEd25519, SPKIFingerprint: "00",
		NotBefore: base, NotAfter: base.Add(time.Hour), CreatedAt: base,
		Labels: map[string]string{}, DNSNames: []string{},
	}
	insert(t, s, want)
	got := get(t, s, want.Serial)
	checkCert(t, got, want)
	if !got.IssuedAt.IsZero() || !got.RevokedAt.IsZero() || got.RevocationReason != 0 || len(got.DER) != 0 {
		t.Errorf("unset fields came back set: %+v", got)
	}
}

func testCertDuplicate(t *testing.T, s store.Store) {
	first := newCert("abc", base)
	insert(t, s, first)
	dup := newCert("abc", base.Add(time.Hour))
	dup.Profile = "other"
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		return tx.InsertCertificate(ctx, dup)
	})
	wantErr(t, "insert duplicate serial", err, store.ErrConflict)
	checkCert(t, get(t, s, "abc"), first)
}

func testCertGetUnknown(t *testing.T, s store.Store) {
	_, err := s.GetCertificate(t.Context(), "deadbeef")
	wantErr(t, "GetCertificate(unknown)", err, store.ErrNotFound)
}

func markIssued(ctx context.Context, tx store.Tx, serial identity.Serial, at time.Time) error {
	der := []byte("der of " + serial)
	return tx.MarkIssued(ctx, serial, der, identity.Fingerprint(der), at)
}

func revoke(ctx context.Context, tx store.Tx, serial identity.Serial, r identity.RevocationReason, at time.Time) error {
	return tx.Revoke(ctx, serial, r, at)
}

func testMarkIssuedErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	insert(t, s, newCert("a1", base), newCert("a2", base))
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return markIssued(ctx, tx, "ffff", base) })
	wantErr(t, "MarkIssued(unknown)", err, store.ErrNotFound)

	update(t, s, func(ctx context.Context, tx store.Tx) error { return markIssued(ctx, tx, "a1", base) })
	before := get(t, s, "a1")
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.MarkIssued(ctx, "a1", []byte{1, 2, 3}, "other", base.Add(time.Hour))
	})
	wantErr(t, "MarkIssued twice", err, store.ErrConflict)
	checkCert(t, get(t, s, "a1"), before)

	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := markIssued(ctx, tx, "a2", base); err != nil {
			return err
		}
		return revoke(ctx, tx, "a2", identity.ReasonSuperseded, base)
	})
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return markIssued(ctx, tx, "a2", base) })
	wantErr(t, "MarkIssued(revoked)", err, store.ErrConflict)
	if got := get(t, s, "a2"); got.Status != identity.StatusRevoked {
		t.Errorf("status after refused MarkIssued = %s, want revoked", got.Status)
	}
}

func testRevokeErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	insert(t, s, newCert("b1", base), newCert("b2", base))
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return revoke(ctx, tx, "ffff", identity.ReasonUnspecified, base)
	})
	wantErr(t, "Revoke(unknown)", err, store.ErrNotFound)

	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return revoke(ctx, tx, "b1", identity.ReasonUnspecified, base)
	})
	wantErr(t, "Revoke(planned)", err, store.ErrConflict)
	if got := get(t, s, "b1"); got.Status != identity.StatusPlanned || !got.RevokedAt.IsZero() {
		t.Errorf("planned certificate changed by refused Revoke: %+v", got)
	}

	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := markIssued(ctx, tx, "b2", base); err != nil {
			return err
		}
		return revoke(ctx, tx, "b2", identity.ReasonCessationOfOperation, base.Add(time.Minute))
	})
	before := get(t, s, "b2")
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return revoke(ctx, tx, "b2", identity.ReasonKeyCompromise, base.Add(time.Hour))
	})
	wantErr(t, "Revoke twice", err, store.ErrConflict)
	checkCert(t, get(t, s, "b2"), before) // first reason and time kept
}

// certFixture stores five certificates in varied states; see the table below.
func certFixture(t *testing.T, s store.Store) time.Time {
	now := base.UTC().Truncate(time.Microsecond)
	day := 24 * time.Hour
	mk := func(serial identity.Serial, issuer, profile string, notAfter time.Duration, created time.Duration) *identity.Certificate {
		c := newCert(serial, now.Add(created))
		c.IssuerID, c.Profile, c.NotAfter = issuer, profile, now.Add(notAfter)
		return c
	}
	insert(t, s,
		mk("1", "A", "web", 10*day, 1*time.Minute),  // issued
		mk("2", "A", "web", 20*day, 2*time.Minute),  // revoked
		mk("3", "B", "mtls", 30*day, 3*time.Minute), // planned
		mk("10", "A", "mtls", -day, 4*time.Minute),  // issued, expired
		mk("f", "B", "web", 5*day, 4*time.Minute),   // revoked; same CreatedAt as "10"
	)
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, sn := range []identity.Serial{"1", "2", "10", "f"} {
			if err := markIssued(ctx, tx, sn, now); err != nil {
				return err
			}
		}
		for _, sn := range []identity.Serial{"2", "f"} {
			if err := revoke(ctx, tx, sn, identity.ReasonSuperseded, now); err != nil {
				return err
			}
		}
		return nil
	})
	return now
}

func testListCertificates(t *testing.T, s store.Store) {
	now := certFixture(t, s)
	day := 24 * time.Hour
	// Default order: CreatedAt descending, then serial numerically ("f" < "10").
	all := []identity.Serial{"f", "10", "3", "2", "1"}
	for _, tc := range []struct {
		name string
		f    store.CertFilter
		want []identity.Serial
	}{
		{"all", store.CertFilter{}, all},
		{"status issued", store.CertFilter{Status: identity.StatusIssued}, []identity.Serial{"10", "1"}},
		{"status revoked", store.CertFilter{Status: identity.StatusRevoked}, []identity.Serial{"f", "2"}},
		{"status planned", store.CertFilter{Status: identity.StatusPlanned}, []identity.Serial{"3"}},
		{"profile", store.CertFilter{Profile: "mtls"}, []identity.Serial{"10", "3"}},
		{"issuer", store.CertFilter{IssuerID: "B"}, []identity.Serial{"f", "3"}},
		{"unknown issuer", store.CertFilter{IssuerID: "nope"}, nil},
		{"expiring before now", store.CertFilter{NotAfterBefore: now}, []identity.Serial{"10"}},
		{"valid after now", store.CertFilter{NotAfterAfter: now}, []identity.Serial{"f", "3", "2", "1"}},
		{"before is strict", store.CertFilter{NotAfterBefore: now.Add(10 * day)}, []identity.Serial{"f", "10"}},
		{"after is strict", store.CertFilter{NotAfterAfter: now.Add(20 * day)}, []identity.Serial{"3"}},
		{"before, sub-microsecond", store.CertFilter{NotAfterBefore: now.Add(10*day + time.Nanosecond)}, []identity.Serial{"f", "10", "1"}},
		{"after, sub-microsecond", store.CertFilter{NotAfterAfter: now.Add(20*day - time.Nanosecond)}, []identity.Serial{"3", "2"}},
		{"window", store.CertFilter{NotAfterAfter: now, NotAfterBefore: now.Add(15 * day)}, []identity.Serial{"f", "1"}},
		{"window in another zone", store.CertFilter{NotAfterAfter: now.In(time.FixedZone("W", -7*3600)),
			NotAfterBefore: now.Add(15 * day).In(time.FixedZone("E", 9*3600))}, []identity.Serial{"f", "1"}},
		{"combined", store.CertFilter{Status: identity.StatusIssued, IssuerID: "A", Profile: "web"}, []identity.Serial{"1"}},
		{"serials", store.CertFilter{Serials: []identity.Serial{"1", "10", "nope", "f"}}, []identity.Serial{"f", "10", "1"}},
		{"serials and status", store.CertFilter{Serials: []identity.Serial{"1", "2", "3"}, Status: identity.StatusRevoked}, []identity.Serial{"2"}},
		{"limit", store.CertFilter{Limit: 2}, all[:2]},
		{"limit above count", store.CertFilter{Limit: 50}, all},
		{"limit with filter", store.CertFilter{Profile: "web", Limit: 2}, []identity.Serial{"f", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListCertificates(t.Context(), tc.f)
			if err != nil {
				t.Fatalf("ListCertificates: %v", err)
			}
			if g := serials(got); !reflect.DeepEqual(emptyNil(g), emptyNil(tc.want)) {
				t.Errorf("ListCertificates(%+v) = %v, want %v", tc.f, g, tc.want)
			}
		})
	}
	// Listed records are complete, not summaries.
	got, err := s.ListCertificates(t.Context(), store.CertFilter{Status: identity.StatusPlanned})
	if err != nil || len(got) != 1 {
		t.Fatalf("ListCertificates(planned) = %v, %v", got, err)
	}
	checkCert(t, got[0], get(t, s, "3"))
}

func testRevokedCertificates(t *testing.T, s store.Store) {
	now := base.UTC().Truncate(time.Microsecond)
	day := 24 * time.Hour
	type spec struct {
		serial   identity.Serial
		issuer   string
		notAfter time.Duration
		revoke   bool
		reason   identity.RevocationReason
	}
	specs := []spec{
		{"a0", "A", 10 * day, true, identity.ReasonKeyCompromise},
		{"b", "A", 10 * day, true, identity.ReasonSuperseded},
		{"100", "A", 10 * day, true, identity.ReasonUnspecified},
		{"9", "A", -day, true, identity.ReasonAffiliationChanged}, // expired before since
		{"c", "A", 10 * day, false, 0},                            // issued only
		{"d", "B", 10 * day, true, identity.ReasonCACompromise},   // other issuer
	}
	var cs []*identity.Certificate
	for _, sp := range specs {
		c := newCert(sp.serial, now)
		c.IssuerID, c.NotAfter = sp.issuer, now.Add(sp.notAfter)
		cs = append(cs, c)
	}
	insert(t, s, cs...)
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for i, sp := range specs {
			if err := markIssued(ctx, tx, sp.serial, now); err != nil {
				return err
			}
			if sp.revoke {
				if err := revoke(ctx, tx, sp.serial, sp.reason, base.Add(time.Duration(i)*time.Second)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	entry := func(i int) store.RevokedEntry {
		return store.RevokedEntry{Serial: specs[i].serial, RevokedAt: canonTime(base.Add(time.Duration(i) * time.Second)), Reason: specs[i].reason}
	}
	for _, tc := range []struct {
		name   string
		issuer string
		since  time.Time
		want   []store.RevokedEntry
	}{
		{"since now", "A", now, []store.RevokedEntry{entry(1), entry(0), entry(2)}}, // b < a0 < 100
		{"since zero", "A", time.Time{}, []store.RevokedEntry{entry(3), entry(1), entry(0), entry(2)}},
		{"since is strict", "A", now.Add(10 * day), nil},
		{"since, sub-microsecond", "A", now.Add(10*day - time.Nanosecond), []store.RevokedEntry{entry(1), entry(0), entry(2)}},
		{"other issuer", "B", now, []store.RevokedEntry{entry(5)}},
		{"unknown issuer", "Z", time.Time{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.RevokedCertificates(t.Context(), tc.issuer, tc.since)
			if err != nil {
				t.Fatalf("RevokedCertificates: %v", err)
			}
			for i, e := range got {
				checkTime(t, "RevokedAt", e.RevokedAt)
				got[i].RevokedAt = canonTime(e.RevokedAt)
			}
			if !reflect.DeepEqual(emptyNil(got), tc.want) {
				t.Errorf("RevokedCertificates(%s, %v):\n got %+v\nwant %+v", tc.issuer, tc.since, got, tc.want)
			}
		})
	}
}
