package api

import (
	"context"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sigil-pki/sigil/internal/store"
)

// metrics are the server's Prometheus metrics. Each Server has its own
// registry, so several servers in one test process do not collide.
type metrics struct {
	reg      *prometheus.Registry
	issued   *prometheus.CounterVec
	failed   *prometheus.CounterVec
	revoked  prometheus.Counter
	duration *prometheus.HistogramVec

	profMu   sync.Mutex
	profiles map[string]bool // profile label values in use
}

func newMetrics(leader func() bool, st store.Reader, now func() time.Time) *metrics {
	m := &metrics{
		reg:      prometheus.NewRegistry(),
		profiles: map[string]bool{},
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_certificates_issued_total", Help: "Certificates issued through the API, by profile.",
		}, []string{"profile"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_issuance_failures_total", Help: "Issuance requests that did not produce a certificate, by problem kind.",
		}, []string{"kind"}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sigil_certificates_revoked_total", Help: "Certificates revoked through the API.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sigil_issue_duration_seconds", Help: "Time to handle an issuance request, by requested profile.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"profile"}),
	}
	version := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sigil_build_info", Help: "Build information.", ConstLabels: prometheus.Labels{"version": version}})
	build.Set(1)
	lead := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sigil_background_leader", Help: "1 while this server holds the background-job lease (runs the CRL refresh), else 0.",
	}, func() float64 {
		if leader() {
			return 1
		}
		return 0
	})
	m.reg.MustRegister(m.issued, m.failed, m.revoked, m.duration, build, lead,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	if now == nil {
		now = time.Now
	}
	if st != nil {
		m.reg.MustRegister(&storeCollector{st: st, now: now, maxAge: storeStatsMaxAge})
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// maxProfileLabels bounds the profile label's values: the profile comes from
// the request, and a caller must not be able to grow the registry at will.
const maxProfileLabels = 200

// observeIssue records an issuance request's duration under its requested
// profile (the first maxProfileLabels distinct names; later ones as "other").
func (m *metrics) observeIssue(profile string, d time.Duration) {
	m.profMu.Lock()
	if !m.profiles[profile] {
		if len(m.profiles) < maxProfileLabels {
			m.profiles[profile] = true
		} else {
			profile = "other"
		}
	}
	m.profMu.Unlock()
	m.duration.WithLabelValues(profile).Observe(d.Seconds())
}

// MetricsRegistry lets the composition root register collectors of other
// packages (audit sinks, webhook deliveries, findings runs, scans) on this
// server's /metrics.
func (s *Server) MetricsRegistry() prometheus.Registerer { return s.metrics().reg }

// storeStatsMaxAge: the store's counts are read at most this often, so a
// scraper cannot make the server scan large tables in a loop.
const storeStatsMaxAge = 10 * time.Second

var (
	descCerts = prometheus.NewDesc("sigil_certificates", "Sigil certificate records, by status and profile.", []string{"status", "profile"}, nil)
	descNA    = prometheus.NewDesc("sigil_certificate_not_after_timestamp_seconds",
		"Earliest notAfter (unix seconds) among unexpired issued certificates of a profile.", []string{"profile"}, nil)
	descToExpiry = prometheus.NewDesc("sigil_seconds_to_earliest_expiry",
		"Seconds until the earliest unexpired issued Sigil certificate or inventory certificate expires (absent when there is none).", nil, nil)
	descInventory = prometheus.NewDesc("sigil_inventory_identities", "Inventory identities, by kind and source.", []string{"kind", "source"}, nil)
	descInvNA     = prometheus.NewDesc("sigil_inventory_not_after_timestamp_seconds",
		"Earliest notAfter (unix seconds) among unexpired inventory identities of a kind and source.", []string{"kind", "source"}, nil)
	descFindings = prometheus.NewDesc("sigil_findings_open", "Open risk findings, by severity.", []string{"severity"}, nil)
	descAgents   = prometheus.NewDesc("sigil_agents", "Enrolled agents (machines), by state.", []string{"state"}, nil)
	descScrapeOK = prometheus.NewDesc("sigil_store_stats_up", "1 if the store's counts could be read at the last refresh.", nil, nil)
	severities   = []string{"info", "low", "medium", "high", "critical"}
)

// storeCollector reads counts from the store at scrape time (cached).
type storeCollector struct {
	st     store.Reader
	now    func() time.Time
	maxAge time.Duration

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCerts, descNA, descToExpiry, descInventory, descInvNA, descFindings, descAgents, descScrapeOK} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.metrics == nil || now.Sub(c.at) >= c.maxAge || now.Before(c.at) {
		c.metrics = c.read(now)
		c.at = now
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

func (c *storeCollector) read(now time.Time) []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	ok := 1.0
	var earliest time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (earliest.IsZero() || t.Before(earliest)) {
			earliest = t
		}
	}
	if st, err := c.st.MonitorStats(ctx, now); err == nil {
		perProfile := map[string]time.Time{}
		for _, s := range st.Certificates {
			gauge(descCerts, float64(s.Count), s.Status, s.Profile)
			if s.Status == "issued" && !s.EarliestExpiry.IsZero() {
				perProfile[s.Profile] = s.EarliestExpiry
				consider(s.EarliestExpiry)
			}
		}
		for p, t := range perProfile {
			gauge(descNA, float64(t.Unix()), p)
		}
		for _, s := range st.Inventory {
			gauge(descInventory, float64(s.Count), s.Kind, s.Source)
			if !s.EarliestExpiry.IsZero() {
				gauge(descInvNA, float64(s.EarliestExpiry.Unix()), s.Kind, s.Source)
				if s.Kind == string(store.KindX509) {
					consider(s.EarliestExpiry)
				}
			}
		}
	} else {
		ok = 0
	}
	if !earliest.IsZero() {
		gauge(descToExpiry, earliest.Sub(now).Seconds())
	}
	if counts, err := c.st.CountOpenFindings(ctx); err == nil {
		for _, sev := range severities {
			gauge(descFindings, float64(counts[sev]), sev)
		}
	} else {
		ok = 0
	}
	if ms, err := c.st.ListMachines(ctx); err == nil {
		by := map[string]int{}
		for _, m := range ms {
			by[string(m.State)]++
		}
		for s, n := range by {
			gauge(descAgents, float64(n), s)
		}
	} else {
		ok = 0
	}
	gauge(descScrapeOK, ok)
	return out
}

// storeReader is the RA's store, or nil when the server has no RA (tests).
func (s *Server) storeReader() store.Reader {
	if s.RA == nil {
		return nil
	}
	return s.RA.Store()
}
