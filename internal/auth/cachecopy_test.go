package auth

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// TestTokenCacheCopies: GetToken promises a copy of the cached record, so a
// caller changing what it got (scope included) cannot change what the next
// request is authorised with.
func TestTokenCacheCopies(t *testing.T) {
	st := tokenStore(t)
	plain, tok, err := NewToken(identity.RoleOperator, "scoped", []string{"web"}, 0, "system", now)
	if err != nil {
		t.Fatal(err)
	}
	insert(t, st, tok)
	cache := NewTokenCache(st, time.Hour, func() time.Time { return now })
	for _, what := range []string{"miss", "hit"} {
		cache.Forget(tok.ID)
		if what == "hit" {
			if _, err := Authenticate(t.Context(), cache, plain, now); err != nil {
				t.Fatal(err)
			}
		}
		got, err := Authenticate(t.Context(), cache, plain, now)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got.Role = identity.RoleAdmin
		got.Profiles[0] = "everything"
		got.SecretHash[0] ^= 0xff
		again, err := cache.GetToken(t.Context(), tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		if again.Role != identity.RoleOperator || again.Profiles[0] != "web" || again.SecretHash[0] != tok.SecretHash[0] {
			t.Errorf("after a cache %s, a caller's changes reached the cache: role %s, profiles %v", what, again.Role, again.Profiles)
		}
	}
}

// TestTokenCacheMissesNotCached: an unknown id or a failing store is asked
// again on the next call rather than remembered.
func TestTokenCacheMissesNotCached(t *testing.T) {
	st := tokenStore(t)
	cache := NewTokenCache(st, time.Hour, func() time.Time { return now })
	plain, tok, _ := NewToken(identity.RoleAuditor, "", nil, 0, "system", now)
	if _, err := Authenticate(t.Context(), cache, plain, now); !errors.Is(err, ErrBadToken) {
		t.Fatalf("unknown token: %v", err)
	}
	insert(t, st, tok)
	if _, err := Authenticate(t.Context(), cache, plain, now); err != nil {
		t.Fatalf("a token stored after a miss is refused: %v", err)
	}

	down := tokenStore(t)
	down.Close()
	c := NewTokenCache(down, time.Hour, func() time.Time { return now })
	for range 2 {
		if _, err := c.GetToken(t.Context(), tok.ID); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("closed store: %v, want a store error", err)
		}
	}
}

// TestTokenCacheConcurrent exercises the cache under -race.
func TestTokenCacheConcurrent(t *testing.T) {
	st := tokenStore(t)
	cache := NewTokenCache(st, time.Millisecond, time.Now)
	var plains []string
	for range 8 {
		p, tok, _ := NewToken(identity.RoleOperator, "", nil, 0, "system", time.Now())
		insert(t, st, tok)
		plains = append(plains, p)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				p := plains[(g+i)%len(plains)]
				if _, err := Authenticate(t.Context(), cache, p, time.Now()); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					cache.Forget(p[4:20])
				}
			}
		})
	}
	wg.Wait()
}
