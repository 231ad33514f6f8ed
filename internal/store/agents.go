package store

import (
	"context"
	"fmt"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
)

// JoinToken is a single-use, short-lived enrolment credential for sigil
// agent. Only a hash of its secret is stored. It binds the names and the
// profile the enrolling machine may obtain.
type JoinToken struct {
	ID         string    `json:"id"`
	SecretHash []byte    `json:"-"`
	Profile    string    `json:"profile"`
	Names      []string  `json:"names"` // Names[0] is the machine name
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	UsedAt     time.Time `json:"used_at,omitzero"`
	UsedBy     string    `json:"used_by,omitempty"` // serial of the certificate the enrolment issued
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// MachineState is whether an enrolled machine may still renew.
type MachineState string

const (
	MachineActive   MachineState = "active"
	MachineDisabled MachineState = "disabled"
)

// Machine is an agent-enrolled machine identity.
type Machine struct {
	Name          string          `json:"name"`
	Profile       string          `json:"profile"`
	Names         []string        `json:"names"`       // what its certificates may name
	Attestation   string          `json:"attestation"` // how it proved who it is: "join_token"
	JoinTokenID   string          `json:"join_token_id,omitempty"`
	State         MachineState    `json:"state"`
	CurrentSerial identity.Serial `json:"current_serial,omitempty"`
	// RenewedBy is the certificate that authenticated the renewal that
	// issued CurrentSerial. Besides the current certificate only it may
	// renew: an answer lost in transit leaves the agent holding it.
	RenewedBy  identity.Serial `json:"renewed_by,omitempty"`
	FirstSeen  time.Time       `json:"first_seen"`
	LastSeen   time.Time       `json:"last_seen"`
	DisabledAt time.Time       `json:"disabled_at,omitzero"`
}

// ErrMachineDisabled: the machine is disabled. errors.Is(err, ErrConflict)
// holds for it too.
var ErrMachineDisabled = fmt.Errorf("%w: machine is disabled", ErrConflict)

// AgentTx is the write side for machines enrolled by sigil agent and their
// single-use join tokens.
type AgentTx interface {
	// InsertJoinToken stores a new join token; ErrConflict if the ID exists.
	InsertJoinToken(ctx context.Context, t *JoinToken) error
	// ConsumeJoinToken marks a token used by usedBy at at, atomically: only
	// one transaction can consume a token. ErrNotFound for an unknown ID;
	// ErrConflict if it is already used, revoked, or expired at at.
	ConsumeJoinToken(ctx context.Context, id, usedBy string, at time.Time) error
	// RevokeJoinToken marks a token revoked, keeping the first revocation
	// time; ErrNotFound if absent.
	RevokeJoinToken(ctx context.Context, id string, at time.Time) error

	// PutMachine creates or replaces a machine (an enrolment starts afresh).
	PutMachine(ctx context.Context, m *Machine) error
	// SetMachineCert records a machine's newest certificate, the certificate
	// that authenticated its renewal (renewedBy) and its last contact, as a
	// compare-and-swap: only while it is active and its current serial is
	// still prev, so of two transactions replacing the same certificate only
	// one changes the row. ErrNotFound if absent; ErrMachineDisabled (which
	// is also ErrConflict) if disabled; ErrConflict if the current serial is
	// no longer prev.
	SetMachineCert(ctx context.Context, name string, prev, serial, renewedBy identity.Serial, at time.Time) error
	// ConfirmMachineCert clears RenewedBy while serial is still the
	// machine's current certificate: the agent has used it, so no answer
	// was lost and the certificate before it may no longer renew. A no-op
	// otherwise.
	ConfirmMachineCert(ctx context.Context, name string, serial identity.Serial) error
	// TouchMachine moves LastSeen forward (never back); ErrNotFound if absent.
	TouchMachine(ctx context.Context, name string, at time.Time) error
	// DisableMachine moves a machine to disabled, keeping the first
	// DisabledAt; ErrNotFound if absent.
	DisableMachine(ctx context.Context, name string, at time.Time) error
}

// AgentReader is the read side for machines enrolled by sigil agent and
// their single-use join tokens.
type AgentReader interface {
	// GetJoinToken returns ErrNotFound for an unknown ID.
	GetJoinToken(ctx context.Context, id string) (*JoinToken, error)
	// ListJoinTokens orders by CreatedAt, then ID.
	ListJoinTokens(ctx context.Context) ([]*JoinToken, error)
	// GetMachine returns ErrNotFound for an unknown name.
	GetMachine(ctx context.Context, name string) (*Machine, error)
	// ListMachines orders by name.
	ListMachines(ctx context.Context) ([]*Machine, error)
}
