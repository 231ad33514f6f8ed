package storetest

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

// Contract pinned here for findings, webhooks, deliveries and audit sinks:
//   - UpsertFinding opens a new or resolved finding (FirstSeen = LastSeen)
//     and refreshes an open one (FirstSeen kept).
//   - ListFindings orders by Rank descending, then FirstSeen, then ID, and
//     hides resolved findings unless asked.
//   - EnqueueDelivery is idempotent per (WebhookID, DedupKey).
//   - DeleteWebhook removes the webhook's deliveries.
var assessTests = []test{
	{"FindingLifecycle", testFindingLifecycle},
	{"FindingLifecycleBatch", testFindingLifecycleBatch},
	{"FindingBatch", testFindingBatch},
	{"FindingFilters", testFindingFilters},
	{"WebhookRoundTrip", testWebhookRoundTrip},
	{"DeliveryDedupAndUpdate", testDeliveryDedup},
	{"AuditSinkState", testAuditSinkState},
	{"MonitorStats", testMonitorStats},
}

func testMonitorStats(t *testing.T, s store.Store) {
	now := certFixture(t, s)
	day := 24 * time.Hour
	st, err := s.MonitorStats(t.Context(), now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.CertStat{}
	for _, c := range st.Certificates {
		got[c.Status+"/"+c.Profile] = c
	}
	want := map[string]struct {
		n  int
		na time.Time
	}{
		"issued/web": {1, now.Add(10 * day)}, "issued/mtls": {1, time.Time{}}, // expired: no earliest expiry
		"revoked/web": {2, now.Add(5 * day)}, "planned/mtls": {1, now.Add(30 * day)},
	}
	if len(got) != len(want) {
		t.Fatalf("groups %v", st.Certificates)
	}
	for k, w := range want {
		if g := got[k]; g.Count != w.n || !g.EarliestExpiry.Equal(canonTime(w.na)) || !w.na.IsZero() && g.EarliestExpiry.IsZero() {
			t.Errorf("%s: %+v, want %d / %v", k, g, w.n, w.na)
		}
	}
	if len(st.Inventory) != 0 {
		t.Errorf("inventory stats of an empty inventory: %v", st.Inventory)
	}
}

func upsertFinding(t *testing.T, s store.Store, f *store.Finding) bool {
	t.Helper()
	var opened bool
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		opened, err = tx.UpsertFinding(ctx, f)
		return err
	})
	return opened
}

// upsertFindingBatch writes f through UpsertFindings, alone in its batch.
func upsertFindingBatch(t *testing.T, s store.Store, f *store.Finding) bool {
	t.Helper()
	var opened []bool
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		opened, err = tx.UpsertFindings(ctx, []*store.Finding{f})
		return err
	})
	if len(opened) != 1 {
		t.Fatalf("UpsertFindings of one finding returned %d results", len(opened))
	}
	return opened[0]
}

func testFindingLifecycle(t *testing.T, s store.Store) { findingLifecycle(t, s, upsertFinding) }

func testFindingLifecycleBatch(t *testing.T, s store.Store) {
	findingLifecycle(t, s, upsertFindingBatch)
}

// testFindingBatch: each finding of a batch gets its own result and
// FirstSeen, whatever the order.
func testFindingBatch(t *testing.T, s store.Store) {
	mk := func(id string, at time.Time) *store.Finding {
		return &store.Finding{ID: id, Rule: "r", Severity: "low", Rank: 1, Subject: "s-" + id, Message: "m", LastSeen: at}
	}
	upsertFinding(t, s, mk("open", base))
	upsertFinding(t, s, mk("resolved", base))
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.ResolveFinding(ctx, "resolved", base.Add(time.Minute))
	})
	later := base.Add(time.Hour)
	batch := []*store.Finding{mk("resolved", later), mk("new", later), mk("open", later)}
	var opened []bool
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		opened, err = tx.UpsertFindings(ctx, batch)
		return err
	})
	if want := []bool{true, true, false}; !reflect.DeepEqual(opened, want) {
		t.Errorf("UpsertFindings(resolved, new, open) = %v, want %v", opened, want)
	}
	wantFirst := map[string]time.Time{"resolved": later, "new": later, "open": base}
	got, err := s.ListFindings(t.Context(), store.FindingFilter{})
	if err != nil || len(got) != 3 {
		t.Fatalf("ListFindings: %v, %v", got, err)
	}
	for _, f := range got {
		if !f.FirstSeen.Equal(canonTime(wantFirst[f.ID])) || !f.LastSeen.Equal(canonTime(later)) || !f.ResolvedAt.IsZero() {
			t.Errorf("%s: first %v last %v resolved %v; want first %v last %v, open", f.ID, f.FirstSeen, f.LastSeen, f.ResolvedAt, wantFirst[f.ID], later)
		}
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.UpsertFindings(ctx, nil)
		return err
	})

	// ImportFinding keeps every time as given, resolved or not.
	imp := &store.Finding{ID: "imported", Rule: "r", Severity: "high", Rank: 3, Subject: "s-imp", Serial: "1f", Location: "host:443", Message: "m",
		FirstSeen: base.Add(-time.Hour), LastSeen: base, ResolvedAt: base.Add(time.Minute)}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.ImportFinding(ctx, imp) })
	err = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.ImportFinding(ctx, imp) })
	wantErr(t, "importing a finding twice", err, store.ErrConflict)
	got, err = s.ListFindings(t.Context(), store.FindingFilter{Subject: "s-imp", IncludeResolved: true})
	if err != nil || len(got) != 1 {
		t.Fatalf("imported finding: %v, %v", got, err)
	}
	want := *imp
	want.FirstSeen, want.LastSeen, want.ResolvedAt = canonTime(want.FirstSeen), canonTime(want.LastSeen), canonTime(want.ResolvedAt)
	if !reflect.DeepEqual(*got[0], want) {
		t.Errorf("imported finding:\n got %+v\nwant %+v", *got[0], want)
	}
}

func findingLifecycle(t *testing.T, s store.Store, upsertFinding func(*testing.T, store.Store, *store.Finding) bool) {
	f := &store.Finding{ID: "expiring-30d:abc", Rule: "expiring", Severity: "medium", Rank: 2, Subject: "abc", Serial: "1f", Message: "expires soon", LastSeen: base}
	if !upsertFinding(t, s, f) {
		t.Fatal("first upsert: want opened")
	}
	g := *f
	g.LastSeen, g.Message = base.Add(time.Hour), "still expiring"
	if upsertFinding(t, s, &g) {
		t.Fatal("second upsert of an open finding: want not opened")
	}
	got, err := s.ListFindings(t.Context(), store.FindingFilter{Subject: "abc"})
	if err != nil || len(got) != 1 {
		t.Fatalf("ListFindings: %v %v", got, err)
	}
	checkTime(t, "FirstSeen", got[0].FirstSeen)
	if !got[0].FirstSeen.Equal(canonTime(base)) || !got[0].LastSeen.Equal(canonTime(base.Add(time.Hour))) || got[0].Message != "still expiring" {
		t.Fatalf("after refresh: %+v", got[0])
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.ResolveFinding(ctx, f.ID, base.Add(2*time.Hour))
	})
	err = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.ResolveFinding(ctx, f.ID, base) })
	wantErr(t, "resolving a resolved finding", err, store.ErrNotFound)
	if got, _ := s.ListFindings(t.Context(), store.FindingFilter{}); len(got) != 0 {
		t.Fatalf("open findings after resolve: %v", got)
	}
	all, _ := s.ListFindings(t.Context(), store.FindingFilter{IncludeResolved: true})
	if len(all) != 1 || !all[0].ResolvedAt.Equal(canonTime(base.Add(2*time.Hour))) {
		t.Fatalf("resolved finding: %+v", all)
	}
	h := *f
	h.LastSeen = base.Add(3 * time.Hour)
	if !upsertFinding(t, s, &h) {
		t.Fatal("upsert of a resolved finding: want reopened")
	}
	got, _ = s.ListFindings(t.Context(), store.FindingFilter{})
	if len(got) != 1 || !got[0].FirstSeen.Equal(canonTime(base.Add(3*time.Hour))) || !got[0].ResolvedAt.IsZero() {
		t.Fatalf("reopened: %+v", got)
	}
}

func testFindingFilters(t *testing.T, s store.Store) {
	for _, f := range []*store.Finding{
		{ID: "a", Rule: "weak-key", Severity: "high", Rank: 3, Subject: "s1", LastSeen: base.Add(2 * time.Second)},
		{ID: "b", Rule: "expiring", Severity: "low", Rank: 1, Subject: "s1", LastSeen: base},
		{ID: "c", Rule: "weak-key", Severity: "high", Rank: 3, Subject: "s2", LastSeen: base.Add(time.Second)},
		{ID: "d", Rule: "no-owner", Severity: "critical", Rank: 4, Subject: "s3", LastSeen: base.Add(3 * time.Second)},
	} {
		upsertFinding(t, s, f)
	}
	ids := func(f store.FindingFilter) []string {
		got, err := s.ListFindings(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range got {
			out = append(out, x.ID)
		}
		return out
	}
	for _, tc := range []struct {
		f    store.FindingFilter
		want []string
	}{
		{store.FindingFilter{}, []string{"d", "c", "a", "b"}},
		{store.FindingFilter{MinRank: 3}, []string{"d", "c", "a"}},
		{store.FindingFilter{Subject: "s1"}, []string{"a", "b"}},
		{store.FindingFilter{Subjects: []string{"s3", "s1", "nope"}}, []string{"d", "a", "b"}},
		{store.FindingFilter{Subject: "s2", Subjects: []string{"s3"}, MinRank: 3}, []string{"d", "c"}},
		{store.FindingFilter{Rule: "weak-key", Limit: 1}, []string{"c"}},
	} {
		if got := ids(tc.f); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ListFindings(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.ResolveFinding(ctx, "c", base.Add(time.Hour)) })
	counts, err := s.CountOpenFindings(t.Context())
	if err != nil || !reflect.DeepEqual(counts, map[string]int{"high": 1, "low": 1, "critical": 1}) {
		t.Errorf("CountOpenFindings = %v, %v", counts, err)
	}
}

func testWebhookRoundTrip(t *testing.T, s store.Store) {
	w := &store.Webhook{ID: "wh1", URL: "https://hooks.test/pki", Events: []string{"expiring", "finding.high"}, SecretSealed: []byte{1, 2, 3}, CreatedBy: "token:x", CreatedAt: base}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.InsertWebhook(ctx, w) })
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.InsertWebhook(ctx, w) })
	wantErr(t, "duplicate webhook", err, store.ErrConflict)
	got, err := s.GetWebhook(t.Context(), "wh1")
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != w.URL || !reflect.DeepEqual(got.Events, w.Events) || !bytes.Equal(got.SecretSealed, w.SecretSealed) || !got.CreatedAt.Equal(canonTime(base)) {
		t.Fatalf("round trip: %+v", got)
	}
	_, err = s.GetWebhook(t.Context(), "nope")
	wantErr(t, "unknown webhook", err, store.ErrNotFound)
	list, _ := s.ListWebhooks(t.Context())
	if len(list) != 1 {
		t.Fatalf("ListWebhooks: %v", list)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteWebhook(ctx, "wh1") })
	err = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.DeleteWebhook(ctx, "wh1") })
	wantErr(t, "deleting a deleted webhook", err, store.ErrNotFound)
}

func testDeliveryDedup(t *testing.T, s store.Store) {
	w := &store.Webhook{ID: "wh", URL: "https://hooks.test/", Events: []string{"expiring"}, SecretSealed: []byte{9}, CreatedAt: base}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.InsertWebhook(ctx, w) })
	enqueue := func(key string) (*store.Delivery, bool) {
		d := &store.Delivery{WebhookID: "wh", Event: "expiring", DedupKey: key, Payload: []byte(`{"a":1}`), Status: store.DeliveryPending, NextAttemptAt: base, CreatedAt: base}
		var ok bool
		update(t, s, func(ctx context.Context, tx store.Tx) error {
			var err error
			ok, err = tx.EnqueueDelivery(ctx, d)
			return err
		})
		return d, ok
	}
	d1, ok := enqueue("expiring:abc:30d")
	if !ok || d1.ID == 0 {
		t.Fatalf("first enqueue: ok=%v id=%d", ok, d1.ID)
	}
	if _, ok := enqueue("expiring:abc:30d"); ok {
		t.Fatal("second enqueue with the same key: want deduplicated")
	}
	d2, ok := enqueue("expiring:abc:7d")
	if !ok {
		t.Fatal("another threshold: want enqueued")
	}
	due, err := s.ListDeliveries(t.Context(), store.DeliveryFilter{Status: store.DeliveryPending, DueBy: base})
	if err != nil || len(due) != 2 || due[0].ID != d1.ID || due[1].ID != d2.ID {
		t.Fatalf("due deliveries: %v %v", due, err)
	}
	if !bytes.Equal(due[0].Payload, d1.Payload) || due[0].DedupKey != "expiring:abc:30d" {
		t.Fatalf("round trip: %+v", due[0])
	}
	d1.Status, d1.Attempts, d1.LastError, d1.LastStatus, d1.NextAttemptAt = store.DeliveryDead, 5, "HTTP 500", 500, time.Time{}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDelivery(ctx, d1) })
	dead, _ := s.ListDeliveries(t.Context(), store.DeliveryFilter{Status: store.DeliveryDead})
	if len(dead) != 1 || dead[0].Attempts != 5 || dead[0].LastStatus != 500 || dead[0].LastError != "HTTP 500" || !dead[0].NextAttemptAt.IsZero() {
		t.Fatalf("dead letter: %+v", dead)
	}
	due, _ = s.ListDeliveries(t.Context(), store.DeliveryFilter{Status: store.DeliveryPending, DueBy: base.Add(-time.Second)})
	if len(due) != 0 {
		t.Fatalf("nothing is due before base: %v", due)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteWebhook(ctx, "wh") })
	if all, _ := s.ListDeliveries(t.Context(), store.DeliveryFilter{}); len(all) != 0 {
		t.Fatalf("deliveries left after deleting the webhook: %v", all)
	}
	err = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.UpdateDelivery(ctx, d2) })
	wantErr(t, "updating a deleted delivery", err, store.ErrNotFound)
}

func testAuditSinkState(t *testing.T, s store.Store) {
	put := func(st *store.AuditSinkState) {
		update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.PutAuditSinkState(ctx, st) })
	}
	put(&store.AuditSinkState{Sink: "tcp://b", Seq: 3, UpdatedAt: base})
	put(&store.AuditSinkState{Sink: "udp://a", Seq: 1, LastError: "refused", UpdatedAt: base})
	put(&store.AuditSinkState{Sink: "tcp://b", Seq: 7, UpdatedAt: base.Add(time.Second)})
	got, err := s.ListAuditSinkStates(t.Context())
	if err != nil || len(got) != 2 {
		t.Fatalf("ListAuditSinkStates: %v %v", got, err)
	}
	if got[0].Sink != "tcp://b" || got[0].Seq != 7 || !got[0].UpdatedAt.Equal(canonTime(base.Add(time.Second))) || got[1].LastError != "refused" {
		t.Fatalf("states: %+v %+v", got[0], got[1])
	}
}
