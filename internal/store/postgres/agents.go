package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// Join tokens.

const joinTokenColumns = "id, secret_hash, profile, names, created_by, created_at, expires_at, used_at, used_by, revoked_at"

// InsertJoinToken reports a duplicate from the row count (see InsertToken).
func (t *txn) InsertJoinToken(ctx context.Context, j *store.JoinToken) error {
	tag, err := t.tx.Exec(ctx, "INSERT INTO join_tokens ("+joinTokenColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
		j.ID, blob(j.SecretHash), j.Profile, textArray(j.Names), j.CreatedBy,
		ts(j.CreatedAt), ts(j.ExpiresAt), ts(j.UsedAt), j.UsedBy, ts(j.RevokedAt))
	if err != nil {
		return writeErr(err, "join token "+j.ID)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: join token %s already exists", store.ErrConflict, j.ID)
	}
	return nil
}

// ConsumeJoinToken is one conditional UPDATE: under READ COMMITTED a racing
// transaction waits for the row lock, re-checks the condition and changes
// nothing, so only one consumes the token.
func (t *txn) ConsumeJoinToken(ctx context.Context, id, usedBy string, at time.Time) error {
	tag, err := t.tx.Exec(ctx, `UPDATE join_tokens SET used_at = $1, used_by = $2
		WHERE id = $3 AND used_at IS NULL AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)`,
		ts(at), usedBy, id)
	if err != nil {
		return writeErr(err, "join token "+id)
	}
	if tag.RowsAffected() == 0 {
		var one int
		if err := t.tx.QueryRow(ctx, "SELECT 1 FROM join_tokens WHERE id = $1", id).Scan(&one); err != nil {
			return readErr(err, "join token "+id)
		}
		return fmt.Errorf("%w: join token %s is used, revoked or expired", store.ErrConflict, id)
	}
	return nil
}

func (t *txn) RevokeJoinToken(ctx context.Context, id string, at time.Time) error {
	tag, err := t.tx.Exec(ctx, "UPDATE join_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2", ts(at), id)
	if err != nil {
		return writeErr(err, "join token "+id)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: join token %s", store.ErrNotFound, id)
	}
	return nil
}

func scanJoinToken(row pgx.Row) (*store.JoinToken, error) {
	var (
		j                               store.JoinToken
		created, expires, used, revoked pgtype.Timestamptz
	)
	if err := row.Scan(&j.ID, &j.SecretHash, &j.Profile, &j.Names, &j.CreatedBy, &created, &expires, &used, &j.UsedBy, &revoked); err != nil {
		return nil, err
	}
	j.SecretHash, j.Names = nilIfEmpty(j.SecretHash), nilIfEmpty(j.Names)
	j.CreatedAt, j.ExpiresAt, j.UsedAt, j.RevokedAt = fromTS(created), fromTS(expires), fromTS(used), fromTS(revoked)
	return &j, nil
}

func (s *Store) GetJoinToken(ctx context.Context, id string) (*store.JoinToken, error) {
	j, err := scanJoinToken(s.pool.QueryRow(ctx, "SELECT "+joinTokenColumns+" FROM join_tokens WHERE id = $1", id))
	if err != nil {
		return nil, readErr(err, "join token "+id)
	}
	return j, nil
}

func (s *Store) ListJoinTokens(ctx context.Context) ([]*store.JoinToken, error) {
	return queryAll(ctx, s.pool, "join tokens", "SELECT "+joinTokenColumns+" FROM join_tokens ORDER BY created_at NULLS FIRST, id", scanJoinToken)
}

// Machines.

const machineColumns = "name, profile, names, attestation, join_token_id, state, current_serial, first_seen, last_seen, disabled_at, renewed_by"

func (t *txn) PutMachine(ctx context.Context, m *store.Machine) error {
	_, err := t.tx.Exec(ctx, "INSERT INTO machines ("+machineColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (name) DO UPDATE SET profile = excluded.profile, names = excluded.names,
			attestation = excluded.attestation, join_token_id = excluded.join_token_id, state = excluded.state,
			current_serial = excluded.current_serial, first_seen = excluded.first_seen,
			last_seen = excluded.last_seen, disabled_at = excluded.disabled_at, renewed_by = excluded.renewed_by`,
		m.Name, m.Profile, textArray(m.Names), m.Attestation, m.JoinTokenID, string(m.State), string(m.CurrentSerial),
		ts(m.FirstSeen), ts(m.LastSeen), ts(m.DisabledAt), string(m.RenewedBy))
	if err != nil {
		return writeErr(err, "machine "+m.Name)
	}
	return nil
}

func (t *txn) SetMachineCert(ctx context.Context, name string, prev, serial, renewedBy identity.Serial, at time.Time) error {
	// Under READ COMMITTED the loser of a race re-evaluates the WHERE clause
	// against the winner's row and changes nothing.
	tag, err := t.tx.Exec(ctx, `UPDATE machines SET current_serial = $1, renewed_by = $5, last_seen = GREATEST(last_seen, $2)
		WHERE name = $3 AND state = 'active' AND current_serial = $4`, string(serial), ts(at), name, string(prev), string(renewedBy))
	if err != nil {
		return writeErr(err, "machine "+name)
	}
	if tag.RowsAffected() == 0 {
		var state, cur string
		if err := t.tx.QueryRow(ctx, "SELECT state, current_serial FROM machines WHERE name = $1", name).Scan(&state, &cur); err != nil {
			return readErr(err, "machine "+name)
		}
		if store.MachineState(state) != store.MachineActive {
			return fmt.Errorf("%w: %s", store.ErrMachineDisabled, name)
		}
		return fmt.Errorf("%w: machine %s: its current certificate is %s, no longer %s", store.ErrConflict, name, cur, prev)
	}
	return nil
}

func (t *txn) ConfirmMachineCert(ctx context.Context, name string, serial identity.Serial) error {
	if _, err := t.tx.Exec(ctx, "UPDATE machines SET renewed_by = '' WHERE name = $1 AND current_serial = $2 AND renewed_by <> ''", name, string(serial)); err != nil {
		return writeErr(err, "machine "+name)
	}
	return nil
}

func (t *txn) TouchMachine(ctx context.Context, name string, at time.Time) error {
	tag, err := t.tx.Exec(ctx, "UPDATE machines SET last_seen = GREATEST(last_seen, $1) WHERE name = $2", ts(at), name)
	if err != nil {
		return writeErr(err, "machine "+name)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: machine %s", store.ErrNotFound, name)
	}
	return nil
}

func (t *txn) DisableMachine(ctx context.Context, name string, at time.Time) error {
	tag, err := t.tx.Exec(ctx, "UPDATE machines SET state = 'disabled', disabled_at = COALESCE(disabled_at, $1) WHERE name = $2", ts(at), name)
	if err != nil {
		return writeErr(err, "machine "+name)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: machine %s", store.ErrNotFound, name)
	}
	return nil
}

func scanMachine(row pgx.Row) (*store.Machine, error) {
	var (
		m                    store.Machine
		state, serial, by    string
		first, last, disable pgtype.Timestamptz
	)
	if err := row.Scan(&m.Name, &m.Profile, &m.Names, &m.Attestation, &m.JoinTokenID, &state, &serial, &first, &last, &disable, &by); err != nil {
		return nil, err
	}
	m.Names = nilIfEmpty(m.Names)
	m.State, m.CurrentSerial, m.RenewedBy = store.MachineState(state), identity.Serial(serial), identity.Serial(by)
	m.FirstSeen, m.LastSeen, m.DisabledAt = fromTS(first), fromTS(last), fromTS(disable)
	return &m, nil
}

func (s *Store) GetMachine(ctx context.Context, name string) (*store.Machine, error) {
	m, err := scanMachine(s.pool.QueryRow(ctx, "SELECT "+machineColumns+" FROM machines WHERE name = $1", name))
	if err != nil {
		return nil, readErr(err, "machine "+name)
	}
	return m, nil
}

func (s *Store) ListMachines(ctx context.Context) ([]*store.Machine, error) {
	return queryAll(ctx, s.pool, "machines", "SELECT "+machineColumns+" FROM machines ORDER BY name", scanMachine)
}
