package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
)

// TestLease: of two stores (as two processes) on one database only one holds
// a lease; the other takes over within about leasePoll of a Release or of
// the holder's session being terminated, and the terminated holder's Lost
// closes within leasePing+leaseTimeout.
func TestLease(t *testing.T) {
	dsn := pgtest.FreshDatabase(t)
	var st [2]*Store
	for i := range st {
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		st[i] = s
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	l0, err := st[0].Lead(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	// Another name is independent.
	other, err := st[1].Lead(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	other.Release()
	other.Release() // idempotent
	select {
	case <-other.Lost():
	default:
		t.Fatal("Lost not closed after Release")
	}

	got := make(chan error, 1)
	var l1 interface{ Release() }
	go func() {
		l, err := st[1].Lead(ctx, "jobs")
		if err == nil {
			l1 = l
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second store got the held lease (err %v)", err)
	case <-time.After(2500 * time.Millisecond):
	}
	start := time.Now()
	l0.Release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > leasePoll+time.Second {
		t.Errorf("takeover after Release took %s", d)
	}

	// Cutting the holder's session: Lost closes, and the first store leads again.
	var killed int
	if err := st[0].pool.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%advisory%'").Scan(&killed); err != nil {
		t.Fatal(err)
	}
	_ = l1
	l1lease := l1.(*lease)
	start = time.Now()
	select {
	case <-l1lease.Lost():
		t.Logf("loss noticed after %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(leasePing + leaseTimeout + time.Second):
		t.Fatalf("Lost not closed after the session was terminated (%d terminated)", killed)
	}
	l1lease.Release()
	l2, err := st[0].Lead(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	l2.Release()

	// Lead honours ctx while another holds the lease.
	l3, err := st[0].Lead(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	defer l3.Release()
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if _, err := st[1].Lead(short, "jobs"); err == nil {
		t.Fatal("Lead returned a held lease")
	}
}
