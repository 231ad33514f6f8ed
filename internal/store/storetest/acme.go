package storetest

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

var acmeTests = []test{
	{"ProfileSettings", testACMEProfiles},
	{"Secrets", testACMESecrets},
	{"EABKeys", testEABKeys},
	{"Accounts", testACMEAccounts},
	{"Orders", testACMEOrders},
	{"Nonces", testACMENonces},
	{"RenewEarly", testRenewEarly},
	{"RateCounts", testACMERates},
}

func testRenewEarly(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.RenewEarlyAt(ctx, "abc")
	wantErr(t, "unmarked", err, store.ErrNotFound)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.MarkRenewEarly(ctx, "abc", base) })
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.MarkRenewEarly(ctx, "abc", base.Add(5e9)) })
	at, err := s.RenewEarlyAt(ctx, "abc")
	if err != nil || !at.Equal(canonTime(base)) {
		t.Fatalf("RenewEarlyAt: %v %v, want the first mark", at, err)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.MarkRenewEarly(ctx, "def", base.Add(time.Hour))
	})
	all, err := s.ListRenewEarly(ctx)
	if err != nil || len(all) != 2 || !all["abc"].Equal(canonTime(base)) || !all["def"].Equal(canonTime(base.Add(time.Hour))) {
		t.Fatalf("ListRenewEarly = %v, %v", all, err)
	}
}

func testACMEProfiles(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetACMEProfile(ctx, "web")
	wantErr(t, "absent profile", err, store.ErrNotFound)
	for _, p := range []*store.ACMEProfile{{Profile: "web", Enabled: true, EABRequired: true, UpdatedAt: base}, {Profile: "api", Enabled: true, UpdatedAt: base}, {Profile: "web", Enabled: false, UpdatedAt: base.Add(1)}} {
		update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.PutACMEProfile(ctx, p) })
	}
	got, err := s.GetACMEProfile(ctx, "web")
	if err != nil || got.Enabled || got.EABRequired || !got.UpdatedAt.Equal(canonTime(base.Add(1))) {
		t.Fatalf("replaced profile: %+v %v", got, err)
	}
	ps, err := s.ListACMEProfiles(ctx)
	if err != nil || len(ps) != 2 || ps[0].Profile != "api" || ps[1].Profile != "web" {
		t.Fatalf("ListACMEProfiles: %+v %v", ps, err)
	}
}

func testACMESecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.InsertACMESecret(ctx, "nonce", []byte{0, 1, 0xff})
	})
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.InsertACMESecret(ctx, "nonce", []byte{9}) })
	wantErr(t, "second secret", err, store.ErrConflict)
	b, err := s.GetACMESecret(ctx, "nonce")
	if err != nil || !reflect.DeepEqual(b, []byte{0, 1, 0xff}) {
		t.Fatalf("GetACMESecret: %x %v", b, err)
	}
	_, err = s.GetACMESecret(ctx, "other")
	wantErr(t, "absent secret", err, store.ErrNotFound)
}

func testEABKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := &store.EABKey{KID: "eab_1", Profile: "web", Owner: "team-a", Sealed: []byte{1, 2, 3}, CreatedAt: base}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.InsertEABKey(ctx, k) })
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.InsertEABKey(ctx, &store.EABKey{KID: "eab_2", Profile: "api", Sealed: []byte{4}, CreatedAt: base.Add(1)})
	})
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.InsertEABKey(ctx, k) })
	wantErr(t, "duplicate kid", err, store.ErrConflict)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.BindEABKey(ctx, "eab_1", "acct1") })
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.BindEABKey(ctx, "eab_1", "acct2") })
	wantErr(t, "second bind", err, store.ErrConflict)
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.BindEABKey(ctx, "eab_x", "acct2") })
	wantErr(t, "bind absent", err, store.ErrNotFound)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.RevokeEABKey(ctx, "eab_2", base.Add(5)) })
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.RevokeEABKey(ctx, "eab_2", base.Add(9)) })
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.BindEABKey(ctx, "eab_2", "acct3") })
	wantErr(t, "bind revoked", err, store.ErrConflict)
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.RevokeEABKey(ctx, "eab_x", base) })
	wantErr(t, "revoke absent", err, store.ErrNotFound)
	got, err := s.GetEABKey(ctx, "eab_1")
	want := *k
	want.AccountID, want.CreatedAt = "acct1", canonTime(base)
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("GetEABKey:\n got %+v\nwant %+v (%v)", got, want, err)
	}
	all, err := s.ListEABKeys(ctx, "")
	if err != nil || len(all) != 2 || all[0].KID != "eab_1" || !all[1].RevokedAt.Equal(canonTime(base.Add(5))) {
		t.Fatalf("ListEABKeys: %+v %v", all, err)
	}
	web, err := s.ListEABKeys(ctx, "web")
	if err != nil || len(web) != 1 {
		t.Fatalf("ListEABKeys(web): %+v %v", web, err)
	}
}

func testACMEAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := &store.ACMEAccount{ID: "a1", Profile: "web", Thumbprint: "tp1", JWK: []byte(`{"kty":"EC"}`), Status: "valid", Contact: []string{"mailto:a@example.org"}, Owner: "team-a", EABKID: "eab_1", CreatedAt: base}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.InsertACMEAccount(ctx, a) })
	dup := *a
	dup.ID = "a2"
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.InsertACMEAccount(ctx, &dup) })
	wantErr(t, "same key, same profile", err, store.ErrConflict)
	dup.Profile, dup.Contact = "api", nil
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.InsertACMEAccount(ctx, &dup) })
	got, err := s.GetACMEAccountByKey(ctx, "web", "tp1")
	want := *a
	want.CreatedAt = canonTime(base)
	if err != nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("GetACMEAccountByKey:\n got %+v\nwant %+v (%v)", got, want, err)
	}
	upd := *a
	upd.Status, upd.Contact, upd.Thumbprint, upd.JWK = "deactivated", nil, "tp9", []byte(`{"kty":"OKP"}`)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateACMEAccount(ctx, &upd) })
	got, err = s.GetACMEAccount(ctx, "a1")
	if err != nil || got.Status != "deactivated" || len(got.Contact) != 0 || got.Thumbprint != "tp9" || string(got.JWK) != `{"kty":"OKP"}` {
		t.Fatalf("after update: %+v %v", got, err)
	}
	_, err = s.GetACMEAccountByKey(ctx, "web", "tp1")
	wantErr(t, "old thumbprint", err, store.ErrNotFound)
	all, err := s.ListACMEAccounts(ctx)
	if err != nil || len(all) != 2 || all[0].ID != "a1" || all[1].ID != "a2" || all[0].Status != "deactivated" || all[1].Profile != "api" {
		t.Fatalf("ListACMEAccounts = %+v, %v", all, err)
	}
	upd.ID = "zz"
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.UpdateACMEAccount(ctx, &upd) })
	wantErr(t, "update absent", err, store.ErrNotFound)
}

func testACMEOrders(t *testing.T, s store.Store) {
	ctx := t.Context()
	o := &store.ACMEOrder{ID: "o1", AccountID: "a1", Profile: "web", Status: "pending", Expires: base.Add(7), Replaces: "aki.serial", Doc: []byte(`{"x":1}`), CreatedAt: base}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.InsertACMEOrder(ctx, o) })
	if o.Version != 1 {
		t.Fatalf("version %d after insert", o.Version)
	}
	o2 := &store.ACMEOrder{ID: "o2", AccountID: "a1", Profile: "web", Status: "pending", Replaces: "aki.serial", Doc: []byte(`{}`), CreatedAt: base}
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.InsertACMEOrder(ctx, o2) })
	wantErr(t, "second order replacing the same certificate", err, store.ErrConflict)
	o2.Replaces = ""
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.InsertACMEOrder(ctx, o2) })
	o3 := &store.ACMEOrder{ID: "o3", AccountID: "a1", Profile: "web", Status: "pending", Doc: []byte(`{}`)}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.InsertACMEOrder(ctx, o3) })

	stale := *o
	o.Status, o.Serial, o.Doc = "valid", "abc", []byte(`{"x":2}`)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateACMEOrder(ctx, o) })
	if o.Version != 2 {
		t.Fatalf("version %d after update", o.Version)
	}
	stale.Status = "invalid"
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.UpdateACMEOrder(ctx, &stale) })
	wantErr(t, "update from a stale version", err, store.ErrConflict)
	got, err := s.GetACMEOrder(ctx, "o1")
	if err != nil || got.Status != "valid" || got.Serial != "abc" || string(got.Doc) != `{"x":2}` || got.Version != 2 || !got.Expires.Equal(canonTime(base.Add(7))) {
		t.Fatalf("GetACMEOrder: %+v %v", got, err)
	}
	ids, err := s.ListACMEOrderIDs(ctx, "a1", 2)
	if err != nil || len(ids) != 2 {
		t.Fatalf("ListACMEOrderIDs: %v %v", ids, err)
	}
	if none, err := s.ListACMEOrderIDs(ctx, "nobody", 10); err != nil || len(none) != 0 {
		t.Fatalf("ListACMEOrderIDs(nobody): %v %v", none, err)
	}
	r, err := s.ACMEOrderReplacing(ctx, "aki.serial")
	if err != nil || r.ID != "o1" {
		t.Fatalf("ACMEOrderReplacing: %+v %v", r, err)
	}
	_, err = s.ACMEOrderReplacing(ctx, "")
	wantErr(t, "replacing nothing", err, store.ErrNotFound)
	missing := &store.ACMEOrder{ID: "nope", Version: 1}
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.UpdateACMEOrder(ctx, missing) })
	wantErr(t, "update absent", err, store.ErrNotFound)
}

func testACMENonces(t *testing.T, s store.Store) {
	ctx := t.Context()
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UseACMENonce(ctx, "n1", base) })
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UseACMENonce(ctx, "n2", base.Add(60e9)) })
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.UseACMENonce(ctx, "n1", base) })
	wantErr(t, "replayed nonce", err, store.ErrConflict)
	var n int64
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		n, err = tx.PurgeACMENonces(ctx, base.Add(1e9))
		return err
	})
	if n != 1 {
		t.Fatalf("purged %d nonces, want 1", n)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UseACMENonce(ctx, "n1", base) })
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.UseACMENonce(ctx, "n2", base) })
	wantErr(t, "unpurged nonce", err, store.ErrConflict)
}

// testACMERates: a window counts up to its limit and no further, even
// under concurrent takes; windows and keys are independent; purge forgets
// old windows.
func testACMERates(t *testing.T, s store.Store) {
	ctx := t.Context()
	take := func(key string, w int64, limit int) (int, bool) {
		var n int
		var ok bool
		update(t, s, func(ctx context.Context, tx store.Tx) error {
			var err error
			n, ok, err = tx.TakeACMERate(ctx, key, base.Add(time.Duration(w)*time.Hour), limit)
			return err
		})
		return n, ok
	}
	for i := 1; i <= 2; i++ {
		if n, ok := take("a:1", 0, 2); !ok || n != i {
			t.Fatalf("take %d: %d %v", i, n, ok)
		}
	}
	if n, ok := take("a:1", 0, 2); ok || n != 2 {
		t.Fatalf("take over the limit: %d %v, want 2 false", n, ok)
	}
	if n, ok := take("a:1", 1, 2); !ok || n != 1 {
		t.Fatalf("next window: %d %v", n, ok)
	}
	if n, ok := take("n:x.test", 0, 2); !ok || n != 1 {
		t.Fatalf("other key: %d %v", n, ok)
	}
	// A refused take inside a transaction that rolls back counts nothing,
	// and a take whose transaction rolls back is undone.
	_ = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if _, _, err := tx.TakeACMERate(ctx, "n:x.test", base, 2); err != nil {
			return err
		}
		return store.ErrConflict
	})
	if n, ok := take("n:x.test", 0, 2); !ok || n != 2 {
		t.Fatalf("after a rolled-back take: %d %v, want 2 true", n, ok)
	}
	// Concurrent takes: exactly limit succeed.
	const limit, workers = 5, 12
	var mu sync.Mutex
	var wg sync.WaitGroup
	granted := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ok bool
			err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				var err error
				_, ok, err = tx.TakeACMERate(ctx, "a:busy", base, limit)
				return err
			})
			if err != nil {
				t.Errorf("concurrent take: %v", err)
			}
			mu.Lock()
			if ok {
				granted++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if granted != limit {
		t.Fatalf("%d concurrent takes granted, want %d", granted, limit)
	}
	var purged int64
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		purged, err = tx.PurgeACMERates(ctx, base.Add(time.Hour))
		return err
	})
	if purged != 3 {
		t.Fatalf("purged %d windows, want 3 (a:1, n:x.test, a:busy at base)", purged)
	}
	if n, ok := take("a:1", 0, 2); !ok || n != 1 {
		t.Fatalf("after purge: %d %v", n, ok)
	}
}
