package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/assess"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/lint"
	"github.com/sigil-pki/sigil/internal/notify"
	"github.com/sigil-pki/sigil/internal/siem"
	"github.com/sigil-pki/sigil/internal/store"
)

// MonitorConfig configures assessment, notifications and audit sinks.
type MonitorConfig struct {
	// AuditSinks are syslog URLs (siem.ParseSink) the audit log is shipped
	// to after commit, by the background-job leader.
	AuditSinks []string
	// AuditSinkRequired: while any sink cannot be written, state-changing
	// requests fail closed with 503.
	AuditSinkRequired bool
	// AssessInterval: how often every identity is re-evaluated (default 10m).
	// Changes (scans, revocations) are evaluated within seconds in between.
	AssessInterval time.Duration
	// ExpiryThresholds for the expiring rule (default 30d, 7d, 1d).
	ExpiryThresholds []time.Duration
	// AgentStaleAfter: an active agent unseen this long while its
	// certificate is valid is a finding (default 7d).
	AgentStaleAfter time.Duration
	// Owners: when set, owners outside this list are findings.
	Owners []string
	// KeyBlocklist: file of compromised keys' SPKI SHA-256, one per line.
	KeyBlocklist string
	// TrustAnchors: PEM file of CA certificates besides Sigil's whose
	// certificates count as managed.
	TrustAnchors string
	// WebhookBackoff: wait before the first retry of a failed delivery,
	// doubled each time up to 1h (default 30s); WebhookAttempts before a
	// dead letter (default 8).
	WebhookBackoff  time.Duration
	WebhookAttempts int
}

// monitorTick is how often the leader looks for changes to re-assess and
// webhooks to deliver.
const monitorTick = time.Second

// fullRunMinGap bounds how often issuance triggers a full re-evaluation (a
// renewal changes which certificates are superseded). It is well under the
// renewal grace (1 h), so a renewed certificate is known superseded before
// its predecessor could count as overdue; and long enough that agents
// renewing all day do not keep the leader loading the whole store.
const fullRunMinGap = 5 * time.Minute

type monitor struct {
	cfg       MonitorConfig
	sinks     []*siem.Sink
	gate      *siem.Gate
	engine    *assess.Engine
	deliverer *notify.Deliverer

	runs      *prometheus.HistogramVec
	runErrors prometheus.Counter
	scans     *prometheus.HistogramVec

	mu   sync.Mutex
	last *assess.Summary
}

// setupMonitor builds the findings engine, the webhook deliverer and the
// audit sinks, and installs the fail-closed gate and the secret sealer on
// the RA. Called by New.
func (s *Server) setupMonitor(kek *keys.KEK) error {
	cfg := s.cfg.Monitor
	m := &monitor{cfg: cfg}
	seen := map[string]bool{}
	for _, raw := range cfg.AuditSinks {
		sk, err := siem.ParseSink(raw)
		if err != nil {
			return err
		}
		if seen[sk.Name()] {
			return fmt.Errorf("audit sink %s given twice", sk.Name())
		}
		seen[sk.Name()] = true
		m.sinks = append(m.sinks, sk)
	}
	if cfg.AuditSinkRequired {
		if len(m.sinks) == 0 {
			return errors.New("--audit-sink-required needs at least one --audit-sink")
		}
		m.gate = &siem.Gate{Store: s.store}
		for _, sk := range m.sinks {
			m.gate.Required = append(m.gate.Required, sk.Name())
		}
		s.ra.SetWriteGate(m.gate.Check)
	}
	s.ra.SetSealer(kek)

	ac := assess.Config{ExpiryThresholds: cfg.ExpiryThresholds, Owners: cfg.Owners, AgentStaleAfter: cfg.AgentStaleAfter}
	m.engine = &assess.Engine{Store: s.store, Config: ac, Log: s.log, Now: time.Now}
	if cfg.KeyBlocklist != "" {
		f, err := os.Open(cfg.KeyBlocklist)
		if err != nil {
			return fmt.Errorf("key blocklist: %w", err)
		}
		m.engine.Blocklist, err = assess.ParseBlocklist(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("key blocklist %s: %w", cfg.KeyBlocklist, err)
		}
	}
	if cfg.TrustAnchors != "" {
		data, err := os.ReadFile(cfg.TrustAnchors)
		if err != nil {
			return fmt.Errorf("trust anchors: %w", err)
		}
		certs, err := ca.ParseCertificatesPEM(data)
		if err != nil {
			return fmt.Errorf("trust anchors %s: %w", cfg.TrustAnchors, err)
		}
		m.engine.TrustAnchors = certs
	}
	linter, err := lint.NewWithWarnings()
	if err != nil {
		return err
	}
	m.engine.Lint = assess.LintWith(linter)
	// Discovered and imported certificates are linted once, on arrival.
	s.ra.SetInventoryLinter(assess.InventoryLinter(linter))
	m.deliverer = &notify.Deliverer{Store: s.store, Secrets: kek, Log: s.log, Backoff: cfg.WebhookBackoff, MaxAttempts: cfg.WebhookAttempts}

	m.runs = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sigil_assess_run_duration_seconds", Help: "Duration of findings runs, by mode (full or incremental).",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, []string{"mode"})
	m.runErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "sigil_assess_run_errors_total", Help: "Findings runs that failed."})
	m.scans = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sigil_scan_duration_seconds", Help: "Duration of discovery scans, by kind (net, fs, agent).",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
	}, []string{"kind"})
	s.monitor = m
	return nil
}

// ObserveScan records a discovery scan's duration in sigil_scan_duration_seconds
// (the hook for the discovery packages, wired by the composition root).
func (s *Server) ObserveScan(kind string, d time.Duration) {
	if s.monitor != nil {
		s.monitor.scans.WithLabelValues(kind).Observe(d.Seconds())
	}
}

// registerMonitorMetrics adds the monitor's metrics to the API's registry.
func (s *Server) registerMonitorMetrics(a *api.Server) {
	m := s.monitor
	if m == nil {
		return
	}
	reg := a.MetricsRegistry()
	reg.MustRegister(m.runs, m.runErrors, m.scans)
	if len(m.sinks) > 0 {
		desc := prometheus.NewDesc("sigil_audit_sink_up", "1 while the audit sink's last write succeeded and was reported recently, by sink.", []string{"sink"}, nil)
		reg.MustRegister(&sinkCollector{st: s.store, desc: desc, sinks: m.sinks})
	}
}

type sinkCollector struct {
	st    store.Reader
	desc  *prometheus.Desc
	sinks []*siem.Sink
}

func (c *sinkCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *sinkCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	states, _ := c.st.ListAuditSinkStates(ctx)
	for _, sk := range c.sinks {
		up := 0.0
		for _, st := range states {
			if st.Sink == sk.Name() && st.LastError == "" && time.Since(st.UpdatedAt) <= siem.DefaultMaxAge {
				up = 1
			}
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, up, sk.Name())
	}
}

// runMonitor runs, while this server holds the background lease: the audit
// shipper, the webhook deliverer, and the findings engine (a full run at
// once and every AssessInterval; incremental runs for identities that
// discovery reported or that were revoked, within a second or two). It
// returns when ctx ends.
func (s *Server) runMonitor(ctx context.Context) {
	m := s.monitor
	if m == nil {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if len(m.sinks) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh := &siem.Shipper{Store: s.store, Sinks: m.sinks, Log: s.log}
			_ = sh.Run(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = m.deliverer.Run(ctx, monitorTick)
	}()

	interval := m.cfg.AssessInterval
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	var lastFull, invSince time.Time
	dirty := true
	t := time.NewTicker(monitorTick)
	defer t.Stop()
	for {
		now := time.Now()
		evs, err := notify.PumpAudit(ctx, s.store, now)
		if err != nil && ctx.Err() == nil {
			s.log.Error("turning audit events into notifications", "err", err)
		}
		var touched []string
		for _, e := range evs {
			if e.Action == "cert.issue" {
				// A renewal also supersedes older certificates, which only a
				// full run sees: one follows within fullRunMinGap.
				dirty = true
				if assess.RenewalManaged(e.Actor) {
					// Agents, ACME clients and the server renew on schedule:
					// their new certificates wait for that full run rather
					// than cost an evaluation per renewal.
					continue
				}
				// The issuance event names the certificate's fingerprint,
				// sparing a read per issuance.
				var d struct {
					SHA256 string `json:"sha256"`
				}
				if json.Unmarshal([]byte(e.Detail), &d) == nil && d.SHA256 != "" {
					touched = append(touched, d.SHA256)
					continue
				}
			}
			if c, err := s.store.GetCertificate(ctx, identity.Serial(e.Object)); err == nil && c.Fingerprint != "" {
				touched = append(touched, c.Fingerprint)
			}
		}
		// Identities discovery reported since the last look.
		if !invSince.IsZero() {
			ids, err := s.store.ListInventory(ctx, store.InventoryFilter{SeenSince: invSince, Limit: 5001})
			if err != nil && ctx.Err() == nil {
				s.log.Error("reading inventory changes", "err", err)
			}
			if len(ids) > 5000 {
				dirty = true
			} else {
				for _, id := range ids {
					touched = append(touched, id.Fingerprint)
				}
			}
		}
		invSince = now.Add(-2 * time.Second) // overlap: a report committed while we read is seen next time
		if lastFull.IsZero() || now.Sub(lastFull) >= interval || dirty && now.Sub(lastFull) >= fullRunMinGap {
			s.assessRun(ctx, "full", nil)
			lastFull, dirty = now, false
		} else if len(touched) > 0 {
			s.assessRun(ctx, "incremental", touched)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) assessRun(ctx context.Context, mode string, only []string) {
	m := s.monitor
	var sum *assess.Summary
	var err error
	if only == nil {
		sum, err = m.engine.Run(ctx)
	} else {
		sum, err = m.engine.RunFor(ctx, only)
	}
	if err != nil {
		if ctx.Err() == nil {
			m.runErrors.Inc()
			s.log.Error("findings run", "mode", mode, "err", err)
		}
		return
	}
	m.runs.WithLabelValues(mode).Observe(sum.Duration.Seconds())
	if sum.Opened > 0 || sum.Resolved > 0 {
		s.log.Info("findings run", "mode", mode, "identities", sum.Identities, "opened", sum.Opened, "resolved", sum.Resolved, "notified", sum.Notified)
	}
	m.mu.Lock()
	m.last = sum
	m.mu.Unlock()
}

// AssessNow runs the findings engine over everything at once (tests, tools).
func (s *Server) AssessNow(ctx context.Context) (*assess.Summary, error) {
	if s.monitor == nil {
		return nil, errors.New("monitoring is not set up")
	}
	return s.monitor.engine.Run(ctx)
}
