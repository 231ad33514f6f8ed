package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

var txTests = []test{
	{"RollbackOnError", testRollbackOnError},
	{"RollbackOnStoreError", testRollbackOnStoreError},
	{"RollbackOnPanic", testRollbackOnPanic},
	{"Isolation", testIsolation},
	{"CancelledContext", testCancelledContext},
	{"Concurrent", testConcurrent},
}

// writeEverything makes one write of every kind, as a failing fn would.
func writeEverything(ctx context.Context, tx store.Tx, serial identity.Serial) error {
	steps := []func() error{
		func() error { return tx.InsertCertificate(ctx, newCert(serial, base)) },
		func() error { return tx.AppendAudit(ctx, event("alice", "cert.plan", string(serial), base)) },
		func() error { return tx.PutProfile(ctx, &store.Profile{Name: "p", Doc: []byte(`{}`), UpdatedAt: base}) },
		func() error { return tx.InsertToken(ctx, newToken("tok", base)) },
		func() error { return tx.PutIssuer(ctx, &store.Issuer{ID: "iss", KeyRef: "k", CreatedAt: base}) },
		func() error {
			return tx.InsertCRL(ctx, &store.CRL{IssuerID: "iss", Number: 1, ThisUpdate: base, NextUpdate: base, DER: []byte{1}})
		},
		func() error { return tx.AppendAudit(ctx, event("alice", "misc", "", base)) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// checkNothing fails if anything writeEverything writes is visible.
func checkNothing(t *testing.T, s store.Store, serial identity.Serial) {
	t.Helper()
	ctx := t.Context()
	_, err := s.GetCertificate(ctx, serial)
	wantErr(t, "certificate of a rolled-back transaction", err, store.ErrNotFound)
	_, err = s.GetProfile(ctx, "p")
	wantErr(t, "profile of a rolled-back transaction", err, store.ErrNotFound)
	_, err = s.GetToken(ctx, "tok")
	wantErr(t, "token of a rolled-back transaction", err, store.ErrNotFound)
	_, err = s.GetIssuer(ctx, "iss")
	wantErr(t, "issuer of a rolled-back transaction", err, store.ErrNotFound)
	_, err = s.LatestCRL(ctx, "iss")
	wantErr(t, "CRL of a rolled-back transaction", err, store.ErrNotFound)
	for _, e := range verifyChain(t, s) {
		if e.Object == string(serial) {
			t.Errorf("audit event %d of a rolled-back transaction was kept", e.Seq)
		}
	}
}

// checkUsable checks the store still commits after a failed transaction, and
// that the failed one consumed no audit sequence number.
func checkUsable(t *testing.T, s store.Store, wantSeq int64) {
	t.Helper()
	e := event("bob", "after", "", base)
	// A bounded wait: a writer wedged by the failed transaction fails here
	// rather than hanging the suite.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.AppendAudit(ctx, e) }); err != nil {
		t.Fatalf("Update after a failed transaction: %v", err)
	}
	if e.Seq != wantSeq {
		t.Errorf("next audit event got seq %d, want %d", e.Seq, wantSeq)
	}
	verifyChain(t, s)
}

func testRollbackOnError(t *testing.T, s store.Store) {
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if err := writeEverything(ctx, tx, "abc"); err != nil {
			t.Errorf("writes before the failure: %v", err)
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	wantErr(t, "Update", err, errBoom)
	checkNothing(t, s, "abc")
	checkUsable(t, s, 1)
}

func testRollbackOnStoreError(t *testing.T, s store.Store) {
	insert(t, s, newCert("1", base))
	appendEvents(t, s, event("alice", "first", "", base))
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if err := writeEverything(ctx, tx, "abc"); err != nil {
			return err
		}
		return tx.InsertCertificate(ctx, newCert("1", base)) // duplicate
	})
	wantErr(t, "Update", err, store.ErrConflict)
	checkNothing(t, s, "abc")
	checkUsable(t, s, 2)
}

func testRollbackOnPanic(t *testing.T, s store.Store) {
	type sentinel struct{ msg string }
	func() {
		defer func() {
			if p := recover(); p != (sentinel{"boom"}) {
				t.Errorf("recovered %v, want the panic of fn re-raised", p)
			}
		}()
		_ = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			if err := writeEverything(ctx, tx, "abc"); err != nil {
				t.Errorf("writes before the panic: %v", err)
			}
			panic(sentinel{"boom"})
		})
		t.Error("Update returned instead of re-panicking")
	}()
	checkNothing(t, s, "abc")
	checkUsable(t, s, 1) // a panicking fn must not wedge the writer
}

// testIsolation: writes are invisible to other callers until commit.
func testIsolation(t *testing.T, s store.Store) {
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := writeEverything(ctx, tx, "abc"); err != nil {
			return err
		}
		checkNothing(t, s, "abc")
		if seq, _, err := s.AuditHead(ctx); err != nil || seq != 0 {
			t.Errorf("AuditHead inside an open transaction = %d, %v; want 0", seq, err)
		}
		return nil
	})
	get(t, s, "abc")
	if all := verifyChain(t, s); len(all) != 2 {
		t.Errorf("committed %d audit events, want 2", len(all))
	}
}

func testCancelledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return writeEverything(ctx, tx, "abc")
	})
	wantErr(t, "Update with a cancelled context", err, context.Canceled)
	checkNothing(t, s, "abc")
	checkUsable(t, s, 1)
}

// testConcurrent runs many writers against readers; run it under -race.
func testConcurrent(t *testing.T, s store.Store) {
	const writers, perWriter = 32, 20
	ctx := t.Context()
	done := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			var last int64
			for {
				select {
				case <-done:
					return
				default:
				}
				seq, _, err := s.AuditHead(ctx)
				if err != nil {
					t.Errorf("AuditHead: %v", err)
					return
				}
				if seq < last {
					t.Errorf("audit head went back from %d to %d", last, seq)
				}
				last = seq
				if _, err := s.ListAudit(ctx, store.AuditFilter{AfterSeq: max(0, seq-5)}); err != nil {
					t.Errorf("ListAudit: %v", err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				serial := identity.Serial(fmt.Sprintf("%x", 0x10000+w*perWriter+i))
				err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
					if err := tx.InsertCertificate(ctx, newCert(serial, base)); err != nil {
						return err
					}
					return tx.AppendAudit(ctx, event(fmt.Sprintf("writer-%d", w), "cert.plan", string(serial), base))
				})
				if err != nil {
					t.Errorf("writer %d update %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()

	certs, err := s.ListCertificates(ctx, store.CertFilter{})
	if err != nil {
		t.Fatalf("ListCertificates: %v", err)
	}
	if len(certs) != writers*perWriter {
		t.Errorf("stored %d certificates, want %d", len(certs), writers*perWriter)
	}
	all := verifyChain(t, s) // also checks seqs are contiguous from 1
	if len(all) != writers*perWriter {
		t.Fatalf("stored %d audit events, want %d", len(all), writers*perWriter)
	}
	objects := map[string]int{}
	for _, e := range all {
		objects[e.Object]++
	}
	for _, c := range certs {
		if objects[string(c.Serial)] != 1 {
			t.Errorf("certificate %s has %d audit events, want 1", c.Serial, objects[string(c.Serial)])
		}
	}
	if seq, _, _ := s.AuditHead(ctx); seq != int64(len(all)) || all[len(all)-1].Seq != seq {
		t.Errorf("AuditHead seq %d, last event %d, count %d", seq, all[len(all)-1].Seq, len(all))
	}
}
