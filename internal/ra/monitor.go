package ra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/notify"
	"github.com/sigil-pki/sigil/internal/report"
	"github.com/sigil-pki/sigil/internal/store"
)

// monitorHooks are set once at start by the composition root.
type monitorHooks struct {
	// gate, when set, must pass before any state-changing request: it fails
	// while a required audit sink cannot be written (fail closed).
	gate   func(ctx context.Context) error
	sealer Sealer // the KEK (Sealer is declared in acme.go)
	// lint, when set, lints certificates new to the inventory at ingestion
	// (inventory.Batch.LintNew); assessment reads the stored results.
	lint func(der []byte) *store.InventoryLint
}

// SetWriteGate installs the check every state-changing request must pass
// (see monitorHooks.gate). Call before serving.
func (r *RA) SetWriteGate(gate func(ctx context.Context) error) { r.monitor.gate = gate }

// SetSealer installs the sealer of webhook secrets. Call before serving.
func (r *RA) SetSealer(s Sealer) { r.monitor.sealer = s }

// SetInventoryLinter installs the linter of certificates entering the
// inventory (see monitorHooks.lint). Call before serving.
func (r *RA) SetInventoryLinter(lint func(der []byte) *store.InventoryLint) { r.monitor.lint = lint }

// gateWrite refuses, with 503 and an audited refusal, a state-changing
// request while the write gate fails. Reads (actions ending in ".read") and
// the server's own work (the system caller: bootstrap, its TLS certificate,
// CRLs) pass: the gate stops clients, not the CA's upkeep.
func (r *RA) gateWrite(ctx context.Context, c Caller, a auth.Action, object string) error {
	if r.monitor.gate == nil || strings.HasSuffix(string(a), ".read") || c.name() == System {
		return nil
	}
	if err := r.monitor.gate(ctx); err != nil {
		return r.refused(ctx, c, string(a), object, &fail.Error{Kind: fail.Unavailable,
			Msg: "a required audit sink cannot be written: the change was refused (" + err.Error() + ")", Reason: err})
	}
	return nil
}

// WebhookRequest subscribes a URL to events.
type WebhookRequest struct {
	URL    string
	Events []string
	Secret []byte // the HMAC key shared with the receiver, 16 to 1024 bytes
}

// AddWebhook validates and stores a subscription, its secret sealed.
func (r *RA) AddWebhook(ctx context.Context, c Caller, req WebhookRequest) (*store.Webhook, error) {
	if err := r.authorize(ctx, c, auth.NotifyWrite, req.URL); err != nil {
		return nil, err
	}
	w, err := r.newWebhook(c, req)
	if err != nil {
		return nil, r.refused(ctx, c, string(auth.NotifyWrite), req.URL, err)
	}
	err = r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.InsertWebhook(ctx, w); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, string(auth.NotifyWrite), w.ID, audit.ResultSuccess, map[string]any{"url": w.URL, "events": w.Events, "op": "add"}))
	})
	if err != nil {
		return nil, auditErr(err)
	}
	return w, nil
}

func (r *RA) newWebhook(c Caller, req WebhookRequest) (*store.Webhook, error) {
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(req.URL) > 2048 {
		return nil, fail.New(fail.Malformed, "invalid webhook URL %q: want http(s)://host/path without credentials", req.URL)
	}
	if len(req.Events) == 0 {
		return nil, fail.New(fail.Malformed, "no events: give one or more of %s", strings.Join(notify.Events, ", "))
	}
	events := slices.Clone(req.Events)
	slices.Sort(events)
	events = slices.Compact(events)
	for _, e := range events {
		if !slices.Contains(notify.Events, e) {
			return nil, fail.New(fail.Malformed, "unknown event %q: use %s", e, strings.Join(notify.Events, ", "))
		}
	}
	if len(req.Secret) < 16 || len(req.Secret) > 1024 {
		return nil, fail.New(fail.Malformed, "the webhook secret must be 16 to 1024 bytes (got %d)", len(req.Secret))
	}
	if r.monitor.sealer == nil {
		return nil, fail.New(fail.Internal, "no key-encryption key to seal webhook secrets")
	}
	idb := make([]byte, 8)
	if _, err := rand.Read(idb); err != nil {
		return nil, fail.Wrap(fail.Internal, err)
	}
	id := "wh_" + hex.EncodeToString(idb)
	sealed, err := r.monitor.sealer.Seal(req.Secret, notify.SecretAD(id))
	if err != nil {
		return nil, fail.Wrap(fail.Internal, fmt.Errorf("sealing the webhook secret: %w", err))
	}
	return &store.Webhook{ID: id, URL: req.URL, Events: events, SecretSealed: sealed, CreatedBy: c.name(), CreatedAt: r.now().UTC().Truncate(time.Microsecond)}, nil
}

// RemoveWebhook deletes a subscription and its deliveries.
func (r *RA) RemoveWebhook(ctx context.Context, c Caller, id string) error {
	if err := r.authorize(ctx, c, auth.NotifyWrite, id); err != nil {
		return err
	}
	err := r.store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.DeleteWebhook(ctx, id); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, r.event(c, string(auth.NotifyWrite), id, audit.ResultSuccess, map[string]string{"op": "remove"}))
	})
	if err != nil {
		if fe := storeErr(err, "webhook "+id); fail.KindOf(fe) == fail.NotFound {
			return r.refused(ctx, c, string(auth.NotifyWrite), id, fe)
		}
		return auditErr(err)
	}
	return nil
}

// Webhooks lists subscriptions (never their secrets).
func (r *RA) Webhooks(ctx context.Context, c Caller) ([]*store.Webhook, error) {
	if err := r.authorize(ctx, c, auth.NotifyRead, ""); err != nil {
		return nil, err
	}
	ws, err := r.store.ListWebhooks(ctx)
	for _, w := range ws {
		w.SecretSealed = nil
	}
	return ws, storeErr(err, "webhooks")
}

// Deliveries lists webhook deliveries, dead letters included.
func (r *RA) Deliveries(ctx context.Context, c Caller, f store.DeliveryFilter) ([]*store.Delivery, error) {
	if err := r.authorize(ctx, c, auth.NotifyRead, ""); err != nil {
		return nil, err
	}
	ds, err := r.store.ListDeliveries(ctx, f)
	return ds, storeErr(err, "deliveries")
}

// Findings lists risk findings.
func (r *RA) Findings(ctx context.Context, c Caller, f store.FindingFilter) ([]*store.Finding, error) {
	if err := r.authorize(ctx, c, auth.FindingsRead, ""); err != nil {
		return nil, err
	}
	fs, err := r.store.ListFindings(ctx, f)
	return fs, storeErr(err, "findings")
}

// Report builds the posture report.
func (r *RA) Report(ctx context.Context, c Caller) (*report.Report, error) {
	if err := r.authorize(ctx, c, auth.FindingsRead, "report"); err != nil {
		return nil, err
	}
	rep, err := report.Build(ctx, r.store, r.now())
	return rep, storeErr(err, "report")
}
