package identity

import (
	"fmt"
	"slices"
	"time"
)

// Role is what an API token may do.
type Role string

const (
	RoleAdmin    Role = "admin"    // everything
	RoleOperator Role = "operator" // issue and revoke within profiles, read certificates
	RoleAuditor  Role = "auditor"  // read-only, including the audit log
)

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleOperator, RoleAuditor:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (use admin, operator or auditor)", s)
}

// Token is an API token as stored: only a hash of its secret is kept.
type Token struct {
	ID         string    `json:"id"`
	Name       string    `json:"name,omitempty"`
	Role       Role      `json:"role"`
	Profiles   []string  `json:"profiles,omitempty"` // operator scope; empty means all profiles
	SecretHash []byte    `json:"-"`
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"` // zero: never
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// Active reports whether the token may be used at now.
func (t *Token) Active(now time.Time) bool {
	if !t.RevokedAt.IsZero() {
		return false
	}
	return t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt)
}

// AllowsProfile reports whether the token's scope covers a profile.
func (t *Token) AllowsProfile(name string) bool {
	return len(t.Profiles) == 0 || slices.Contains(t.Profiles, name)
}
