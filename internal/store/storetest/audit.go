package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/store"
)

var auditTests = []test{
	{"Empty", testAuditEmpty},
	{"AppendChains", testAuditAppend},
	{"ListFilters", testAuditFilters},
	{"WalkStops", testAuditWalkStops},
	{"ErrorsAreUnavailable", testAuditUnavailable},
}

func appendEvents(t *testing.T, s store.Store, es ...*audit.Event) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, e := range es {
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

func testAuditEmpty(t *testing.T, s store.Store) {
	seq, hash, err := s.AuditHead(t.Context())
	if err != nil || seq != 0 || hash != audit.GenesisHash {
		t.Fatalf("AuditHead on empty store = %d, %q, %v; want 0, GenesisHash", seq, hash, err)
	}
	if all := verifyChain(t, s); len(all) != 0 {
		t.Errorf("WalkAudit on empty store visited %d events", len(all))
	}
	if es, err := s.ListAudit(t.Context(), store.AuditFilter{}); err != nil || len(es) != 0 {
		t.Errorf("ListAudit on empty store = %v, %v", es, err)
	}
}

func testAuditAppend(t *testing.T, s store.Store) {
	var want []*audit.Event
	for i := range 5 {
		// Non-UTC, sub-microsecond times: Seal normalizes them and the store
		// must return exactly what was hashed.
		want = append(want, event("alice", "cert.issue", "serial-"+string(rune('a'+i)), base.Add(time.Duration(i)*time.Second+time.Duration(i))))
	}
	want[3].Detail = "" // empty optional fields
	want[3].Object = ""
	appendEvents(t, s, want[0])
	appendEvents(t, s, want[1], want[2], want[3]) // several in one transaction
	appendEvents(t, s, want[4])

	prev := audit.GenesisHash
	for i, e := range want {
		if e.Seq != int64(i+1) || e.PrevHash != prev || e.Hash != e.ComputeHash(e.PrevHash) {
			t.Errorf("event %d sealed as seq %d prev %s hash %s", i, e.Seq, e.PrevHash, e.Hash)
		}
		prev = e.Hash
	}
	checkEvents(t, "WalkAudit", verifyChain(t, s), want)
	seq, hash, err := s.AuditHead(t.Context())
	if err != nil || seq != 5 || hash != want[4].Hash {
		t.Errorf("AuditHead = %d, %s, %v; want 5, %s", seq, hash, err, want[4].Hash)
	}
	got, err := s.ListAudit(t.Context(), store.AuditFilter{})
	if err != nil {
		t.Fatalf("ListAudit: %v", err)
	}
	checkEvents(t, "ListAudit", got, want)
}

func testAuditFilters(t *testing.T, s store.Store) {
	at := func(i int) time.Time { return base.Truncate(time.Microsecond).Add(time.Duration(i) * time.Minute) }
	es := []*audit.Event{
		event("alice", "cert.issue", "1", at(0)),
		event("bob", "cert.revoke", "2", at(1)),
		event("alice", "token.create", "tok", at(2)),
		event("alice", "certificate.export", "3", at(3)), // not under "cert."
		event("bob", "cert", "", at(4)),                  // not under "cert."
		event("carol", "cert.issue", "4", at(5)),
		event("alice", "CERT.issue", "5", at(6)), // prefixes are case-sensitive
	}
	es[4].Result = audit.ResultRefused
	appendEvents(t, s, es...)
	pick := func(seqs ...int) []*audit.Event {
		var out []*audit.Event
		for _, q := range seqs {
			out = append(out, es[q-1])
		}
		return out
	}
	east := time.FixedZone("E", 9*3600)
	for _, tc := range []struct {
		name string
		f    store.AuditFilter
		want []*audit.Event
	}{
		{"all", store.AuditFilter{}, es},
		{"actor", store.AuditFilter{Actor: "alice"}, pick(1, 3, 4, 7)},
		{"unknown actor", store.AuditFilter{Actor: "mallory"}, nil},
		{"action exact", store.AuditFilter{Action: "cert.issue"}, pick(1, 6)},
		{"action exact without dot", store.AuditFilter{Action: "cert"}, pick(5)},
		{"action prefix", store.AuditFilter{Action: "cert."}, pick(1, 2, 6)},
		{"other prefix", store.AuditFilter{Action: "token."}, pick(3)},
		{"since inclusive", store.AuditFilter{Since: at(2)}, pick(3, 4, 5, 6, 7)},
		{"since sub-microsecond", store.AuditFilter{Since: at(2).Add(time.Nanosecond)}, pick(4, 5, 6, 7)},
		{"until exclusive", store.AuditFilter{Until: at(2)}, pick(1, 2)},
		{"until sub-microsecond", store.AuditFilter{Until: at(2).Add(time.Nanosecond)}, pick(1, 2, 3)},
		{"window", store.AuditFilter{Since: at(1), Until: at(3)}, pick(2, 3)},
		{"window in another zone", store.AuditFilter{Since: at(1).In(east), Until: at(3).In(time.UTC)}, pick(2, 3)},
		{"after seq", store.AuditFilter{AfterSeq: 5}, pick(6, 7)},
		{"after last seq", store.AuditFilter{AfterSeq: 7}, nil},
		{"limit", store.AuditFilter{Limit: 3}, pick(1, 2, 3)},
		{"after seq with limit", store.AuditFilter{AfterSeq: 2, Limit: 2}, pick(3, 4)},
		{"combined", store.AuditFilter{Actor: "alice", Action: "cert.", Since: at(0)}, pick(1)},
		{"combined with limit", store.AuditFilter{Action: "cert.", AfterSeq: 1, Limit: 1}, pick(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListAudit(t.Context(), tc.f)
			if err != nil {
				t.Fatalf("ListAudit: %v", err)
			}
			checkEvents(t, "ListAudit", got, tc.want)
		})
	}
}

func testAuditWalkStops(t *testing.T, s store.Store) {
	for i := range 5 {
		appendEvents(t, s, event("alice", "cert.issue", "", base.Add(time.Duration(i)*time.Second)))
	}
	errStop := errors.New("stop here")
	var visited []int64
	err := s.WalkAudit(t.Context(), func(e *audit.Event) error {
		visited = append(visited, e.Seq)
		if e.Seq == 3 {
			return errStop
		}
		return nil
	})
	wantErr(t, "WalkAudit", err, errStop)
	if len(visited) != 3 || visited[0] != 1 || visited[2] != 3 {
		t.Errorf("WalkAudit visited %v, want [1 2 3]", visited)
	}
}

func testAuditUnavailable(t *testing.T, s store.Store) {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		err := tx.AppendAudit(cancelled, event("alice", "cert.issue", "", base))
		if !errors.Is(err, audit.ErrUnavailable) {
			t.Errorf("AppendAudit with a cancelled context: error %v is not audit.ErrUnavailable", err)
		}
		return err
	})
	wantErr(t, "Update", err, audit.ErrUnavailable)
	if seq, _, err := s.AuditHead(t.Context()); err != nil || seq != 0 {
		t.Errorf("AuditHead after failed append = %d, %v", seq, err)
	}
}
