package sqlite

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

// TestUpsertFindingsBatch: the batch upsert the findings engine uses has
// UpsertFinding's semantics: opened for a new finding and for one that was
// resolved, not for a refresh; first-seen kept while open.
func TestUpsertFindingsBatch(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	mk := func(id string, at time.Time) *store.Finding {
		return &store.Finding{ID: id, Rule: "r", Severity: "low", Rank: 1, Subject: "s-" + id, Message: "m", LastSeen: at}
	}
	batch := func(fs ...*store.Finding) []bool {
		t.Helper()
		var opened []bool
		if err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			var err error
			opened, err = tx.(*txn).UpsertFindings(ctx, fs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return opened
	}
	if got := batch(mk("a", t0), mk("b", t0)); !slices.Equal(got, []bool{true, true}) {
		t.Errorf("new: opened %v", got)
	}
	if err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		return tx.ResolveFinding(ctx, "b", t0.Add(time.Minute))
	}); err != nil {
		t.Fatal(err)
	}
	if got := batch(mk("a", t0.Add(time.Hour)), mk("b", t0.Add(time.Hour)), mk("c", t0.Add(time.Hour))); !slices.Equal(got, []bool{false, true, true}) {
		t.Errorf("refresh/reopen/new: opened %v", got)
	}
	fs, err := s.ListFindings(t.Context(), store.FindingFilter{Subject: "s-a"})
	if err != nil || len(fs) != 1 || !fs[0].FirstSeen.Equal(t0) || !fs[0].LastSeen.Equal(t0.Add(time.Hour)) {
		t.Errorf("a after refresh: %+v, %v", fs, err)
	}
}
