package api

import (
	"net/http"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics. Each Server has its own
// registry, so several servers in one test process do not collide.
type metrics struct {
	reg      *prometheus.Registry
	issued   *prometheus.CounterVec
	failed   *prometheus.CounterVec
	revoked  prometheus.Counter
	duration prometheus.Histogram
}

func newMetrics(leader func() bool) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_certificates_issued_total", Help: "Certificates issued through the API, by profile.",
		}, []string{"profile"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_issuance_failures_total", Help: "Issuance requests that did not produce a certificate, by problem kind.",
		}, []string{"kind"}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sigil_certificates_revoked_total", Help: "Certificates revoked through the API.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sigil_issue_duration_seconds", Help: "Time to handle an issuance request.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, 1},
		}),
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
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
