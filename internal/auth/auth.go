// Package auth issues and checks API tokens and decides what each role may do.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// tokenPrefix makes tokens recognisable to secret scanners and people.
const tokenPrefix = "sgl_"

// NewToken returns a fresh token: the plaintext to show once, and the record
// to store (which holds only a hash of the secret). The plaintext has the
// form sgl_<id>_<secret>; the id finds the record, the secret proves it.
func NewToken(role identity.Role, name string, profiles []string, ttl time.Duration, createdBy string, now time.Time) (string, *identity.Token, error) {
	idb := make([]byte, 8)
	secret := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return "", nil, err
	}
	if _, err := rand.Read(secret); err != nil {
		return "", nil, err
	}
	id := hex.EncodeToString(idb)
	sec := base64.RawURLEncoding.EncodeToString(secret)
	t := &identity.Token{
		ID: id, Name: name, Role: role, Profiles: profiles,
		SecretHash: hashSecret(sec), CreatedBy: createdBy, CreatedAt: now.UTC().Truncate(time.Microsecond),
	}
	if ttl > 0 {
		t.ExpiresAt = t.CreatedAt.Add(ttl)
	}
	return tokenPrefix + id + "_" + sec, t, nil
}

func hashSecret(secret string) []byte {
	s := sha256.Sum256([]byte(secret))
	return s[:]
}

// ErrBadToken is returned, without detail, for any token that does not
// authenticate: callers must not learn which part was wrong.
var ErrBadToken = fail.New(fail.Unauthorized, "invalid, expired or revoked token")

// TokenReader is the store access authentication needs.
type TokenReader interface {
	GetToken(ctx context.Context, id string) (*identity.Token, error)
}

// Authenticate checks a plaintext token against its stored hash in constant time.
func Authenticate(ctx context.Context, r TokenReader, plain string, now time.Time) (*identity.Token, error) {
	rest, ok := strings.CutPrefix(plain, tokenPrefix)
	if !ok {
		return nil, ErrBadToken
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 || len(secret) > 64 {
		return nil, ErrBadToken
	}
	t, err := r.GetToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, fail.Wrap(fail.Unavailable, fmt.Errorf("looking up token: %w", err))
	}
	if subtle.ConstantTimeCompare(hashSecret(secret), t.SecretHash) != 1 || !t.Active(now) {
		return nil, ErrBadToken
	}
	return t, nil
}

// Action is something a token may be allowed to do.
type Action string

const (
	CertIssue    Action = "cert.issue"
	CertRevoke   Action = "cert.revoke"
	CertRead     Action = "cert.read"
	ProfileRead  Action = "profile.read"
	ProfileWrite Action = "profile.write"
	TokenRead    Action = "token.read"
	TokenWrite   Action = "token.write"
	AuditRead    Action = "audit.read"
	CARead       Action = "ca.read"
)

var grants = map[identity.Role]map[Action]bool{
	identity.RoleOperator: {CertIssue: true, CertRevoke: true, CertRead: true, ProfileRead: true, CARead: true, FindingsRead: true},
	identity.RoleAuditor:  {CertRead: true, ProfileRead: true, TokenRead: true, AuditRead: true, CARead: true, FindingsRead: true, NotifyRead: true},
}

// Allowed reports whether a role may perform an action. Admin may do anything.
func Allowed(role identity.Role, a Action) bool {
	return role == identity.RoleAdmin || grants[role][a]
}

// Actor names a token holder in audit events.
func Actor(t *identity.Token) string {
	if t == nil {
		return "anonymous"
	}
	if t.Name != "" {
		return "token:" + t.ID + "(" + t.Name + ")"
	}
	return "token:" + t.ID
}

// TokenCache remembers token records for a short time so that every API
// request does not cost a database read. Authenticate still checks the
// secret and expiry on every call; Forget drops a token at once when this
// process revokes it, and another process's revocation is seen within ttl.
type TokenCache struct {
	r   TokenReader
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cachedToken
	gen     uint64 // bumped by Forget: a read that started before it is not cached
}

type cachedToken struct {
	t       identity.Token
	fetched time.Time
}

// NewTokenCache wraps r.
func NewTokenCache(r TokenReader, ttl time.Duration, now func() time.Time) *TokenCache {
	return &TokenCache{r: r, ttl: ttl, now: now, entries: map[string]cachedToken{}}
}

// GetToken returns a copy of the cached record, reading r when it is absent or stale.
func (c *TokenCache) GetToken(ctx context.Context, id string) (*identity.Token, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[id]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Sub(e.fetched) < c.ttl {
		return copyToken(&e.t), nil
	}
	t, err := c.r.GetToken(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.entries) > 10000 { // bound memory against many distinct tokens
		clear(c.entries)
	}
	// A Forget while we read may mean t predates a revocation: use it for
	// this request (it was read before the revocation), but do not keep it.
	if c.gen == gen {
		c.entries[id] = cachedToken{t: *copyToken(t), fetched: now}
	}
	c.mu.Unlock()
	return t, nil
}

// copyToken copies a token deeply: callers may change what they are given.
func copyToken(t *identity.Token) *identity.Token {
	c := *t
	c.Profiles = slices.Clone(t.Profiles)
	c.SecretHash = slices.Clone(t.SecretHash)
	return &c
}

// Forget drops a token from the cache.
func (c *TokenCache) Forget(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.gen++
	c.mu.Unlock()
}
