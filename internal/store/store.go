// Package store defines Sigil's persistence contract. Implementations live in
// sub-packages (sqlite, later postgres) and all pass storetest.Run.
//
// Every state change happens inside Update, as one transaction that also
// appends its audit event: either both are committed or neither is.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/identity"
)

// Errors every implementation returns (wrapped) so callers can test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique key already exists, or a state transition is not
	// allowed from the record's current state (e.g. revoking a planned certificate).
	ErrConflict = errors.New("conflict")
)

// Store is the full persistence interface. Consumers should depend on the
// narrowest subset they need. Implementations MUST be safe for concurrent use
// and honour context cancellation.
type Store interface {
	Reader
	// Update runs fn in one read-write transaction and commits it if fn returns
	// nil. Writes made through tx are invisible to other callers until commit.
	// The Tx must not be used after fn returns.
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// Ping reports whether the database is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// Tx is the write side of a transaction.
type Tx interface {
	// Each domain's writes are declared in its own file (agents.go, …).
	AgentTx
	InventoryTx
	ACMETx
	AssessTx

	// AppendAudit seals e (assigning Seq, PrevHash, Hash via e.Seal) after the
	// current head of the chain and inserts it. Errors are wrapped with
	// audit.ErrUnavailable.
	AppendAudit(ctx context.Context, e *audit.Event) error
	// ImportAuditEvent inserts an event sealed elsewhere (by another store)
	// verbatim, keeping its Seq, Time, PrevHash and Hash, and moves the head
	// to it. It refuses (an error wrapping audit.ErrUnavailable) unless e
	// extends the current head exactly: e.Seq is head+1, e.PrevHash is the
	// head's hash and e.Hash is e.ComputeHash(e.PrevHash), so an import can
	// never leave a broken chain.
	ImportAuditEvent(ctx context.Context, e *audit.Event) error

	// InsertCertificate stores a new certificate record (normally StatusPlanned
	// with TBS set). ErrConflict if the serial exists. The record is stored
	// exactly as given, in any status and with every field (DER, issue and
	// revocation data), which is what a store-to-store copy relies on.
	InsertCertificate(ctx context.Context, c *identity.Certificate) error
	// MarkIssued moves a planned certificate to issued, storing its DER and
	// fingerprint and dropping the planned to-be-signed bytes (the DER holds
	// them; keeping both made every issued row half again as large).
	// ErrNotFound for an unknown serial; ErrConflict if not planned.
	MarkIssued(ctx context.Context, serial identity.Serial, der []byte, fingerprint string, issuedAt time.Time) error
	// Revoke moves an issued certificate to revoked. ErrNotFound for an unknown
	// serial; ErrConflict if it is not in the issued state (planned or already revoked).
	Revoke(ctx context.Context, serial identity.Serial, reason identity.RevocationReason, at time.Time) error

	// PutProfile creates or replaces a profile document (JSON).
	PutProfile(ctx context.Context, p *Profile) error
	// DeleteProfile removes a profile; ErrNotFound if absent.
	DeleteProfile(ctx context.Context, name string) error

	// InsertToken stores a new API token; ErrConflict if the ID exists.
	InsertToken(ctx context.Context, t *identity.Token) error
	// RevokeToken marks a token revoked; ErrNotFound if absent.
	RevokeToken(ctx context.Context, id string, at time.Time) error

	// PutIssuer creates or replaces an issuer record.
	PutIssuer(ctx context.Context, i *Issuer) error

	// InsertCRL stores a newly signed CRL. Its Number must be greater than any
	// stored for the issuer (ErrConflict otherwise).
	InsertCRL(ctx context.Context, c *CRL) error
	// NextCRLNumber returns 1 + the highest CRL number stored for the issuer.
	NextCRLNumber(ctx context.Context, issuerID string) (int64, error)
}

// Reader is the read side, usable outside transactions.
type Reader interface {
	AgentReader
	InventoryReader
	ACMEReader
	AssessReader

	// GetCertificate returns ErrNotFound for an unknown serial.
	GetCertificate(ctx context.Context, serial identity.Serial) (*identity.Certificate, error)
	// ListCertificates returns records ordered by CreatedAt descending, then serial.
	ListCertificates(ctx context.Context, f CertFilter) ([]*identity.Certificate, error)
	// RevokedCertificates returns revoked certificates of an issuer whose
	// NotAfter is after notAfterSince, for CRL generation, ordered by serial.
	RevokedCertificates(ctx context.Context, issuerID string, notAfterSince time.Time) ([]RevokedEntry, error)

	GetProfile(ctx context.Context, name string) (*Profile, error)
	ListProfiles(ctx context.Context) ([]*Profile, error)

	GetToken(ctx context.Context, id string) (*identity.Token, error)
	ListTokens(ctx context.Context) ([]*identity.Token, error)

	GetIssuer(ctx context.Context, id string) (*Issuer, error)
	ListIssuers(ctx context.Context) ([]*Issuer, error)

	// LatestCRL returns the highest-numbered CRL of an issuer; ErrNotFound if none.
	LatestCRL(ctx context.Context, issuerID string) (*CRL, error)
	// ListCRLs returns every stored CRL of an issuer (of all issuers when
	// issuerID is empty), ordered by issuer ID, then number ascending.
	ListCRLs(ctx context.Context, issuerID string) ([]*CRL, error)

	// ListAudit returns events matching f in ascending Seq order.
	ListAudit(ctx context.Context, f AuditFilter) ([]*audit.Event, error)
	// WalkAudit calls fn for every event in ascending Seq order, stopping at
	// the first error fn returns (which WalkAudit returns).
	WalkAudit(ctx context.Context, fn func(*audit.Event) error) error
	// AuditHead returns the Seq and Hash of the newest event as recorded
	// separately from the events (0 and audit.GenesisHash when empty).
	AuditHead(ctx context.Context) (int64, string, error)
}

// CertFilter selects certificates. Zero fields do not filter.
type CertFilter struct {
	Serials        []identity.Serial // any of these; at most 500
	Status         identity.CertStatus
	Profile        string
	IssuerID       string
	NotAfterBefore time.Time // expiring: NotAfter < this
	NotAfterAfter  time.Time // still valid at: NotAfter > this
	Limit          int       // 0 means no limit
}

// RevokedEntry is one CRL entry.
type RevokedEntry struct {
	Serial    identity.Serial
	RevokedAt time.Time
	Reason    identity.RevocationReason
}

// Profile is a stored policy profile; Doc is its JSON document, decoded by
// the policy package.
type Profile struct {
	Name      string
	Doc       []byte
	UpdatedAt time.Time
}

// Issuer is a CA certificate that signs certificates (or, for a root, other
// CAs). The private key is referenced by KeyRef, never stored here.
type Issuer struct {
	ID        string // stable short name, e.g. "root", "default"
	CertDER   []byte
	KeyRef    string // backend-specific reference, e.g. a file name under the data dir
	ParentID  string // empty for a root
	IsDefault bool   // the default issuing intermediate
	CreatedAt time.Time
}

// CRL is a signed certificate revocation list.
type CRL struct {
	IssuerID   string
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	DER        []byte
}

// AuditFilter selects audit events. Zero fields do not filter.
type AuditFilter struct {
	Actor    string
	Action   string // exact, or a prefix ending in "." (e.g. "cert.")
	Since    time.Time
	Until    time.Time
	AfterSeq int64
	Limit    int
}
