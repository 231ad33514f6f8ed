package store

import (
	"context"
	"time"
)

// ACMETx is the write side for ACME (RFC 8555) accounts, orders, authorizations, challenges and EAB keys.
type ACMETx interface {
	// PutACMEProfile creates or replaces the ACME settings of a profile.
	PutACMEProfile(ctx context.Context, p *ACMEProfile) error
	// InsertACMESecret stores a sealed server secret (e.g. the nonce HMAC
	// key) under name; ErrConflict if one exists (another replica won).
	InsertACMESecret(ctx context.Context, name string, sealed []byte) error
	// InsertEABKey stores a new External Account Binding key; ErrConflict if the KID exists.
	InsertEABKey(ctx context.Context, k *EABKey) error
	// RevokeEABKey marks a key revoked; ErrNotFound if absent. Revoking twice keeps the first time.
	RevokeEABKey(ctx context.Context, kid string, at time.Time) error
	// BindEABKey records the account a key was used for. ErrNotFound if
	// absent; ErrConflict if it is revoked or already bound: a key binds once.
	BindEABKey(ctx context.Context, kid, accountID string) error
	// InsertACMEAccount stores a new account; ErrConflict if the ID or the
	// (profile, key thumbprint) pair exists.
	InsertACMEAccount(ctx context.Context, a *ACMEAccount) error
	// UpdateACMEAccount replaces status, contact, key and thumbprint of an
	// account; ErrNotFound if absent; ErrConflict if the new thumbprint is
	// another account's in the same profile.
	UpdateACMEAccount(ctx context.Context, a *ACMEAccount) error
	// InsertACMEOrder stores a new order with Version 1; ErrConflict if the
	// ID exists or another order already replaces the same certificate.
	InsertACMEOrder(ctx context.Context, o *ACMEOrder) error
	// UpdateACMEOrder replaces status, expiry, serial and document of an order
	// whose stored Version is o.Version, and increments o.Version. ErrNotFound
	// if absent; ErrConflict if another writer updated it first.
	UpdateACMEOrder(ctx context.Context, o *ACMEOrder) error
	// UseACMENonce records a nonce as spent until expires; ErrConflict if it
	// was spent already (a replay).
	UseACMENonce(ctx context.Context, nonce string, expires time.Time) error
	// PurgeACMENonces forgets spent nonces that expired before t.
	PurgeACMENonces(ctx context.Context, before time.Time) (int64, error)
	// TakeACMERate counts one new order against key (an account or a name)
	// in the fixed window starting at window, unless the window already
	// holds limit: then it counts nothing and returns the count, false.
	// Counting is atomic across transactions and replicas (one upsert).
	TakeACMERate(ctx context.Context, key string, window time.Time, limit int) (n int, ok bool, err error)
	// PurgeACMERates forgets windows that started before t.
	PurgeACMERates(ctx context.Context, before time.Time) (int64, error)
	// MarkRenewEarly asks ACME clients to renew a certificate now (ARI);
	// marking twice keeps the first time.
	MarkRenewEarly(ctx context.Context, serial string, at time.Time) error
}

// ACMEReader is the read side for ACME (RFC 8555) accounts, orders, authorizations, challenges and EAB keys.
type ACMEReader interface {
	// GetACMEProfile returns ErrNotFound when ACME was never enabled for the profile.
	GetACMEProfile(ctx context.Context, profile string) (*ACMEProfile, error)
	// ListACMEProfiles orders by profile name.
	ListACMEProfiles(ctx context.Context) ([]*ACMEProfile, error)
	GetACMESecret(ctx context.Context, name string) ([]byte, error)
	GetEABKey(ctx context.Context, kid string) (*EABKey, error)
	// ListEABKeys returns the keys of a profile (all when empty), by CreatedAt then KID.
	ListEABKeys(ctx context.Context, profile string) ([]*EABKey, error)
	GetACMEAccount(ctx context.Context, id string) (*ACMEAccount, error)
	// GetACMEAccountByKey finds an account by its key's RFC 7638 thumbprint.
	GetACMEAccountByKey(ctx context.Context, profile, thumbprint string) (*ACMEAccount, error)
	GetACMEOrder(ctx context.Context, id string) (*ACMEOrder, error)
	// ListACMEOrderIDs returns the IDs of an account's orders, newest first, at most limit.
	ListACMEOrderIDs(ctx context.Context, accountID string, limit int) ([]string, error)
	// ACMEOrderReplacing returns the order whose Replaces is certID; ErrNotFound if none.
	ACMEOrderReplacing(ctx context.Context, certID string) (*ACMEOrder, error)
	// RenewEarlyAt returns when a certificate was marked for early renewal;
	// ErrNotFound if it was not.
	RenewEarlyAt(ctx context.Context, serial string) (time.Time, error)
	// ListACMEAccounts returns every account, by CreatedAt then ID (store copy).
	ListACMEAccounts(ctx context.Context) ([]*ACMEAccount, error)
	// ListRenewEarly returns every early-renewal mark by serial (store copy).
	ListRenewEarly(ctx context.Context) (map[string]time.Time, error)
}

// ACMEProfile is whether (and how) a policy profile is served over ACME.
type ACMEProfile struct {
	Profile     string
	Enabled     bool
	EABRequired bool
	UpdatedAt   time.Time
}

// EABKey is an External Account Binding key. The HMAC key is needed to
// verify bindings, so it is kept sealed with the server's KEK, never hashed.
type EABKey struct {
	KID       string
	Profile   string
	Owner     string // becomes the owner of the bound account's certificates
	Sealed    []byte
	CreatedAt time.Time
	RevokedAt time.Time
	AccountID string // set once the key has bound an account
}

// ACMEAccount is an ACME account: a public key (JWK) under one profile.
type ACMEAccount struct {
	ID         string
	Profile    string
	Thumbprint string // RFC 7638 SHA-256, base64url
	JWK        []byte // the public key as JSON
	Status     string // valid, deactivated, revoked
	Contact    []string
	Owner      string
	EABKID     string
	CreatedAt  time.Time
}

// ACMEOrder is an order with its authorizations and challenges, kept as one
// JSON document (Doc, owned by the acme package) so that a challenge, its
// authorization and its order change together under one version check.
type ACMEOrder struct {
	ID        string
	AccountID string
	Profile   string
	Status    string
	Expires   time.Time
	Replaces  string // ARI certID this order replaces, or empty
	Serial    string // the issued certificate, once valid
	Doc       []byte
	Version   int64
	CreatedAt time.Time
}
