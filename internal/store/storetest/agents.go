package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

var agentTests = []test{
	{"JoinTokenRoundTrip", testJoinTokenRoundTrip},
	{"JoinTokenConsumeOnce", testJoinTokenConsumeOnce},
	{"JoinTokenConsumeRefused", testJoinTokenConsumeRefused},
	{"MachineLifecycle", testMachineLifecycle},
	{"MachineCertSwapOnce", testMachineCertSwapOnce},
}

func newJoinToken(id string, created time.Time) *store.JoinToken {
	return &store.JoinToken{
		ID: id, SecretHash: []byte{0, 1, 2, 0xff}, Profile: "web",
		Names:     []string{"web-01.prod.internal", "www.prod.internal"},
		CreatedBy: "token:ops", CreatedAt: created, ExpiresAt: created.Add(15 * time.Minute),
	}
}

func canonJoin(j *store.JoinToken) store.JoinToken {
	x := *j
	x.Names, x.SecretHash = emptyNil(x.Names), emptyNil(x.SecretHash)
	x.CreatedAt, x.ExpiresAt, x.UsedAt, x.RevokedAt = canonTime(x.CreatedAt), canonTime(x.ExpiresAt), canonTime(x.UsedAt), canonTime(x.RevokedAt)
	return x
}

func testJoinTokenRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newJoinToken("jt-a", base), newJoinToken("jt-b", base.Add(time.Second))
	b.Names = nil
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.InsertJoinToken(ctx, b); err != nil {
			return err
		}
		return tx.InsertJoinToken(ctx, a)
	})
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.InsertJoinToken(ctx, a) })
	wantErr(t, "duplicate join token", err, store.ErrConflict)
	got, err := s.GetJoinToken(ctx, "jt-a")
	if err != nil {
		t.Fatal(err)
	}
	checkTime(t, "join token CreatedAt", got.CreatedAt)
	if g, w := canonJoin(got), canonJoin(a); !reflect.DeepEqual(g, w) {
		t.Errorf("join token:\n got %+v\nwant %+v", g, w)
	}
	_, err = s.GetJoinToken(ctx, "nope")
	wantErr(t, "unknown join token", err, store.ErrNotFound)
	list, err := s.ListJoinTokens(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "jt-a" || list[1].ID != "jt-b" {
		t.Fatalf("ListJoinTokens: %v %+v", err, list)
	}
	// Revocation is idempotent and keeps its first time.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.RevokeJoinToken(ctx, "jt-a", base.Add(time.Minute))
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.RevokeJoinToken(ctx, "jt-a", base.Add(2*time.Minute))
	})
	if got, _ := s.GetJoinToken(ctx, "jt-a"); !got.RevokedAt.Equal(canonTime(base.Add(time.Minute))) {
		t.Errorf("RevokedAt = %v", got.RevokedAt)
	}
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.RevokeJoinToken(ctx, "nope", base) })
	wantErr(t, "revoking an unknown join token", err, store.ErrNotFound)
}

func testJoinTokenConsumeOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.InsertJoinToken(ctx, newJoinToken("jt", base)) })
	// A consumption whose transaction fails leaves the token usable.
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.ConsumeJoinToken(ctx, "jt", "serial-0", base.Add(time.Second)); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "failed transaction", err, errBoom)
	// Racing consumers: exactly one wins.
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				return tx.ConsumeJoinToken(ctx, "jt", "serial-"+string(rune('a'+i)), base.Add(time.Second))
			})
		}()
	}
	won := 0
	for range n {
		if err := <-errs; err == nil {
			won++
		} else {
			wantErr(t, "losing consumer", err, store.ErrConflict)
		}
	}
	if won != 1 {
		t.Fatalf("%d consumers won, want 1", won)
	}
	got, err := s.GetJoinToken(ctx, "jt")
	if err != nil || got.UsedAt.IsZero() || got.UsedBy == "" {
		t.Fatalf("after consumption: %v %+v", err, got)
	}
}

func testJoinTokenConsumeRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.InsertJoinToken(ctx, newJoinToken("expired", base)); err != nil {
			return err
		}
		if err := tx.InsertJoinToken(ctx, newJoinToken("revoked", base)); err != nil {
			return err
		}
		return tx.RevokeJoinToken(ctx, "revoked", base.Add(time.Second))
	})
	for _, c := range []struct {
		id   string
		at   time.Time
		want error
	}{
		{"expired", base.Add(15 * time.Minute), store.ErrConflict},
		{"revoked", base.Add(2 * time.Second), store.ErrConflict},
		{"unknown", base, store.ErrNotFound},
	} {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.ConsumeJoinToken(ctx, c.id, "x", c.at) })
		wantErr(t, "consuming "+c.id, err, c.want)
	}
	if got, _ := s.GetJoinToken(ctx, "expired"); !got.UsedAt.IsZero() {
		t.Errorf("a refused consumption marked the token used")
	}
}

func testMachineLifecycle(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := &store.Machine{
		Name: "web-01.prod.internal", Profile: "web", Names: []string{"web-01.prod.internal"},
		Attestation: "join_token", JoinTokenID: "jt", State: store.MachineActive,
		CurrentSerial: "1f", FirstSeen: base, LastSeen: base,
	}
	other := &store.Machine{Name: "a.prod.internal", Profile: "web", Attestation: "join_token", State: store.MachineActive}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.PutMachine(ctx, m); err != nil {
			return err
		}
		return tx.PutMachine(ctx, other)
	})
	got, err := s.GetMachine(ctx, m.Name)
	if err != nil {
		t.Fatal(err)
	}
	canon := func(m *store.Machine) store.Machine {
		x := *m
		x.Names = emptyNil(x.Names)
		x.FirstSeen, x.LastSeen, x.DisabledAt = canonTime(x.FirstSeen), canonTime(x.LastSeen), canonTime(x.DisabledAt)
		return x
	}
	if g, w := canon(got), canon(m); !reflect.DeepEqual(g, w) {
		t.Errorf("machine:\n got %+v\nwant %+v", g, w)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.SetMachineCert(ctx, m.Name, "1f", "2a", "1f", base.Add(time.Minute))
	})
	// A swap from a serial that is no longer current changes nothing.
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.SetMachineCert(ctx, m.Name, "1f", "2b", "1f", base)
	})
	wantErr(t, "SetMachineCert from a stale serial", err, store.ErrConflict)
	if errors.Is(err, store.ErrMachineDisabled) {
		t.Errorf("a stale serial reported as a disabled machine: %v", err)
	}
	// LastSeen never moves back.
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.TouchMachine(ctx, m.Name, base) })
	got, _ = s.GetMachine(ctx, m.Name)
	if got.CurrentSerial != "2a" || got.RenewedBy != "1f" || !got.LastSeen.Equal(canonTime(base.Add(time.Minute))) {
		t.Errorf("after SetMachineCert: %+v", got)
	}
	// A renewal authenticated by an earlier certificate (a lost answer)
	// records that one, not the certificate it replaced.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.SetMachineCert(ctx, m.Name, "2a", "2c", "1f", base.Add(time.Minute))
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.SetMachineCert(ctx, m.Name, "2c", "2a", "2c", base.Add(time.Minute))
	})
	got, _ = s.GetMachine(ctx, m.Name)
	if got.CurrentSerial != "2a" || got.RenewedBy != "2c" {
		t.Errorf("after two more SetMachineCert: current %s renewed by %s, want 2a by 2c", got.CurrentSerial, got.RenewedBy)
	}
	// Confirming a certificate that is not current changes nothing; the
	// current one clears RenewedBy.
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.ConfirmMachineCert(ctx, m.Name, "2c") })
	if got, _ = s.GetMachine(ctx, m.Name); got.RenewedBy != "2c" {
		t.Errorf("confirming a non-current certificate cleared RenewedBy: %+v", got)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.ConfirmMachineCert(ctx, m.Name, "2a") })
	if got, _ = s.GetMachine(ctx, m.Name); got.RenewedBy != "" || got.CurrentSerial != "2a" {
		t.Errorf("after ConfirmMachineCert: %+v", got)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.ConfirmMachineCert(ctx, "nope", "2a") })
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.DisableMachine(ctx, m.Name, base.Add(2*time.Minute))
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.DisableMachine(ctx, m.Name, base.Add(3*time.Minute))
	})
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.SetMachineCert(ctx, m.Name, "2a", "3b", "2a", base)
	})
	wantErr(t, "SetMachineCert on a disabled machine", err, store.ErrMachineDisabled)
	wantErr(t, "SetMachineCert on a disabled machine", err, store.ErrConflict)
	got, _ = s.GetMachine(ctx, m.Name)
	if got.State != store.MachineDisabled || got.CurrentSerial != "2a" || !got.DisabledAt.Equal(canonTime(base.Add(2*time.Minute))) {
		t.Errorf("after DisableMachine: %+v", got)
	}
	for _, fn := range []func(context.Context, store.Tx) error{
		func(ctx context.Context, tx store.Tx) error { return tx.SetMachineCert(ctx, "nope", "", "1", "", base) },
		func(ctx context.Context, tx store.Tx) error { return tx.TouchMachine(ctx, "nope", base) },
		func(ctx context.Context, tx store.Tx) error { return tx.DisableMachine(ctx, "nope", base) },
	} {
		wantErr(t, "unknown machine", s.Update(ctx, fn), store.ErrNotFound)
	}
	_, err = s.GetMachine(ctx, "nope")
	wantErr(t, "GetMachine unknown", err, store.ErrNotFound)
	list, err := s.ListMachines(ctx)
	if err != nil || len(list) != 2 || list[0].Name != other.Name || list[1].Name != m.Name {
		t.Fatalf("ListMachines: %v %+v", err, list)
	}
}

// testMachineCertSwapOnce: of transactions racing to replace the same
// current certificate, exactly one changes the machine; a swap whose
// transaction fails leaves it unchanged.
func testMachineCertSwapOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	const name = "race.prod.internal"
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.PutMachine(ctx, &store.Machine{Name: name, Profile: "web", Attestation: "join_token",
			State: store.MachineActive, CurrentSerial: "01", FirstSeen: base, LastSeen: base})
	})
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.SetMachineCert(ctx, name, "01", "ff", "01", base); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "failed transaction", err, errBoom)
	const n = 8
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			errs <- s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				return tx.SetMachineCert(ctx, name, "01", identity.Serial(fmt.Sprintf("a%d", i)), "01", base.Add(time.Second))
			})
		}()
	}
	close(start)
	won := 0
	for range n {
		if err := <-errs; err == nil {
			won++
		} else {
			wantErr(t, "losing swap", err, store.ErrConflict)
		}
	}
	if won != 1 {
		t.Fatalf("%d swaps from the same serial won, want 1", won)
	}
	got, err := s.GetMachine(ctx, name)
	if err != nil || len(got.CurrentSerial) != 2 || got.CurrentSerial[0] != 'a' {
		t.Fatalf("after the race: %v %+v", err, got)
	}
}
