package auth

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/sqlite"
)

// TestTokenCache: a revocation made elsewhere (straight in the store, as
// another replica would) is seen once the TTL passes; Forget applies at once;
// expiry is checked on every call even for a cached record.
func TestTokenCache(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	plain, tok, err := NewToken(identity.RoleOperator, "ci", nil, time.Hour, "test", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.InsertToken(ctx, tok) }); err != nil {
		t.Fatal(err)
	}
	c := NewTokenCache(st, 2*time.Second, clock)
	if _, err := Authenticate(ctx, c, plain, now); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	if _, err := Authenticate(ctx, c, plain[:len(plain)-1]+"x", now); !errors.Is(err, ErrBadToken) {
		t.Fatalf("wrong secret through the cache: %v", err)
	}
	if err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.RevokeToken(ctx, tok.ID, now) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Authenticate(ctx, c, plain, now); err != nil {
		t.Fatalf("within the TTL the cached record still answers: %v", err)
	}
	now = now.Add(3 * time.Second)
	if _, err := Authenticate(ctx, c, plain, now); !errors.Is(err, ErrBadToken) {
		t.Fatalf("revocation not seen after the TTL: %v", err)
	}

	plain2, tok2, _ := NewToken(identity.RoleAuditor, "", nil, 10*time.Second, "test", now)
	if err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.InsertToken(ctx, tok2) }); err != nil {
		t.Fatal(err)
	}
	c = NewTokenCache(st, time.Hour, clock)
	if _, err := Authenticate(ctx, c, plain2, now); err != nil {
		t.Fatal(err)
	}
	if _, err := Authenticate(ctx, c, plain2, now.Add(11*time.Second)); !errors.Is(err, ErrBadToken) {
		t.Fatalf("expired token accepted from the cache: %v", err)
	}
	if err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.RevokeToken(ctx, tok2.ID, now) }); err != nil {
		t.Fatal(err)
	}
	c.Forget(tok2.ID)
	if _, err := Authenticate(ctx, c, plain2, now); !errors.Is(err, ErrBadToken) {
		t.Fatalf("Forget did not drop the revoked token: %v", err)
	}
}
