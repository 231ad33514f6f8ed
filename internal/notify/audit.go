package notify

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/store"
)

// auditCursor names the row of audit_sink_state that holds how far the
// audit log has been turned into notifications.
const auditCursor = "notify:audit"

// auditEvents maps successful audit actions to webhook event types.
var auditEvents = map[string]string{
	"cert.issue":  "issued",
	"cert.revoke": "revoked",
}

// PumpAudit turns audit events committed since the last call into
// notifications (cert.issue → issued, cert.revoke → revoked) and moves its
// cursor, kept in the store so another server continues where this one
// stopped. On first use it starts at the head: history is not notified.
// It returns the successful certificate events it processed, so the caller
// can re-assess what they touched.
func PumpAudit(ctx context.Context, st store.Store, now time.Time) ([]*audit.Event, error) {
	states, err := st.ListAuditSinkStates(ctx)
	if err != nil {
		return nil, err
	}
	cur := int64(-1)
	for _, s := range states {
		if s.Sink == auditCursor {
			cur = s.Seq
		}
	}
	if cur < 0 {
		head, _, err := st.AuditHead(ctx)
		if err != nil {
			return nil, err
		}
		return nil, putCursor(ctx, st, head, now)
	}
	// The subscriptions once per call, not per event: during heavy issuance
	// a call sees hundreds of events, and most estates subscribe to none.
	hooks, err := st.ListWebhooks(ctx)
	if err != nil {
		return nil, err
	}
	var seen []*audit.Event
	for {
		evs, err := st.ListAudit(ctx, store.AuditFilter{AfterSeq: cur, Limit: 500})
		if err != nil || len(evs) == 0 {
			return seen, err
		}
		for _, e := range evs {
			typ, ok := auditEvents[e.Action]
			if !ok || e.Result != audit.ResultSuccess {
				continue
			}
			seen = append(seen, e)
			subs := subscribers(hooks, typ)
			if len(subs) == 0 {
				continue
			}
			var detail map[string]any
			_ = json.Unmarshal([]byte(e.Detail), &detail)
			data := map[string]any{"serial": e.Object, "actor": e.Actor, "audit_seq": e.Seq, "detail": detail}
			if _, err := enqueueTo(ctx, st, Event{Type: typ, DedupKey: typ + ":" + e.Object, Time: e.Time, Data: data}, subs); err != nil {
				return seen, err
			}
		}
		cur = evs[len(evs)-1].Seq
		if err := putCursor(ctx, st, cur, now); err != nil {
			return seen, err
		}
	}
}

func putCursor(ctx context.Context, st store.Store, seq int64, now time.Time) error {
	return st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.PutAuditSinkState(ctx, &store.AuditSinkState{Sink: auditCursor, Seq: seq, UpdatedAt: now})
	})
}
