package storetest

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

var profileTests = []test{
	{"PutGetReplace", testProfilePutGet},
	{"List", testProfileList},
	{"Delete", testProfileDelete},
}

var tokenTests = []test{
	{"RoundTrip", testTokenRoundTrip},
	{"Duplicate", testTokenDuplicate},
	{"List", testTokenList},
	{"Revoke", testTokenRevoke},
}

var issuerTests = []test{
	{"RoundTrip", testIssuerRoundTrip},
	{"Replace", testIssuerReplace},
	{"SingleDefault", testIssuerDefault},
}

var crlTests = []test{
	{"Numbers", testCRLNumbers},
	{"NextInTransaction", testCRLNextInTx},
}

func putProfile(t *testing.T, s store.Store, p *store.Profile) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.PutProfile(ctx, p) })
}

func checkProfile(t *testing.T, got, want *store.Profile) {
	t.Helper()
	checkTime(t, "profile UpdatedAt", got.UpdatedAt)
	if got.Name != want.Name || !bytes.Equal(got.Doc, want.Doc) || !canonTime(got.UpdatedAt).Equal(canonTime(want.UpdatedAt)) {
		t.Errorf("profile:\n got %s %q %v\nwant %s %q %v", got.Name, got.Doc, got.UpdatedAt, want.Name, want.Doc, canonTime(want.UpdatedAt))
	}
}

func testProfilePutGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Whitespace and key order are kept: the document is stored byte for byte.
	p := &store.Profile{Name: "web", Doc: []byte(`{"b": 1,  "a": ["x"]}`), UpdatedAt: base}
	putProfile(t, s, p)
	got, err := s.GetProfile(ctx, "web")
	if err != nil {
		t.Fatalf("GetProfile: %v", err)
	}
	checkProfile(t, got, p)

	p2 := &store.Profile{Name: "web", Doc: []byte(`{"max_ttl":"24h"}`), UpdatedAt: base.Add(time.Hour)}
	putProfile(t, s, p2)
	if got, err = s.GetProfile(ctx, "web"); err != nil {
		t.Fatalf("GetProfile after replace: %v", err)
	}
	checkProfile(t, got, p2)

	_, err = s.GetProfile(ctx, "nope")
	wantErr(t, "GetProfile(unknown)", err, store.ErrNotFound)
}

func testProfileList(t *testing.T, s store.Store) {
	ps, err := s.ListProfiles(t.Context())
	if err != nil || len(ps) != 0 {
		t.Fatalf("ListProfiles on empty store = %v, %v", ps, err)
	}
	for i, n := range []string{"mtls", "code-signing", "web"} {
		putProfile(t, s, &store.Profile{Name: n, Doc: []byte(`{"n":"` + n + `"}`), UpdatedAt: base.Add(time.Duration(i) * time.Second)})
	}
	if ps, err = s.ListProfiles(t.Context()); err != nil {
		t.Fatalf("ListProfiles: %v", err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
		if want := `{"n":"` + p.Name + `"}`; string(p.Doc) != want {
			t.Errorf("profile %s doc = %s, want %s", p.Name, p.Doc, want)
		}
	}
	if want := []string{"code-signing", "mtls", "web"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ListProfiles names = %v, want %v", names, want)
	}
}

func testProfileDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProfile(t, s, &store.Profile{Name: "web", Doc: []byte(`{}`), UpdatedAt: base})
	putProfile(t, s, &store.Profile{Name: "mtls", Doc: []byte(`{}`), UpdatedAt: base})
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteProfile(ctx, "web") })
	_, err := s.GetProfile(ctx, "web")
	wantErr(t, "GetProfile(deleted)", err, store.ErrNotFound)
	if _, err := s.GetProfile(ctx, "mtls"); err != nil {
		t.Errorf("deleting web removed mtls: %v", err)
	}
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.DeleteProfile(ctx, "web") })
	wantErr(t, "DeleteProfile(deleted)", err, store.ErrNotFound)
}

func newToken(id string, created time.Time) *identity.Token {
	return &identity.Token{
		ID: id, Name: "token " + id, Role: identity.RoleOperator,
		Profiles:   []string{"web", "mtls"},
		SecretHash: []byte{0x00, 0x01, 0xfe, 0xff, 0x80, 0x7f},
		CreatedBy:  "admin", CreatedAt: created, ExpiresAt: created.Add(30 * 24 * time.Hour),
	}
}

func insertToken(t *testing.T, s store.Store, k *identity.Token) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.InsertToken(ctx, k) })
}

func getToken(t *testing.T, s store.Store, id string) *identity.Token {
	t.Helper()
	k, err := s.GetToken(t.Context(), id)
	if err != nil {
		t.Fatalf("GetToken(%s): %v", id, err)
	}
	return k
}

func testTokenRoundTrip(t *testing.T, s store.Store) {
	scoped := newToken("tok-scoped", base)
	// Unscoped, never expires: nil Profiles and zero ExpiresAt must stay so.
	open := &identity.Token{ID: "tok-admin", Role: identity.RoleAdmin, SecretHash: []byte("h"), CreatedBy: "bootstrap", CreatedAt: base}
	insertToken(t, s, scoped)
	insertToken(t, s, open)
	checkToken(t, getToken(t, s, scoped.ID), scoped)
	got := getToken(t, s, open.ID)
	checkToken(t, got, open)
	if len(got.Profiles) != 0 || !got.ExpiresAt.IsZero() || !got.RevokedAt.IsZero() {
		t.Errorf("unset token fields came back set: %+v", got)
	}
	_, err := s.GetToken(t.Context(), "nope")
	wantErr(t, "GetToken(unknown)", err, store.ErrNotFound)
}

func testTokenDuplicate(t *testing.T, s store.Store) {
	first := newToken("tok", base)
	insertToken(t, s, first)
	dup := newToken("tok", base.Add(time.Hour))
	dup.Role = identity.RoleAdmin
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.InsertToken(ctx, dup) })
	wantErr(t, "InsertToken(duplicate)", err, store.ErrConflict)
	checkToken(t, getToken(t, s, "tok"), first)
}

func testTokenList(t *testing.T, s store.Store) {
	ks, err := s.ListTokens(t.Context())
	if err != nil || len(ks) != 0 {
		t.Fatalf("ListTokens on empty store = %v, %v", ks, err)
	}
	// Ordered by CreatedAt, then ID.
	insertToken(t, s, newToken("c", base.Add(2*time.Second)))
	insertToken(t, s, newToken("b", base.Add(time.Second)))
	insertToken(t, s, newToken("a", base.Add(2*time.Second)))
	if ks, err = s.ListTokens(t.Context()); err != nil {
		t.Fatalf("ListTokens: %v", err)
	}
	var ids []string
	for _, k := range ks {
		ids = append(ids, k.ID)
	}
	if want := []string{"b", "a", "c"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ListTokens IDs = %v, want %v", ids, want)
	}
	checkToken(t, ks[0], newToken("b", base.Add(time.Second)))
}

func testTokenRevoke(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := newToken("tok", base)
	insertToken(t, s, k)
	at := base.Add(time.Minute + 5)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.RevokeToken(ctx, "tok", at) })
	k.RevokedAt = at
	checkToken(t, getToken(t, s, "tok"), k)
	if getToken(t, s, "tok").Active(base) {
		t.Error("revoked token is still active")
	}
	// Revoking again succeeds and keeps the first time.
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.RevokeToken(ctx, "tok", at.Add(time.Hour)) })
	checkToken(t, getToken(t, s, "tok"), k)

	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.RevokeToken(ctx, "nope", at) })
	wantErr(t, "RevokeToken(unknown)", err, store.ErrNotFound)
}

func putIssuer(t *testing.T, s store.Store, i *store.Issuer) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.PutIssuer(ctx, i) })
}

func checkIssuer(t *testing.T, got, want *store.Issuer) {
	t.Helper()
	checkTime(t, "issuer CreatedAt", got.CreatedAt)
	g, w := *got, *want
	g.CertDER, w.CertDER = emptyNil(g.CertDER), emptyNil(w.CertDER)
	g.CreatedAt, w.CreatedAt = canonTime(g.CreatedAt), canonTime(w.CreatedAt)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("issuer:\n got %+v\nwant %+v", g, w)
	}
}

func getIssuer(t *testing.T, s store.Store, id string) *store.Issuer {
	t.Helper()
	i, err := s.GetIssuer(t.Context(), id)
	if err != nil {
		t.Fatalf("GetIssuer(%s): %v", id, err)
	}
	return i
}

func issuers() (root, inter *store.Issuer) {
	root = &store.Issuer{ID: "root", CertDER: []byte{0x30, 0x01, 0x00}, KeyRef: "root.key", CreatedAt: base}
	inter = &store.Issuer{ID: "default", CertDER: []byte{0x30, 0x02, 0xff}, KeyRef: "default.key", ParentID: "root", IsDefault: true, CreatedAt: base.Add(time.Second)}
	return root, inter
}

func testIssuerRoundTrip(t *testing.T, s store.Store) {
	root, inter := issuers()
	putIssuer(t, s, root)
	putIssuer(t, s, inter)
	checkIssuer(t, getIssuer(t, s, "root"), root)
	checkIssuer(t, getIssuer(t, s, "default"), inter)
	list, err := s.ListIssuers(t.Context())
	if err != nil || len(list) != 2 {
		t.Fatalf("ListIssuers = %v, %v", list, err)
	}
	checkIssuer(t, list[0], inter) // ordered by ID
	checkIssuer(t, list[1], root)
	_, err = s.GetIssuer(t.Context(), "nope")
	wantErr(t, "GetIssuer(unknown)", err, store.ErrNotFound)
}

func testIssuerReplace(t *testing.T, s store.Store) {
	root, _ := issuers()
	putIssuer(t, s, root)
	root2 := *root
	root2.CertDER, root2.KeyRef = []byte{0x30, 0x03}, "rotated.key"
	putIssuer(t, s, &root2)
	checkIssuer(t, getIssuer(t, s, "root"), &root2)
	if list, err := s.ListIssuers(t.Context()); err != nil || len(list) != 1 {
		t.Fatalf("ListIssuers after replace = %v, %v", list, err)
	}
}

func testIssuerDefault(t *testing.T, s store.Store) {
	root, inter := issuers()
	putIssuer(t, s, root)
	putIssuer(t, s, inter)
	next := &store.Issuer{ID: "default-2026", CertDER: []byte{1}, KeyRef: "k2", ParentID: "root", IsDefault: true, CreatedAt: base}
	putIssuer(t, s, next)
	if getIssuer(t, s, "default").IsDefault {
		t.Error("previous default issuer still IsDefault after a new default was put")
	}
	if !getIssuer(t, s, "default-2026").IsDefault {
		t.Error("new default issuer is not IsDefault")
	}
	// Re-putting the current default keeps it default.
	putIssuer(t, s, next)
	if !getIssuer(t, s, "default-2026").IsDefault {
		t.Error("re-put default issuer lost IsDefault")
	}
}

func insertCRL(ctx context.Context, s store.Store, issuer string, n int64) error {
	return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.InsertCRL(ctx, &store.CRL{IssuerID: issuer, Number: n, ThisUpdate: base, NextUpdate: base.Add(time.Hour), DER: []byte{0x30, byte(n)}})
	})
}

func nextCRL(t *testing.T, s store.Store, issuer string) int64 {
	t.Helper()
	var n int64
	update(t, s, func(ctx context.Context, tx store.Tx) (err error) {
		n, err = tx.NextCRLNumber(ctx, issuer)
		return err
	})
	return n
}

func testCRLNumbers(t *testing.T, s store.Store) {
	ctx := t.Context()
	if n := nextCRL(t, s, "A"); n != 1 {
		t.Fatalf("NextCRLNumber on empty store = %d, want 1", n)
	}
	_, err := s.LatestCRL(ctx, "A")
	wantErr(t, "LatestCRL(none)", err, store.ErrNotFound)

	for _, n := range []int64{1, 2} {
		if err := insertCRL(ctx, s, "A", n); err != nil {
			t.Fatalf("InsertCRL(%d): %v", n, err)
		}
		if got := nextCRL(t, s, "A"); got != n+1 {
			t.Fatalf("NextCRLNumber after %d = %d", n, got)
		}
	}
	wantErr(t, "InsertCRL(same number)", insertCRL(ctx, s, "A", 2), store.ErrConflict)
	wantErr(t, "InsertCRL(lower number)", insertCRL(ctx, s, "A", 1), store.ErrConflict)
	if n := nextCRL(t, s, "B"); n != 1 {
		t.Errorf("NextCRLNumber(B) = %d, want 1: numbers are per issuer", n)
	}
	if err := insertCRL(ctx, s, "B", 1); err != nil {
		t.Fatalf("InsertCRL(B, 1): %v", err)
	}
	if err := insertCRL(ctx, s, "A", 7); err != nil { // gaps are allowed
		t.Fatalf("InsertCRL(A, 7): %v", err)
	}
	if n := nextCRL(t, s, "A"); n != 8 {
		t.Errorf("NextCRLNumber after 7 = %d, want 8", n)
	}
	wantErr(t, "InsertCRL(unused lower number)", insertCRL(ctx, s, "A", 5), store.ErrConflict)

	got, err := s.LatestCRL(ctx, "A")
	if err != nil {
		t.Fatalf("LatestCRL: %v", err)
	}
	checkTime(t, "ThisUpdate", got.ThisUpdate)
	checkTime(t, "NextUpdate", got.NextUpdate)
	if got.IssuerID != "A" || got.Number != 7 || !bytes.Equal(got.DER, []byte{0x30, 7}) ||
		!got.ThisUpdate.Equal(canonTime(base)) || !got.NextUpdate.Equal(canonTime(base.Add(time.Hour))) {
		t.Errorf("LatestCRL(A) = %+v", got)
	}
	if got, err := s.LatestCRL(ctx, "B"); err != nil || got.Number != 1 {
		t.Errorf("LatestCRL(B) = %+v, %v", got, err)
	}
}

// testCRLNextInTx checks a transaction sees its own CRL when numbering the next.
func testCRLNextInTx(t *testing.T, s store.Store) {
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for want := int64(1); want <= 3; want++ {
			n, err := tx.NextCRLNumber(ctx, "A")
			if err != nil {
				return err
			}
			if n != want {
				t.Errorf("NextCRLNumber = %d, want %d", n, want)
			}
			if err := tx.InsertCRL(ctx, &store.CRL{IssuerID: "A", Number: n, ThisUpdate: base, NextUpdate: base, DER: []byte{1}}); err != nil {
				return err
			}
		}
		return nil
	})
	if got, err := s.LatestCRL(t.Context(), "A"); err != nil || got.Number != 3 {
		t.Errorf("LatestCRL = %+v, %v", got, err)
	}
}
