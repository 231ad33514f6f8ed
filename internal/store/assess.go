package store

import (
	"context"
	"time"
)

// AssessTx is the write side for risk findings, webhook subscriptions and their deliveries.
type AssessTx interface {
	// UpsertFinding stores a finding by ID. A new finding, or one that was
	// resolved, gets FirstSeen = f.LastSeen and ResolvedAt cleared (a
	// reopened finding is a new occurrence); an open one keeps FirstSeen and
	// takes the other fields. It reports whether the finding was opened.
	// Callers never refresh a finding at the very instant it was first
	// seen (a backend may then report it as opened).
	UpsertFinding(ctx context.Context, f *Finding) (opened bool, err error)
	// UpsertFindings is UpsertFinding for many findings with distinct IDs
	// (a findings run writes up to one per identity and rule), in a few
	// statements; opened[i] is UpsertFinding's result for fs[i].
	UpsertFindings(ctx context.Context, fs []*Finding) (opened []bool, err error)
	// ImportFinding stores a finding exactly as given (FirstSeen, LastSeen,
	// ResolvedAt), for a store-to-store copy; ErrConflict if the ID exists.
	ImportFinding(ctx context.Context, f *Finding) error
	// ResolveFinding marks an open finding resolved at at; ErrNotFound if it
	// is not open.
	ResolveFinding(ctx context.Context, id string, at time.Time) error

	// InsertWebhook stores a subscription; ErrConflict if the ID exists.
	InsertWebhook(ctx context.Context, w *Webhook) error
	// DeleteWebhook removes a subscription and its deliveries; ErrNotFound if absent.
	DeleteWebhook(ctx context.Context, id string) error
	// EnqueueDelivery adds a pending delivery (assigning d.ID) unless one
	// with the same WebhookID and DedupKey exists, in which case it returns
	// false and changes nothing: an event is delivered once per key.
	EnqueueDelivery(ctx context.Context, d *Delivery) (bool, error)
	// UpdateDelivery stores a delivery's Status, Attempts, NextAttemptAt,
	// LastError, LastStatus and DeliveredAt; ErrNotFound for an unknown ID.
	UpdateDelivery(ctx context.Context, d *Delivery) error

	// PutAuditSinkState creates or replaces the state of a live audit sink.
	PutAuditSinkState(ctx context.Context, s *AuditSinkState) error
}

// AssessReader is the read side for risk findings, webhook subscriptions and their deliveries.
type AssessReader interface {
	// ListFindings returns findings matching f, ordered by severity (highest
	// first), then FirstSeen, then ID.
	ListFindings(ctx context.Context, f FindingFilter) ([]*Finding, error)
	// CountOpenFindings returns the number of open findings by severity.
	CountOpenFindings(ctx context.Context) (map[string]int, error)
	// MonitorStats counts certificates and inventory identities for
	// /metrics, reading the certificates and inventory tables in one pass
	// each (GROUP BY), never row by row.
	MonitorStats(ctx context.Context, now time.Time) (*MonitorStats, error)
	// GetWebhook returns ErrNotFound for an unknown ID.
	GetWebhook(ctx context.Context, id string) (*Webhook, error)
	// ListWebhooks returns every subscription ordered by ID.
	ListWebhooks(ctx context.Context) ([]*Webhook, error)
	// ListDeliveries returns deliveries matching f ordered by ID.
	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]*Delivery, error)
	// ListAuditSinkStates returns the state of every live audit sink, by name.
	ListAuditSinkStates(ctx context.Context) ([]*AuditSinkState, error)
}

// Finding is one risk found by a rule about one subject (an identity, a
// location, a key), open from FirstSeen until ResolvedAt.
type Finding struct {
	ID       string // stable: rule + subject (+ qualifier), so a rerun updates it
	Rule     string
	Severity string // info, low, medium, high, critical
	// Rank orders severities (info 0 … critical 4); filters compare it.
	Rank int
	// Subject is the identity the finding is about: the certificate's
	// SHA-256 fingerprint (or a key's SPKI fingerprint for key findings).
	Subject    string
	Serial     string // the Sigil serial when the subject is a Sigil certificate
	Location   string // where it was seen, when the rule is about a location
	Message    string
	FirstSeen  time.Time
	LastSeen   time.Time
	ResolvedAt time.Time
}

// FindingFilter selects findings. Zero fields do not filter.
type FindingFilter struct {
	Subject         string
	Subjects        []string // any of these (with Subject, either); at most 500
	Rule            string
	MinRank         int
	IncludeResolved bool // otherwise only open findings
	Limit           int
}

// Webhook is a notification subscription. The HMAC secret is stored sealed
// under the KEK, never in clear.
type Webhook struct {
	ID           string
	URL          string
	Events       []string // e.g. expiring, revoked, finding.high
	SecretSealed []byte
	CreatedBy    string
	CreatedAt    time.Time
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead" // gave up after the last attempt: a dead letter
)

// Delivery is one event to deliver to one webhook.
type Delivery struct {
	ID            int64
	WebhookID     string
	Event         string // event type, e.g. expiring
	DedupKey      string // one delivery per webhook and key
	Payload       []byte // the JSON body, signed at each attempt
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	LastStatus    int // HTTP status of the last attempt, 0 if none
	CreatedAt     time.Time
	DeliveredAt   time.Time
}

// DeliveryFilter selects deliveries. Zero fields do not filter.
type DeliveryFilter struct {
	WebhookID string
	Status    string
	DueBy     time.Time // NextAttemptAt <= DueBy
	Limit     int
}

// AuditSinkState is where a live audit sink is in the audit log, shared by
// every server so that the one holding the background lease resumes where
// another stopped, and every server knows whether a required sink works.
type AuditSinkState struct {
	Sink      string // the sink's name (its URL without credentials)
	Seq       int64  // the last event written to the sink
	LastError string // empty while the sink works
	UpdatedAt time.Time
}

// MonitorStats are the counts behind the identity gauges of /metrics.
type MonitorStats struct {
	// Certificates by status and profile, with the earliest NotAfter after
	// now of each group (zero when none).
	Certificates []CertStat
	// Inventory identities by kind and source, with the earliest NotAfter
	// after now.
	Inventory []InventoryStat
}

// CertStat is one (status, profile) group of Sigil certificates.
type CertStat struct {
	Status, Profile string
	Count           int
	EarliestExpiry  time.Time
}

// InventoryStat is one (kind, source) group of inventory identities.
type InventoryStat struct {
	Kind, Source   string
	Count          int
	EarliestExpiry time.Time
}
