// Package notify delivers events (expiry, revocation, new findings) to
// webhook subscribers: each delivery is a JSON body signed with HMAC-SHA256
// under the subscriber's secret, retried with exponential backoff and kept
// as a dead letter after the last attempt. An event is delivered once per
// subscriber and dedup key, so a rule that keeps firing does not page twice.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>" where the
// MAC is over "<t>.<body>": the timestamp is signed so a captured delivery
// cannot be replayed later than the receiver's tolerance.
const SignatureHeader = "Sigil-Signature"

// Events a subscription may name.
var Events = []string{"expiring", "expired", "revoked", "issued", "finding.low", "finding.medium", "finding.high", "finding.critical"}

// SecretAD binds a sealed webhook secret to its webhook ID, so a sealed
// value copied to another row does not open.
func SecretAD(id string) []byte { return []byte("sigil/webhook-secret/v1:" + id) }

// Event is something subscribers may hear about.
type Event struct {
	Type     string // one of Events
	DedupKey string // one delivery per subscriber and key, e.g. "expiring:<fp>:30d"
	Time     time.Time
	Data     any // JSON-encoded as "data"
}

// payload is the delivered body.
type payload struct {
	ID   string    `json:"id"` // the dedup key: receivers may deduplicate on it too
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	Data any       `json:"data"`
}

// Sign returns the Sigil-Signature header value for body at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a Sigil-Signature header against body, refusing a
// signature older or newer than tolerance. Receivers in Go can use it as is.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return errors.New("malformed signature header")
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("malformed signature header: want t=<unix>,v1=<hex>")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("signature timestamp is %s away from now (tolerance %s)", d.Round(time.Second), tolerance)
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("signature does not match")
}

// Enqueue records ev for every subscriber of its type, once per dedup key,
// and returns how many deliveries were added.
func Enqueue(ctx context.Context, st store.Store, ev Event) (int, error) {
	hooks, err := st.ListWebhooks(ctx)
	if err != nil {
		return 0, err
	}
	return enqueueTo(ctx, st, ev, subscribers(hooks, ev.Type))
}

// subscribers is the hooks that subscribe to events of type typ.
func subscribers(hooks []*store.Webhook, typ string) []*store.Webhook {
	var subs []*store.Webhook
	for _, w := range hooks {
		if slices.Contains(w.Events, typ) {
			subs = append(subs, w)
		}
	}
	return subs
}

// enqueueTo records ev for subs, once per dedup key.
func enqueueTo(ctx context.Context, st store.Store, ev Event, subs []*store.Webhook) (int, error) {
	if len(subs) == 0 {
		return 0, nil
	}
	body, err := json.Marshal(payload{ID: ev.DedupKey, Type: ev.Type, Time: ev.Time.UTC(), Data: ev.Data})
	if err != nil {
		return 0, fmt.Errorf("encoding event %s: %w", ev.DedupKey, err)
	}
	n := 0
	err = st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		n = 0
		for _, w := range subs {
			ok, err := tx.EnqueueDelivery(ctx, &store.Delivery{
				WebhookID: w.ID, Event: ev.Type, DedupKey: ev.DedupKey, Payload: body,
				Status: store.DeliveryPending, NextAttemptAt: ev.Time, CreatedAt: ev.Time,
			})
			if err != nil {
				return err
			}
			if ok {
				n++
			}
		}
		return nil
	})
	return n, err
}

// Opener opens sealed webhook secrets (keys.KEK implements it).
type Opener interface {
	Open(sealed, additionalData []byte) ([]byte, error)
}

// Deliverer sends due deliveries. Run it on one server at a time (under the
// background lease); a delivery in flight when the lease moves may be sent
// twice, which the payload ID lets receivers notice.
type Deliverer struct {
	Store   store.Store
	Secrets Opener
	HTTP    *http.Client // default: 10 s timeout
	Log     *slog.Logger
	Now     func() time.Time
	// MaxAttempts before a delivery becomes a dead letter (default 8).
	MaxAttempts int
	// Backoff is the wait after the first failure, doubled after each
	// further one up to MaxBackoff (defaults 30 s and 1 h).
	Backoff, MaxBackoff time.Duration
}

func (d *Deliverer) defaults() {
	if d.HTTP == nil {
		d.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = 8
	}
	if d.Backoff <= 0 {
		d.Backoff = 30 * time.Second
	}
	if d.MaxBackoff <= 0 {
		d.MaxBackoff = time.Hour
	}
}

// backoff is the wait after attempt n (1-based) failed.
func (d *Deliverer) backoff(n int) time.Duration {
	b := d.Backoff
	for i := 1; i < n && b < d.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, d.MaxBackoff)
}

// RunOnce sends every due delivery once and returns how many were
// delivered. Failures are recorded on the delivery, not returned.
func (d *Deliverer) RunOnce(ctx context.Context) (int, error) {
	d.defaults()
	due, err := d.Store.ListDeliveries(ctx, store.DeliveryFilter{Status: store.DeliveryPending, DueBy: d.Now(), Limit: 100})
	if err != nil {
		return 0, err
	}
	hooks := map[string]*store.Webhook{}
	delivered := 0
	for _, dl := range due {
		if ctx.Err() != nil {
			return delivered, ctx.Err()
		}
		w, ok := hooks[dl.WebhookID]
		if !ok {
			if w, err = d.Store.GetWebhook(ctx, dl.WebhookID); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					continue // removed meanwhile; its deliveries went with it
				}
				return delivered, err
			}
			hooks[dl.WebhookID] = w
		}
		status, sendErr := d.send(ctx, w, dl)
		dl.Attempts++
		dl.LastStatus = status
		if sendErr == nil {
			dl.Status, dl.LastError, dl.DeliveredAt, dl.NextAttemptAt = store.DeliveryDelivered, "", d.Now(), time.Time{}
			delivered++
		} else {
			dl.LastError = sendErr.Error()
			if dl.Attempts >= d.MaxAttempts {
				dl.Status, dl.NextAttemptAt = store.DeliveryDead, time.Time{}
				d.Log.Warn("webhook delivery dead-lettered", "webhook", w.ID, "delivery", dl.ID, "attempts", dl.Attempts, "err", sendErr)
			} else {
				dl.NextAttemptAt = d.Now().Add(d.backoff(dl.Attempts))
			}
		}
		if err := d.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.UpdateDelivery(ctx, dl) }); err != nil {
			return delivered, err
		}
	}
	return delivered, nil
}

// send POSTs one delivery and returns the HTTP status (0 if none).
func (d *Deliverer) send(ctx context.Context, w *store.Webhook, dl *store.Delivery) (int, error) {
	secret, err := d.Secrets.Open(w.SecretSealed, SecretAD(w.ID))
	if err != nil {
		return 0, fmt.Errorf("opening the webhook secret (wrong key-encryption key?): %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(dl.Payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sigil-webhook/1")
	req.Header.Set("Sigil-Event", dl.Event)
	req.Header.Set("Sigil-Delivery", strconv.FormatInt(dl.ID, 10))
	req.Header.Set(SignatureHeader, Sign(secret, d.Now(), dl.Payload))
	resp, err := d.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", w.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("POST %s: HTTP %d", w.URL, resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// Run delivers due deliveries every poll until ctx ends.
func (d *Deliverer) Run(ctx context.Context, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := d.RunOnce(ctx); err != nil && ctx.Err() == nil {
			d.Log.Error("delivering webhooks", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
