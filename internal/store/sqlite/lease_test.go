package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestLease: two Stores on one file in one process share the lease; a
// different file has its own.
func TestLease(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *Store {
		s, err := Open(t.Context(), filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b, c := open("a.db"), open("a.db"), open("c.db")
	l, err := a.Lead(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := b.Lead(short, "jobs"); err == nil {
		t.Fatal("second Store on the same file got the held lease")
	}
	lc, err := c.Lead(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	lc.Release()
	l.Release()
	l.Release()
	select {
	case <-l.Lost():
	default:
		t.Fatal("Lost not closed after Release")
	}
	lb, err := b.Lead(t.Context(), "jobs")
	if err != nil {
		t.Fatal(err)
	}
	lb.Release()
}
