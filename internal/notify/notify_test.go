package notify

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/sqlite"
)

var t0 = time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)

// receiver is a real HTTP listener that verifies each delivery's signature
// as a subscriber would, answering with the statuses queued in codes.
type receiver struct {
	t      *testing.T
	secret []byte
	now    func() time.Time

	mu     sync.Mutex
	codes  []int // next answers; 200 once exhausted
	bodies []payload
	bad    []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := Verify(rc.secret, r.Header.Get(SignatureHeader), body, rc.now(), 5*time.Minute); err != nil {
		rc.bad = append(rc.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	code := http.StatusOK
	if len(rc.codes) > 0 {
		code, rc.codes = rc.codes[0], rc.codes[1:]
	}
	if code == http.StatusOK {
		var p payload
		if err := json.Unmarshal(body, &p); err != nil {
			rc.bad = append(rc.bad, err.Error())
		}
		if r.Header.Get("Sigil-Event") != p.Type {
			rc.bad = append(rc.bad, "Sigil-Event header does not match the body")
		}
		rc.bodies = append(rc.bodies, p)
	}
	w.WriteHeader(code)
}

type fixture struct {
	st    *sqlite.Store
	kek   *keys.KEK
	rc    *receiver
	url   string
	now   time.Time
	deliv *Deliverer
}

func newFixture(t *testing.T, secret string, codes ...int) *fixture {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := keys.KEKFromBytes([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, kek: kek, now: t0}
	f.rc = &receiver{t: t, secret: []byte(secret), codes: codes, now: func() time.Time { return f.now }}
	srv := httptest.NewServer(f.rc)
	t.Cleanup(srv.Close)
	f.url = srv.URL + "/hook"
	f.deliv = &Deliverer{Store: st, Secrets: kek, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return f.now },
		MaxAttempts: 3, Backoff: time.Minute, MaxBackoff: 10 * time.Minute}
	return f
}

// subscribe stores a webhook the way the RA does: secret sealed under the KEK.
func (f *fixture) subscribe(t *testing.T, id, secret string, events ...string) {
	sealed, err := f.kek.Seal([]byte(secret), SecretAD(id))
	if err != nil {
		t.Fatal(err)
	}
	w := &store.Webhook{ID: id, URL: f.url, Events: events, SecretSealed: sealed, CreatedAt: t0}
	if err := f.st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.InsertWebhook(ctx, w) }); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) deliveries(t *testing.T) []*store.Delivery {
	ds, err := f.st.ListDeliveries(t.Context(), store.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

const secret = "0123456789abcdef-webhook-secret"

func TestSignVerify(t *testing.T) {
	body := []byte(`{"type":"expiring"}`)
	h := Sign([]byte(secret), t0, body)
	for _, tc := range []struct {
		name   string
		secret string
		header string
		body   string
		now    time.Time
		ok     bool
	}{
		{"valid", secret, h, string(body), t0, true},
		{"wrong secret", "another-secret-of-16", h, string(body), t0, false},
		{"body changed", secret, h, `{"type":"revoked"}`, t0, false},
		{"too old", secret, h, string(body), t0.Add(10 * time.Minute), false},
		{"malformed", secret, "v1=abc", string(body), t0, false},
		{"garbage", secret, "t=x,,", string(body), t0, false},
	} {
		err := Verify([]byte(tc.secret), tc.header, []byte(tc.body), tc.now, 5*time.Minute)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Verify = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("t=1,v1=00", []byte("{}"))
	f.Add("t=,v1=", []byte(""))
	f.Add(",,=,=", []byte("x"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		// Must never panic, and accepts only a header carrying the true MAC
		// of its own timestamp and the body.
		if Verify([]byte(secret), header, body, t0, 100*365*24*time.Hour) != nil {
			return
		}
		ts := ""
		for part := range strings.SplitSeq(header, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
				ts = v
			}
		}
		if !strings.Contains(header, "v1="+mac([]byte(secret), ts, body)) {
			t.Fatalf("accepted a forged header %q", header)
		}
	})
}

func TestDeliverySignedAndDeduplicated(t *testing.T) {
	f := newFixture(t, secret)
	f.subscribe(t, "wh_a", secret, "expiring", "finding.high")
	ev := Event{Type: "expiring", DedupKey: "expiring:abc:30d", Time: t0, Data: map[string]string{"fingerprint": "abc"}}
	for range 3 { // the rule fires on every run: one delivery only
		if _, err := Enqueue(t.Context(), f.st, ev); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := Enqueue(t.Context(), f.st, Event{Type: "revoked", DedupKey: "revoked:1", Time: t0}); n != 0 {
		t.Fatalf("an event nobody subscribed to was enqueued %d times", n)
	}
	n, err := f.deliv.RunOnce(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	if n, _ := f.deliv.RunOnce(t.Context()); n != 0 {
		t.Fatalf("second run delivered %d again", n)
	}
	ev.DedupKey = "expiring:abc:7d" // the next threshold is a new event
	if _, err := Enqueue(t.Context(), f.st, ev); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.deliv.RunOnce(t.Context()); n != 1 {
		t.Fatalf("next threshold delivered %d", n)
	}
	f.rc.mu.Lock()
	defer f.rc.mu.Unlock()
	if len(f.rc.bad) > 0 {
		t.Fatalf("receiver refused: %v", f.rc.bad)
	}
	if len(f.rc.bodies) != 2 || f.rc.bodies[0].ID != "expiring:abc:30d" || f.rc.bodies[1].ID != "expiring:abc:7d" {
		t.Fatalf("receiver got %+v", f.rc.bodies)
	}
}

func TestDeliveryRetriesThenDeadLetter(t *testing.T) {
	f := newFixture(t, secret, 500, 503)
	f.subscribe(t, "wh_r", secret, "revoked")
	if _, err := Enqueue(t.Context(), f.st, Event{Type: "revoked", DedupKey: "revoked:1f", Time: t0}); err != nil {
		t.Fatal(err)
	}
	// Attempt 1: HTTP 500, retry after Backoff.
	if n, _ := f.deliv.RunOnce(t.Context()); n != 0 {
		t.Fatal("delivered despite a 500")
	}
	d := f.deliveries(t)[0]
	if d.Status != store.DeliveryPending || d.Attempts != 1 || d.LastStatus != 500 || !d.NextAttemptAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after a 500: %+v", d)
	}
	if n, _ := f.deliv.RunOnce(t.Context()); n != 0 {
		t.Fatal("retried before its backoff")
	}
	// Attempt 2: HTTP 503, backoff doubles.
	f.now = t0.Add(time.Minute)
	f.deliv.RunOnce(t.Context())
	d = f.deliveries(t)[0]
	if d.Attempts != 2 || !d.NextAttemptAt.Equal(f.now.Add(2*time.Minute)) {
		t.Fatalf("after a 503: %+v", d)
	}
	// Attempt 3: accepted.
	f.now = f.now.Add(2 * time.Minute)
	if n, _ := f.deliv.RunOnce(t.Context()); n != 1 {
		t.Fatal("third attempt not delivered")
	}
	if d = f.deliveries(t)[0]; d.Status != store.DeliveryDelivered || d.Attempts != 3 || d.LastStatus != 200 {
		t.Fatalf("after success: %+v", d)
	}

	// A receiver that always fails: a dead letter after MaxAttempts.
	g := newFixture(t, secret, 500, 500, 500, 500)
	g.subscribe(t, "wh_d", secret, "revoked")
	Enqueue(t.Context(), g.st, Event{Type: "revoked", DedupKey: "revoked:2", Time: t0})
	for range 3 {
		g.deliv.RunOnce(t.Context())
		g.now = g.now.Add(time.Hour)
	}
	dead, _ := g.st.ListDeliveries(t.Context(), store.DeliveryFilter{Status: store.DeliveryDead})
	if len(dead) != 1 || dead[0].Attempts != 3 || !strings.Contains(dead[0].LastError, "HTTP 500") {
		t.Fatalf("dead letters: %+v", dead)
	}
}

func TestWrongSecretIsRefusedByReceiver(t *testing.T) {
	f := newFixture(t, secret)
	f.subscribe(t, "wh_x", "a-different-secret-entirely", "revoked")
	Enqueue(t.Context(), f.st, Event{Type: "revoked", DedupKey: "revoked:3", Time: t0})
	f.deliv.RunOnce(t.Context())
	d := f.deliveries(t)[0]
	if d.Status != store.DeliveryPending || d.LastStatus != http.StatusUnauthorized {
		t.Fatalf("a delivery signed with another secret was accepted: %+v", d)
	}
}

func TestPumpAudit(t *testing.T) {
	f := newFixture(t, secret)
	f.subscribe(t, "wh_p", secret, "revoked")
	appendEv := func(action, object, result string) {
		err := f.st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			return tx.AppendAudit(ctx, &audit.Event{Time: t0, Actor: "token:x", Action: action, Object: object, Result: result, Detail: `{"reason":"keyCompromise"}`})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	appendEv("cert.revoke", "old", audit.ResultSuccess) // before the first pump: history
	if seen, err := PumpAudit(t.Context(), f.st, t0); err != nil || len(seen) != 0 {
		t.Fatal(seen, err)
	}
	appendEv("cert.revoke", "aa", audit.ResultSuccess)
	appendEv("cert.revoke", "bb", audit.ResultRefused)
	appendEv("cert.issue", "cc", audit.ResultSuccess) // not subscribed
	seen, err := PumpAudit(t.Context(), f.st, t0)
	if err != nil || len(seen) != 2 || seen[0].Object != "aa" || seen[1].Object != "cc" {
		t.Fatalf("PumpAudit saw %v, %v", seen, err)
	}
	if seen, err := PumpAudit(t.Context(), f.st, t0); err != nil || len(seen) != 0 {
		t.Fatalf("second pump saw %v, %v", seen, err)
	}
	ds := f.deliveries(t)
	if len(ds) != 1 || ds[0].DedupKey != "revoked:aa" {
		t.Fatalf("deliveries: %+v", ds)
	}
}
