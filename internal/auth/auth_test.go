package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/sqlite"
)

// A fixed clock: every expiry below is relative to it.
var now = time.Date(2026, 5, 1, 10, 30, 0, 123456789, time.UTC)

var tokenFormat = regexp.MustCompile(`^sgl_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$`)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for i := range 50 {
		plain, tok, err := NewToken(identity.RoleOperator, "ci", []string{"web"}, time.Hour, "system", now)
		if err != nil {
			t.Fatal(err)
		}
		m := tokenFormat.FindStringSubmatch(plain)
		if m == nil {
			t.Fatalf("token %q does not match sgl_<16 hex>_<43 base64url>", plain)
		}
		id, secret := m[1], m[2]
		if tok.ID != id {
			t.Errorf("record ID %q, token ID %q", tok.ID, id)
		}
		if seen[id] || seen[secret] {
			t.Fatalf("token %d repeats an ID or secret", i)
		}
		seen[id], seen[secret] = true, true
		sum := sha256.Sum256([]byte(secret))
		if string(tok.SecretHash) != string(sum[:]) {
			t.Error("SecretHash is not the SHA-256 of the secret")
		}
		if strings.Contains(string(tok.SecretHash), secret) {
			t.Error("the record holds the plaintext secret")
		}
		if tok.Role != identity.RoleOperator || tok.Name != "ci" || tok.CreatedBy != "system" || len(tok.Profiles) != 1 {
			t.Errorf("record = %+v", tok)
		}
		if !tok.CreatedAt.Equal(now.Truncate(time.Microsecond)) || tok.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt = %v, want %v in UTC", tok.CreatedAt, now.Truncate(time.Microsecond))
		}
		if !tok.ExpiresAt.Equal(tok.CreatedAt.Add(time.Hour)) {
			t.Errorf("ExpiresAt = %v, want CreatedAt + 1h", tok.ExpiresAt)
		}
	}
	_, forever, err := NewToken(identity.RoleAdmin, "", nil, 0, "system", now)
	if err != nil {
		t.Fatal(err)
	}
	if !forever.ExpiresAt.IsZero() {
		t.Errorf("TTL 0 gave ExpiresAt %v, want no expiry", forever.ExpiresAt)
	}
}

// tokenStore is a real SQLite store holding tokens made by NewToken.
func tokenStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func insert(t *testing.T, st store.Store, tok *identity.Token) {
	t.Helper()
	if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.InsertToken(ctx, tok) }); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticate(t *testing.T) {
	st := tokenStore(t)
	mk := func(ttl time.Duration) (string, *identity.Token) {
		plain, tok, err := NewToken(identity.RoleOperator, "t", nil, ttl, "system", now)
		if err != nil {
			t.Fatal(err)
		}
		insert(t, st, tok)
		return plain, tok
	}
	good, goodTok := mk(0)
	expiring, expTok := mk(time.Hour)
	revoked, revTok := mk(0)
	if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.RevokeToken(ctx, revTok.ID, now) }); err != nil {
		t.Fatal(err)
	}
	id, secret, _ := strings.Cut(strings.TrimPrefix(good, "sgl_"), "_")
	other, _ := mk(0)
	_, otherSecret, _ := strings.Cut(strings.TrimPrefix(other, "sgl_"), "_")
	unknownPlain, _, _ := NewToken(identity.RoleAdmin, "", nil, 0, "system", now) // never stored

	cases := []struct {
		name  string
		plain string
		at    time.Time
		want  *identity.Token // nil: ErrBadToken
	}{
		{"right secret", good, now, goodTok},
		{"right secret, years later", good, now.AddDate(10, 0, 0), goodTok},
		{"wrong secret", "sgl_" + id + "_" + strings.Repeat("A", len(secret)), now, nil},
		{"another token's secret", "sgl_" + id + "_" + otherSecret, now, nil},
		{"wrong prefix", "sgx_" + id + "_" + secret, now, nil},
		{"upper-case prefix", "SGL_" + id + "_" + secret, now, nil},
		{"no prefix", id + "_" + secret, now, nil},
		{"unknown id", unknownPlain, now, nil},
		{"truncated secret", good[:len(good)-1], now, nil},
		{"secret missing", "sgl_" + id + "_", now, nil},
		{"no separator", "sgl_" + id, now, nil},
		{"truncated id", "sgl_" + id[:15] + "_" + secret, now, nil},
		{"over-long secret", "sgl_" + id + "_" + secret + strings.Repeat("A", 64), now, nil},
		{"extra text", good + " ", now, nil},
		{"empty", "", now, nil},
		{"not yet expired", expiring, expTok.ExpiresAt.Add(-time.Nanosecond), expTok},
		{"expired at the instant", expiring, expTok.ExpiresAt, nil},
		{"expired", expiring, now.Add(2 * time.Hour), nil},
		{"revoked", revoked, now, nil},
		{"revoked, before revocation time", revoked, now.Add(-time.Hour), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Authenticate(t.Context(), st, c.plain, c.at)
			if c.want != nil {
				if err != nil || got == nil || got.ID != c.want.ID {
					t.Fatalf("Authenticate = %+v, %v; want token %s", got, err, c.want.ID)
				}
				return
			}
			if got != nil {
				t.Fatalf("Authenticate returned token %s", got.ID)
			}
			// One error for every failure: callers learn nothing about which part was wrong.
			if err != ErrBadToken || fail.KindOf(err) != fail.Unauthorized {
				t.Fatalf("error = %v (kind %v), want ErrBadToken", err, fail.KindOf(err))
			}
		})
	}

	t.Run("store down", func(t *testing.T) {
		down := tokenStore(t)
		down.Close()
		_, err := Authenticate(t.Context(), down, good, now)
		if fail.KindOf(err) != fail.Unavailable || errors.Is(err, ErrBadToken) {
			t.Fatalf("error = %v (kind %v), want Unavailable", err, fail.KindOf(err))
		}
	})
}

func TestAllowed(t *testing.T) {
	all := []Action{CertIssue, CertRevoke, CertRead, ProfileRead, ProfileWrite, TokenRead, TokenWrite, AuditRead, CARead}
	grantsWant := map[identity.Role][]Action{
		identity.RoleAdmin:    all,
		identity.RoleOperator: {CertIssue, CertRevoke, CertRead, ProfileRead, CARead},
		identity.RoleAuditor:  {CertRead, ProfileRead, TokenRead, AuditRead, CARead},
		"":                    nil, // anonymous
		"root":                nil, // unknown role
		"Admin":               nil, // roles are case-sensitive
	}
	for role, allowed := range grantsWant {
		ok := map[Action]bool{}
		for _, a := range allowed {
			ok[a] = true
		}
		for _, a := range append(all, "cert.delete", "") {
			t.Run(string(role)+"/"+string(a), func(t *testing.T) {
				want := ok[a] || role == identity.RoleAdmin // admin may do anything, by design
				if got := Allowed(role, a); got != want {
					t.Errorf("Allowed(%q, %q) = %v, want %v", role, a, got, want)
				}
			})
		}
	}
}

func TestActor(t *testing.T) {
	for _, c := range []struct {
		name string
		tok  *identity.Token
		want string
	}{
		{"nil", nil, "anonymous"},
		{"unnamed", &identity.Token{ID: "0123456789abcdef"}, "token:0123456789abcdef"},
		{"named", &identity.Token{ID: "0123456789abcdef", Name: "ci"}, "token:0123456789abcdef(ci)"},
	} {
		if got := Actor(c.tok); got != c.want {
			t.Errorf("%s: Actor = %q, want %q", c.name, got, c.want)
		}
	}
}
