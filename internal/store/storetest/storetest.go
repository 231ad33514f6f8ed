// Package storetest is the conformance suite every store.Store implementation
// must pass. It pins down the parts of the contract store.go leaves implicit:
//
//   - Times round-trip at microsecond precision, in UTC; the zero time stays zero.
//   - Empty and nil maps, slices and byte slices are equivalent (either may come back).
//   - Byte fields (TBS, DER, profile Doc, SecretHash, CertDER) round-trip byte for byte.
//   - "Ordered by serial" is numeric order of canonical serials.
//   - ListProfiles orders by name, ListIssuers by ID, ListTokens by CreatedAt then ID.
//   - AuditFilter.Since is inclusive and Until exclusive.
//   - RevokeToken on a revoked token succeeds and keeps the first RevokedAt.
//   - At most one issuer is default: putting a default demotes the previous one.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

type test struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// Run runs the suite. open must return a new, empty store each call; Run
// closes it when the subtest ends. Subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Certificates", certTests},
		{"Profiles", profileTests},
		{"Tokens", tokenTests},
		{"Issuers", issuerTests},
		{"CRLs", crlTests},
		{"Audit", auditTests},
		{"Transactions", txTests},
		{"Import", importTests},
		{"ACME", acmeTests},
		{"Inventory", inventoryTests},
		{"Agents", agentTests},
		{"Assess", assessTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					s := open(t)
					t.Cleanup(func() {
						if err := s.Close(); err != nil {
							t.Errorf("Close: %v", err)
						}
					})
					tc.fn(t, s)
				})
			}
		})
	}
}

// base has nanoseconds and a non-UTC zone, to check truncation and conversion.
var base = time.Date(2031, 3, 14, 15, 9, 26, 535897932, time.FixedZone("UTC+5:30", 5*3600+1800))

var errBoom = errors.New("boom: fn failed on purpose")

// update runs fn in a transaction and fails the test on error.
func update(t *testing.T, s store.Store, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// wantErr fails unless err matches target with errors.Is.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// canonTime is what a store must return for t: UTC, truncated to microseconds.
func canonTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

// checkTime fails unless a returned time is zero or UTC at microsecond precision.
func checkTime(t *testing.T, what string, got time.Time) {
	t.Helper()
	if got.IsZero() {
		return
	}
	if got.Location() != time.UTC || got.Nanosecond()%1000 != 0 {
		t.Errorf("%s: time %v is not UTC at microsecond precision", what, got)
	}
}

func emptyNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func canonCert(c *identity.Certificate) identity.Certificate {
	x := *c
	if len(x.Labels) == 0 {
		x.Labels = nil
	}
	x.DNSNames, x.IPAddresses, x.URIs, x.Emails = emptyNil(x.DNSNames), emptyNil(x.IPAddresses), emptyNil(x.URIs), emptyNil(x.Emails)
	x.TBS, x.DER = emptyNil(x.TBS), emptyNil(x.DER)
	x.NotBefore, x.NotAfter, x.CreatedAt = canonTime(x.NotBefore), canonTime(x.NotAfter), canonTime(x.CreatedAt)
	x.IssuedAt, x.RevokedAt = canonTime(x.IssuedAt), canonTime(x.RevokedAt)
	return x
}

// checkCert compares a returned certificate with what was stored.
func checkCert(t *testing.T, got, want *identity.Certificate) {
	t.Helper()
	for name, tm := range map[string]time.Time{"NotBefore": got.NotBefore, "NotAfter": got.NotAfter,
		"CreatedAt": got.CreatedAt, "IssuedAt": got.IssuedAt, "RevokedAt": got.RevokedAt} {
		checkTime(t, "certificate "+name, tm)
	}
	if g, w := canonCert(got), canonCert(want); !reflect.DeepEqual(g, w) {
		t.Errorf("certificate %s:\n got %+v\nwant %+v", want.Serial, g, w)
	}
}

func canonToken(k *identity.Token) identity.Token {
	x := *k
	x.Profiles, x.SecretHash = emptyNil(x.Profiles), emptyNil(x.SecretHash)
	x.CreatedAt, x.ExpiresAt, x.RevokedAt = canonTime(x.CreatedAt), canonTime(x.ExpiresAt), canonTime(x.RevokedAt)
	return x
}

func checkToken(t *testing.T, got, want *identity.Token) {
	t.Helper()
	checkTime(t, "token CreatedAt", got.CreatedAt)
	checkTime(t, "token ExpiresAt", got.ExpiresAt)
	checkTime(t, "token RevokedAt", got.RevokedAt)
	if g, w := canonToken(got), canonToken(want); !reflect.DeepEqual(g, w) {
		t.Errorf("token %s:\n got %+v\nwant %+v", want.ID, g, w)
	}
}

func canonEvent(e *audit.Event) audit.Event {
	x := *e
	x.Time = canonTime(x.Time)
	return x
}

func checkEvents(t *testing.T, what string, got, want []*audit.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events %v, want %d %v", what, len(got), seqs(got), len(want), seqs(want))
	}
	for i := range got {
		checkTime(t, what+" event time", got[i].Time)
		if g, w := canonEvent(got[i]), canonEvent(want[i]); g != w {
			t.Errorf("%s: event %d:\n got %+v\nwant %+v", what, i, g, w)
		}
	}
}

func seqs(es []*audit.Event) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func serials(cs []*identity.Certificate) []identity.Serial {
	out := make([]identity.Serial, len(cs))
	for i, c := range cs {
		out[i] = c.Serial
	}
	return out
}

// newCert returns a planned certificate with every field set.
func newCert(serial identity.Serial, created time.Time) *identity.Certificate {
	return &identity.Certificate{
		Serial:          serial,
		IssuerID:        "int-a",
		Profile:         "web",
		Status:          identity.StatusPlanned,
		Requester:       "token:ops",
		Owner:           "team-payments",
		Labels:          map[string]string{"env": "prod", "app": "checkout", "unicode": "ü→✓"},
		CommonName:      "checkout.example.com",
		DNSNames:        []string{"checkout.example.com", "www.checkout.example.com"},
		IPAddresses:     []string{"192.0.2.7", "2001:db8::7"},
		URIs:            []string{"spiffe://example.com/ns/prod/sa/checkout"},
		Emails:          []string{"ops@example.com"},
		KeyType:         identity.KeyECDSAP256,
		SPKIFingerprint: fmt.Sprintf("%064x", serial.Big()),
		NotBefore:       created.Add(-time.Minute),
		NotAfter:        created.Add(90 * 24 * time.Hour),
		CreatedAt:       created,
		TBS:             []byte{0x30, 0x82, 0x01, 0x00, 0x00, 0xff, 0x7f, 0x80},
	}
}

// insert stores certificates in one committed transaction.
func insert(t *testing.T, s store.Store, cs ...*identity.Certificate) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, c := range cs {
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
}

func get(t *testing.T, s store.Store, serial identity.Serial) *identity.Certificate {
	t.Helper()
	c, err := s.GetCertificate(t.Context(), serial)
	if err != nil {
		t.Fatalf("GetCertificate(%s): %v", serial, err)
	}
	return c
}

// verifyChain walks the whole log with audit.Verifier and checks the head.
func verifyChain(t *testing.T, s store.Store) []*audit.Event {
	t.Helper()
	var v audit.Verifier
	var all []*audit.Event
	err := s.WalkAudit(t.Context(), func(e *audit.Event) error {
		all = append(all, e)
		return v.Next(e)
	})
	if err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	seq, hash, err := s.AuditHead(t.Context())
	if err != nil {
		t.Fatalf("AuditHead: %v", err)
	}
	if n, err := v.Finish(seq, hash); err != nil || n != int64(len(all)) {
		t.Fatalf("audit chain Finish: %d events, %v", n, err)
	}
	return all
}

func event(actor, action, object string, at time.Time) *audit.Event {
	return &audit.Event{Time: at, Actor: actor, Action: action, Object: object, Result: audit.ResultSuccess, Detail: "detail of " + action}
}
