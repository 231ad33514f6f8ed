package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
)

// replicas opens n Stores (n pools, as n processes would have) on one fresh database.
func replicas(t *testing.T, n int) []*Store {
	t.Helper()
	dsn := pgtest.FreshDatabase(t)
	out := make([]*Store, n)
	for i := range out {
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open replica %d: %v", i, err)
		}
		t.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out
}

// TestAuditChainAcrossReplicas: writers on two pools append concurrently
// and the result is one contiguous chain that verifies against the head.
func TestAuditChainAcrossReplicas(t *testing.T) {
	const goroutines, perGoroutine = 8, 50
	rs := replicas(t, 2)
	var wg sync.WaitGroup
	for r, s := range rs {
		for g := range goroutines {
			wg.Go(func() {
				for i := range perGoroutine {
					e := &audit.Event{Time: time.Now(), Actor: fmt.Sprintf("replica-%d", r), Action: "test.append",
						Object: fmt.Sprintf("%d/%d/%d", r, g, i), Result: audit.ResultSuccess}
					err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.AppendAudit(ctx, e) })
					if err != nil {
						t.Errorf("replica %d goroutine %d append %d: %v", r, g, i, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()

	const want = 2 * goroutines * perGoroutine
	for r, s := range rs { // both replicas see the same, complete chain
		var v audit.Verifier
		objects := map[string]bool{}
		err := s.WalkAudit(t.Context(), func(e *audit.Event) error {
			if objects[e.Object] {
				return fmt.Errorf("event %s appended twice", e.Object)
			}
			objects[e.Object] = true
			return v.Next(e)
		})
		if err != nil {
			t.Fatalf("replica %d: chain: %v", r, err)
		}
		seq, hash, err := s.AuditHead(t.Context())
		if err != nil {
			t.Fatalf("replica %d: AuditHead: %v", r, err)
		}
		if n, err := v.Finish(seq, hash); err != nil || n != want || seq != want {
			t.Fatalf("replica %d: %d events, head %d, %v; want %d", r, n, seq, err, want)
		}
	}
}

// TestCRLNumbersAcrossReplicas: a transaction inserting a lower CRL number
// while another holds a higher one uncommitted waits for it and is refused,
// so numbers increase in commit order.
func TestCRLNumbersAcrossReplicas(t *testing.T) {
	rs := replicas(t, 2)
	crl := func(n int64) *store.CRL {
		return &store.CRL{IssuerID: "A", Number: n, ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour), DER: []byte{byte(n)}}
	}
	inserted, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	releaseA := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseA() // on failure too: a held transaction would block Close
	errA := make(chan error, 1)
	go func() {
		errA <- rs[0].Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			if err := tx.InsertCRL(ctx, crl(5)); err != nil {
				return err
			}
			close(inserted)
			<-release
			return nil
		})
	}()
	<-inserted
	errB := make(chan error, 1)
	go func() {
		errB <- rs[1].Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.InsertCRL(ctx, crl(4)) })
	}()
	select {
	case err := <-errB:
		t.Fatalf("InsertCRL(4) finished (%v) while 5 was uncommitted; want it to wait", err)
	case <-time.After(200 * time.Millisecond):
	}
	releaseA()
	if err := <-errA; err != nil {
		t.Fatalf("InsertCRL(5): %v", err)
	}
	if err := <-errB; !errors.Is(err, store.ErrConflict) {
		t.Fatalf("InsertCRL(4) after 5 committed: %v, want ErrConflict", err)
	}

	// Generators using NextCRLNumber take turns rather than collide.
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			err := rs[i%2].Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
				n, err := tx.NextCRLNumber(ctx, "A")
				if err != nil {
					return err
				}
				return tx.InsertCRL(ctx, crl(n))
			})
			if err != nil {
				t.Errorf("generator %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got, err := rs[0].LatestCRL(t.Context(), "A"); err != nil || got.Number != 15 {
		t.Errorf("LatestCRL = %+v, %v; want number 15", got, err)
	}
}

// TestConflictKeepsTransaction: ErrConflict and ErrNotFound leave the
// transaction usable, as in SQLite, although a failed PostgreSQL statement
// would abort it.
func TestConflictKeepsTransaction(t *testing.T) {
	s := replicas(t, 1)[0]
	cert := func(serial identity.Serial) *identity.Certificate {
		return &identity.Certificate{Serial: serial, IssuerID: "i", Profile: "p", Status: identity.StatusPlanned,
			Requester: "r", KeyType: identity.KeyEd25519, SPKIFingerprint: "00", CreatedAt: time.Now()}
	}
	tok := &identity.Token{ID: "t", Role: identity.RoleAdmin, SecretHash: []byte{1}, CreatedAt: time.Now()}
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if err := tx.InsertCertificate(ctx, cert("a")); err != nil {
			return err
		}
		if err := tx.InsertToken(ctx, tok); err != nil {
			return err
		}
		for what, err := range map[string]error{
			"duplicate certificate": tx.InsertCertificate(ctx, cert("a")),
			"duplicate token":       tx.InsertToken(ctx, tok),
			"MarkIssued unknown":    tx.MarkIssued(ctx, "ff", []byte{1}, "x", time.Now()),
			"Revoke planned":        tx.Revoke(ctx, "a", identity.ReasonUnspecified, time.Now()),
			"RevokeToken unknown":   tx.RevokeToken(ctx, "nope", time.Now()),
			"DeleteProfile unknown": tx.DeleteProfile(ctx, "nope"),
		} {
			if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: %v, want ErrConflict or ErrNotFound", what, err)
			}
		}
		if err := tx.InsertCertificate(ctx, cert("b")); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, &audit.Event{Time: time.Now(), Actor: "a", Action: "x", Result: audit.ResultSuccess})
	})
	if err != nil {
		t.Fatalf("Update after handled conflicts: %v", err)
	}
	if _, err := s.GetCertificate(t.Context(), "b"); err != nil {
		t.Errorf("write after handled conflicts not committed: %v", err)
	}
}

func TestNestedUpdate(t *testing.T) {
	s := replicas(t, 1)[0]
	var inner error
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		inner = s.Update(ctx, func(context.Context, store.Tx) error { return nil })
		return nil
	})
	if err != nil {
		t.Fatalf("outer Update: %v", err)
	}
	if inner == nil {
		t.Fatal("nested Update on the same store succeeded")
	}
}
