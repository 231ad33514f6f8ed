package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/assess"
	"github.com/sigil-pki/sigil/internal/auth"
	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

// assessRoutes registers findings, report and webhook endpoints.
func (s *Server) assessRoutes(a func(pattern string, h http.HandlerFunc)) {
	a("GET /api/v1/findings", s.listFindings)
	a("GET /api/v1/findings/rules", s.listRules)
	a("GET /api/v1/report", s.report)
	a("GET /api/v1/webhooks", s.listWebhooks)
	a("POST /api/v1/webhooks", s.addWebhook)
	a("DELETE /api/v1/webhooks/{id}", s.removeWebhook)
	a("GET /api/v1/webhooks/deliveries", s.listDeliveries)
}

// FindingView is a finding as the API shows it, with its rule's text.
type FindingView struct {
	ID          string    `json:"id"`
	Rule        string    `json:"rule"`
	Title       string    `json:"title"`
	Severity    string    `json:"severity"`
	Subject     string    `json:"subject"`
	Serial      string    `json:"serial,omitempty"`
	Location    string    `json:"location,omitempty"`
	Message     string    `json:"message"`
	Remediation string    `json:"remediation"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	ResolvedAt  time.Time `json:"resolved_at,omitzero"`
}

func (s *Server) listFindings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.FindingFilter{Subject: strings.ToLower(q.Get("identity")), Rule: q.Get("rule"), IncludeResolved: q.Get("all") == "true", Limit: 10000}
	if sev := q.Get("severity"); sev != "" {
		if f.MinRank = assess.Rank(sev); f.MinRank < 0 {
			writeProblem(w, s.Log, fail.New(fail.Malformed, "unknown severity %q: use info, low, medium, high or critical", sev))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			writeProblem(w, s.Log, fail.New(fail.Malformed, "invalid limit %q", v))
			return
		}
		f.Limit = min(n, 100000)
	}
	fs, err := s.RA.Findings(r.Context(), caller(r), f)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	out := make([]FindingView, 0, len(fs))
	for _, x := range fs {
		v := FindingView{ID: x.ID, Rule: x.Rule, Title: x.Rule, Severity: x.Severity, Subject: x.Subject, Serial: x.Serial,
			Location: x.Location, Message: x.Message, FirstSeen: x.FirstSeen, LastSeen: x.LastSeen, ResolvedAt: x.ResolvedAt}
		if rule := assess.RuleByID(x.Rule); rule != nil {
			v.Title, v.Remediation = rule.Title, rule.Remediation
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "count": len(out)})
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request) {
	var out []map[string]string
	for _, rule := range assess.Rules() {
		out = append(out, map[string]string{"id": rule.ID, "severity": rule.Severity, "title": rule.Title, "description": rule.Description, "remediation": rule.Remediation})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "count": len(out)})
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	rep, err := s.RA.Report(r.Context(), caller(r))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// WebhookRequest is the body of POST /api/v1/webhooks.
type WebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret string   `json:"secret"` // the shared HMAC key; stored sealed, never returned
}

// WebhookView is a subscription without its secret.
type WebhookView struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

func webhookView(w *store.Webhook) WebhookView {
	return WebhookView{ID: w.ID, URL: w.URL, Events: w.Events, CreatedBy: w.CreatedBy, CreatedAt: w.CreatedAt}
}

func (s *Server) addWebhook(w http.ResponseWriter, r *http.Request) {
	var req WebhookRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		s.refuse(w, r, auth.NotifyWrite, "", err)
		return
	}
	hook, err := s.RA.AddWebhook(r.Context(), caller(r), ra.WebhookRequest{URL: req.URL, Events: req.Events, Secret: []byte(req.Secret)})
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	writeJSON(w, http.StatusCreated, webhookView(hook))
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	hs, err := s.RA.Webhooks(r.Context(), caller(r))
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	out := make([]WebhookView, 0, len(hs))
	for _, h := range hs {
		out = append(out, webhookView(h))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "count": len(out)})
}

func (s *Server) removeWebhook(w http.ResponseWriter, r *http.Request) {
	if err := s.RA.RemoveWebhook(r.Context(), caller(r), r.PathValue("id")); err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// DeliveryView is a delivery without its payload.
type DeliveryView struct {
	ID            int64     `json:"id"`
	WebhookID     string    `json:"webhook_id"`
	Event         string    `json:"event"`
	Key           string    `json:"key"`
	Status        string    `json:"status"`
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	LastStatus    int       `json:"last_status,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	DeliveredAt   time.Time `json:"delivered_at,omitzero"`
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.DeliveryFilter{WebhookID: q.Get("webhook"), Status: q.Get("status"), Limit: 1000}
	switch f.Status {
	case "", store.DeliveryPending, store.DeliveryDelivered, store.DeliveryDead:
	default:
		writeProblem(w, s.Log, fail.New(fail.Malformed, "unknown status %q: use pending, delivered or dead", f.Status))
		return
	}
	ds, err := s.RA.Deliveries(r.Context(), caller(r), f)
	if err != nil {
		writeProblem(w, s.Log, err)
		return
	}
	out := make([]DeliveryView, 0, len(ds))
	for _, d := range ds {
		out = append(out, DeliveryView{ID: d.ID, WebhookID: d.WebhookID, Event: d.Event, Key: d.DedupKey, Status: d.Status, Attempts: d.Attempts,
			NextAttemptAt: d.NextAttemptAt, LastStatus: d.LastStatus, LastError: d.LastError, CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "count": len(out)})
}
