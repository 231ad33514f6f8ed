package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// Join tokens.

const joinTokenColumns = "id, secret_hash, profile, names, created_by, created_at, expires_at, used_at, used_by, revoked_at"

func (t *txn) InsertJoinToken(ctx context.Context, j *store.JoinToken) error {
	names, err := jsonText(j.Names, len(j.Names))
	if err != nil {
		return fmt.Errorf("sqlite: encoding join token names: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, "INSERT INTO join_tokens ("+joinTokenColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		j.ID, blob(j.SecretHash), j.Profile, names, j.CreatedBy,
		micros(j.CreatedAt), micros(j.ExpiresAt), micros(j.UsedAt), j.UsedBy, micros(j.RevokedAt))
	if err != nil {
		return writeErr(err, "join token "+j.ID)
	}
	return nil
}

// ConsumeJoinToken is one conditional UPDATE: of two transactions racing
// for the same token, only one changes a row.
func (t *txn) ConsumeJoinToken(ctx context.Context, id, usedBy string, at time.Time) error {
	n, err := affected(t.tx.ExecContext(ctx, `UPDATE join_tokens SET used_at = ?, used_by = ?
		WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`,
		micros(at), usedBy, id, at.UnixMicro()))
	if err != nil {
		return writeErr(err, "join token "+id)
	}
	if n == 0 {
		var one int
		if err := t.tx.QueryRowContext(ctx, "SELECT 1 FROM join_tokens WHERE id = ?", id).Scan(&one); err != nil {
			return readErr(err, "join token "+id)
		}
		return fmt.Errorf("%w: join token %s is used, revoked or expired", store.ErrConflict, id)
	}
	return nil
}

func (t *txn) RevokeJoinToken(ctx context.Context, id string, at time.Time) error {
	n, err := affected(t.tx.ExecContext(ctx,
		"UPDATE join_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", micros(at), id))
	if err != nil {
		return writeErr(err, "join token "+id)
	}
	if n == 0 {
		return fmt.Errorf("%w: join token %s", store.ErrNotFound, id)
	}
	return nil
}

func scanJoinToken(sc scanner) (*store.JoinToken, error) {
	var (
		j                               store.JoinToken
		names                           sql.NullString
		created, expires, used, revoked sql.NullInt64
	)
	if err := sc.Scan(&j.ID, &j.SecretHash, &j.Profile, &names, &j.CreatedBy, &created, &expires, &used, &j.UsedBy, &revoked); err != nil {
		return nil, err
	}
	if err := fromJSON(names, &j.Names); err != nil {
		return nil, fmt.Errorf("decoding join token %s: %w", j.ID, err)
	}
	j.SecretHash = nilIfEmpty(j.SecretHash)
	j.CreatedAt, j.ExpiresAt, j.UsedAt, j.RevokedAt = fromMicros(created), fromMicros(expires), fromMicros(used), fromMicros(revoked)
	return &j, nil
}

func (s *Store) GetJoinToken(ctx context.Context, id string) (*store.JoinToken, error) {
	j, err := scanJoinToken(s.r.QueryRowContext(ctx, "SELECT "+joinTokenColumns+" FROM join_tokens WHERE id = ?", id))
	if err != nil {
		return nil, readErr(err, "join token "+id)
	}
	return j, nil
}

func (s *Store) ListJoinTokens(ctx context.Context) ([]*store.JoinToken, error) {
	return queryAll(ctx, s.r, "join tokens", "SELECT "+joinTokenColumns+" FROM join_tokens ORDER BY created_at, id", scanJoinToken)
}

// Machines.

const machineColumns = "name, profile, names, attestation, join_token_id, state, current_serial, first_seen, last_seen, disabled_at, renewed_by"

func (t *txn) PutMachine(ctx context.Context, m *store.Machine) error {
	names, err := jsonText(m.Names, len(m.Names))
	if err != nil {
		return fmt.Errorf("sqlite: encoding machine names: %w", err)
	}
	_, err = t.tx.ExecContext(ctx, "INSERT OR REPLACE INTO machines ("+machineColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		m.Name, m.Profile, names, m.Attestation, m.JoinTokenID, string(m.State), string(m.CurrentSerial),
		micros(m.FirstSeen), micros(m.LastSeen), micros(m.DisabledAt), string(m.RenewedBy))
	if err != nil {
		return writeErr(err, "machine "+m.Name)
	}
	return nil
}

func (t *txn) SetMachineCert(ctx context.Context, name string, prev, serial, renewedBy identity.Serial, at time.Time) error {
	n, err := affected(t.tx.ExecContext(ctx, `UPDATE machines SET current_serial = ?, renewed_by = ?, last_seen = MAX(COALESCE(last_seen, 0), ?)
		WHERE name = ? AND state = 'active' AND current_serial = ?`, string(serial), string(renewedBy), at.UnixMicro(), name, string(prev)))
	if err != nil {
		return writeErr(err, "machine "+name)
	}
	if n == 0 {
		var state, cur string
		if err := t.tx.QueryRowContext(ctx, "SELECT state, current_serial FROM machines WHERE name = ?", name).Scan(&state, &cur); err != nil {
			return readErr(err, "machine "+name)
		}
		return machineCASErr(name, state, cur, prev)
	}
	return nil
}

// machineCASErr explains why SetMachineCert changed nothing.
func machineCASErr(name, state, cur string, prev identity.Serial) error {
	if store.MachineState(state) != store.MachineActive {
		return fmt.Errorf("%w: %s", store.ErrMachineDisabled, name)
	}
	return fmt.Errorf("%w: machine %s: its current certificate is %s, no longer %s", store.ErrConflict, name, cur, prev)
}

func (t *txn) ConfirmMachineCert(ctx context.Context, name string, serial identity.Serial) error {
	if _, err := t.tx.ExecContext(ctx, "UPDATE machines SET renewed_by = '' WHERE name = ? AND current_serial = ? AND renewed_by <> ''", name, string(serial)); err != nil {
		return writeErr(err, "machine "+name)
	}
	return nil
}

func (t *txn) TouchMachine(ctx context.Context, name string, at time.Time) error {
	n, err := affected(t.tx.ExecContext(ctx, "UPDATE machines SET last_seen = MAX(COALESCE(last_seen, 0), ?) WHERE name = ?", at.UnixMicro(), name))
	if err != nil {
		return writeErr(err, "machine "+name)
	}
	if n == 0 {
		return fmt.Errorf("%w: machine %s", store.ErrNotFound, name)
	}
	return nil
}

func (t *txn) DisableMachine(ctx context.Context, name string, at time.Time) error {
	n, err := affected(t.tx.ExecContext(ctx, `UPDATE machines SET state = 'disabled', disabled_at = COALESCE(disabled_at, ?)
		WHERE name = ?`, micros(at), name))
	if err != nil {
		return writeErr(err, "machine "+name)
	}
	if n == 0 {
		return fmt.Errorf("%w: machine %s", store.ErrNotFound, name)
	}
	return nil
}

func scanMachine(sc scanner) (*store.Machine, error) {
	var (
		m                    store.Machine
		names                sql.NullString
		state, serial, by    string
		first, last, disable sql.NullInt64
	)
	if err := sc.Scan(&m.Name, &m.Profile, &names, &m.Attestation, &m.JoinTokenID, &state, &serial, &first, &last, &disable, &by); err != nil {
		return nil, err
	}
	if err := fromJSON(names, &m.Names); err != nil {
		return nil, fmt.Errorf("decoding machine %s: %w", m.Name, err)
	}
	m.State, m.CurrentSerial, m.RenewedBy = store.MachineState(state), identity.Serial(serial), identity.Serial(by)
	m.FirstSeen, m.LastSeen, m.DisabledAt = fromMicros(first), fromMicros(last), fromMicros(disable)
	return &m, nil
}

func (s *Store) GetMachine(ctx context.Context, name string) (*store.Machine, error) {
	m, err := scanMachine(s.stmts.getMachine.QueryRowContext(ctx, name))
	if err != nil {
		return nil, readErr(err, "machine "+name)
	}
	return m, nil
}

func (s *Store) ListMachines(ctx context.Context) ([]*store.Machine, error) {
	return queryAll(ctx, s.r, "machines", "SELECT "+machineColumns+" FROM machines ORDER BY name", scanMachine)
}
