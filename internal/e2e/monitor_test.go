package e2e

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/notify"
	"github.com/sigil-pki/sigil/internal/server"
	"github.com/sigil-pki/sigil/internal/siem/siemtest"
	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
)

// startMonitored starts a server like startServer, with monitoring options
// and a short background interval.
func startMonitored(t *testing.T, dir string, mon server.MonitorConfig) *instance {
	t.Helper()
	return startMonitoredDB(t, dir, "", mon)
}

// startMonitoredDB is startMonitored on a given store (server.Config.DB).
func startMonitoredDB(t *testing.T, dir, db string, mon server.MonitorConfig) *instance {
	t.Helper()
	return startServerConfig(t, server.Config{DataDir: dir, DB: db, BackgroundInterval: time.Second, Monitor: mon})
}

// eventually retries check until it returns "" or the deadline passes.
func eventually(t *testing.T, what string, d time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		if last = check(); last == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

// hookReceiver verifies every webhook delivery's signature.
type hookReceiver struct {
	secret []byte
	mu     sync.Mutex
	events []map[string]any
	bad    []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := notify.Verify(h.secret, r.Header.Get(notify.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
		h.bad = append(h.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev map[string]any
	_ = json.Unmarshal(body, &ev)
	h.events = append(h.events, ev)
}

func (h *hookReceiver) ids() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, e["type"].(string)+" "+e["id"].(string))
	}
	return out
}

func scrape(t *testing.T, in *instance) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", in.srv.APIURL+"/metrics", nil)
	resp, err := in.api.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// metricValue returns the value of the sample of family name whose labels
// include want (counter, gauge, or a histogram's sample count).
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMonitoringEndToEnd(t *testing.T) {
	dir := t.TempDir()
	udp := siemtest.ListenUDP(t)
	hooks := &hookReceiver{secret: []byte("e2e-webhook-secret-0123456789")}
	hookSrv := httptest.NewServer(hooks)
	t.Cleanup(hookSrv.Close)

	in := startMonitored(t, dir, server.MonitorConfig{AuditSinks: []string{"syslog://" + udp.Addr}})
	in.applyProfiles()
	work := t.TempDir()
	secretFile := writeFile(t, work, "hook.key", append(hooks.secret, '\n'))
	out := in.mustCLI("notify", "add", "--webhook", hookSrv.URL+"/pki", "--events", "expiring,revoked,finding.critical", "--secret-file", secretFile)
	if !strings.Contains(out, "added") {
		t.Fatalf("notify add: %s", out)
	}
	// Bad input changes nothing and says why.
	if _, errOut, code := in.cli("notify", "add", "--webhook", "ftp://x", "--events", "revoked", "--secret-file", secretFile); code != 2 || !strings.Contains(errOut, "invalid webhook URL") {
		t.Fatalf("bad URL: exit %d %s", code, errOut)
	}
	if _, errOut, code := in.cli("notify", "add", "--webhook", hookSrv.URL, "--events", "everything", "--secret-file", secretFile); code != 2 || !strings.Contains(errOut, "unknown event") {
		t.Fatalf("bad event: exit %d %s", code, errOut)
	}

	before := scrape(t, in)
	issuedBefore, _ := metricValue(before, "sigil_certificates_issued_total", map[string]string{"profile": "owned"})

	// A 24-hour certificate issued by a token holder: nothing renews it,
	// so it is a critical "expiring" finding (within the 1-day threshold).
	in.mustCLI("cert", "issue", "--profile", "owned", "--name", "short.test", "--owner", "team-a", "--key-out", filepath.Join(work, "short.key"), "--out", filepath.Join(work, "short.crt"))
	in.mustCLI("cert", "issue", "--profile", "web", "--name", "gone.test", "--key-out", filepath.Join(work, "gone.key"), "--out", filepath.Join(work, "gone.crt"))
	var list struct {
		Items []struct {
			Serial string `json:"serial"`
			Name   string `json:"common_name"`
			SHA256 string `json:"sha256"`
		} `json:"items"`
	}
	if err := in.api.Do(t.Context(), "GET", "/api/v1/certificates?profile=web", nil, &list); err != nil {
		t.Fatal(err)
	}
	var gone string
	for _, c := range list.Items {
		if c.Name == "gone.test" {
			gone = c.Serial
		}
	}
	in.mustCLI("cert", "revoke", gone, "--reason", "keyCompromise")

	after := scrape(t, in)
	if v, _ := metricValue(after, "sigil_certificates_issued_total", map[string]string{"profile": "owned"}); v != issuedBefore+1 {
		t.Errorf("sigil_certificates_issued_total{profile=owned}: %v -> %v", issuedBefore, v)
	}
	if v, ok := metricValue(after, "sigil_issue_duration_seconds", map[string]string{"profile": "web"}); !ok || v < 1 {
		t.Errorf("sigil_issue_duration_seconds{profile=web} count = %v", v)
	}
	if v, ok := metricValue(after, "sigil_certificates_revoked_total", nil); !ok || v < 1 {
		t.Errorf("sigil_certificates_revoked_total = %v", v)
	}
	for _, name := range []string{"sigil_certificates", "sigil_findings_open", "sigil_seconds_to_earliest_expiry", "sigil_certificate_not_after_timestamp_seconds", "sigil_audit_sink_up", "sigil_build_info"} {
		if after[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}

	// Findings: the short certificate is critical; --fail-on exits 3.
	eventually(t, "expiring finding", 20*time.Second, func() string {
		out, _, _ := in.cli("findings", "list", "--severity", "critical", "-o", "json")
		if !strings.Contains(out, `"rule": "expiring"`) {
			return "findings: " + out
		}
		return ""
	})
	table := in.mustCLI("findings", "list", "--severity", "high")
	if !strings.Contains(table, "SEVERITY") || !strings.Contains(table, "expiring") || !strings.Contains(table, "threshold 24h") {
		t.Errorf("findings table:\n%s", table)
	}
	if _, errOut, code := in.cli("findings", "list", "--fail-on", "critical"); code != 3 || !strings.Contains(errOut, "at or above critical") {
		t.Errorf("--fail-on critical: exit %d %s", code, errOut)
	}
	if _, _, code := in.cli("findings", "list", "--rule", "weak-key", "--fail-on", "low"); code != 0 {
		t.Errorf("--fail-on with no matching findings: exit %d", code)
	}
	if _, errOut, code := in.cli("findings", "list", "--severity", "bad"); code != 1 || !strings.Contains(errOut, "unknown severity") {
		t.Errorf("bad severity: exit %d %s", code, errOut)
	}

	// Webhooks: revoked and expiring (once), finding.critical, all signed.
	eventually(t, "webhook deliveries", 20*time.Second, func() string {
		ids := strings.Join(hooks.ids(), "\n")
		for _, want := range []string{"revoked revoked:", "expiring expiring:", "finding.critical finding:expiring:"} {
			if !strings.Contains(ids, want) {
				return "received:\n" + ids
			}
		}
		return ""
	})
	time.Sleep(3 * time.Second) // more engine runs: still no duplicate
	seen := map[string]int{}
	for _, id := range hooks.ids() {
		seen[id]++
		if seen[id] > 1 {
			t.Errorf("delivered twice: %s", id)
		}
	}
	hooks.mu.Lock()
	if len(hooks.bad) > 0 {
		t.Errorf("bad signatures: %v", hooks.bad)
	}
	hooks.mu.Unlock()
	dl := in.mustCLI("notify", "deliveries", "--status", "delivered")
	if !strings.Contains(dl, "revoked") || !strings.Contains(dl, "expiring") {
		t.Errorf("notify deliveries:\n%s", dl)
	}
	if out := in.mustCLI("notify", "list"); !strings.Contains(out, hookSrv.URL+"/pki") {
		t.Errorf("notify list: %s", out)
	}

	// The live UDP sink got the issuance and the revocation, as RFC 5424.
	eventually(t, "syslog over UDP", 10*time.Second, func() string {
		a := strings.Join(udp.Actions(), ",")
		if !strings.Contains(a, "cert.issue") || !strings.Contains(a, "cert.revoke") || !strings.Contains(a, "notify.write") {
			return "got " + a
		}
		return ""
	})

	// Export: each format, parsed back.
	jsonl := in.mustCLI("audit", "export", "--format", "jsonl", "--since", "1h")
	lines := strings.Split(strings.TrimSpace(jsonl), "\n")
	for _, l := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil || e["hash"] == "" {
			t.Fatalf("jsonl line %q: %v", l, err)
		}
	}
	sys := in.mustCLI("audit", "export", "--format", "syslog", "--since", "1h")
	slines := strings.Split(strings.TrimSpace(sys), "\n")
	if len(slines) != len(lines) {
		t.Errorf("syslog export has %d lines, jsonl %d", len(slines), len(lines))
	}
	for _, l := range slines {
		if _, err := rfc5424.NewParser().Parse([]byte(l)); err != nil {
			t.Fatalf("syslog line %q: %v", l, err)
		}
	}
	cef := in.mustCLI("audit", "export", "--format", "cef", "--since", "1h")
	if !strings.HasPrefix(cef, "CEF:0|Sigil|Sigil|") || !strings.Contains(cef, "act=cert.revoke") {
		t.Errorf("cef export:\n%s", cef)
	}
	// To a TCP collector directly.
	tc := siemtest.ListenTCP(t, "127.0.0.1:0")
	_, errOut, code := in.cli("audit", "export", "--format", "syslog", "--since", "1h", "--to", "tcp://"+tc.Addr)
	if code != 0 {
		t.Fatalf("export --to: %d %s", code, errOut)
	}
	eventually(t, "export to TCP", 10*time.Second, func() string {
		if n := len(tc.Actions()); n < len(lines) {
			return "got " + strings.Join(tc.Actions(), ",")
		}
		return ""
	})

	// Report: JSON and HTML.
	var rep map[string]any
	if err := json.Unmarshal([]byte(in.mustCLI("report", "--format", "json")), &rep); err != nil || rep["compliance"] == nil {
		t.Fatalf("report json: %v", err)
	}
	html := filepath.Join(work, "report.html")
	in.mustCLI("report", "--format", "html", "--out", html)
	b, _ := os.ReadFile(html)
	if !strings.Contains(string(b), "<svg") || !strings.Contains(string(b), "short.test") {
		t.Errorf("report.html lacks the chart or the expiring certificate")
	}

	// An auditor can read findings but not add webhooks (audited refusal).
	var tok api.TokenResponse
	if err := in.api.Do(t.Context(), "POST", "/api/v1/tokens", api.TokenRequest{Role: "auditor", Name: "aud"}, &tok); err != nil {
		t.Fatal(err)
	}
	if _, _, code := in.cliToken(tok.Secret, "findings", "list"); code != 0 {
		t.Errorf("auditor findings list: exit %d", code)
	}
	if _, errOut, code := in.cliToken(tok.Secret, "notify", "add", "--webhook", hookSrv.URL, "--events", "revoked", "--secret-file", secretFile); code != 2 || !strings.Contains(errOut, "may not") {
		t.Errorf("auditor notify add: exit %d %s", code, errOut)
	}
}

// TestRevokedStillServed: a revoked Sigil certificate served by a real TLS
// listener is found by a real scan and reported as revoked-served.
func TestRevokedStillServed(t *testing.T) {
	in := startMonitored(t, t.TempDir(), server.MonitorConfig{})
	in.applyProfiles()
	work := t.TempDir()
	crt, key := filepath.Join(work, "srv.crt"), filepath.Join(work, "srv.key")
	in.mustCLI("cert", "issue", "--profile", "web", "--name", "served.test", "--key-out", key, "--out", crt)
	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	var show struct {
		Serial string `json:"serial"`
		SHA256 string `json:"sha256"`
	}
	out := in.mustCLI("cert", "list", "-o", "json")
	var certs []map[string]any
	if err := json.Unmarshal([]byte(out), &certs); err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		if c["common_name"] == "served.test" {
			show.Serial, show.SHA256 = c["serial"].(string), c["sha256"].(string)
		}
	}
	in.mustCLI("cert", "revoke", show.Serial, "--reason", "keyCompromise")
	time.Sleep(1100 * time.Millisecond) // the scan sees it after the revocation second

	// Before the scan: no revoked-served finding.
	if out, _, _ := in.cli("findings", "list", "--identity", show.SHA256, "-o", "json"); strings.Contains(out, "revoked-served") {
		t.Fatalf("revoked-served before any scan: %s", out)
	}
	if _, errOut, code := in.cli("scan", "net", ln.Addr().String(), "--sni", "served.test"); code != 0 {
		t.Fatalf("scan net: exit %d %s", code, errOut)
	}
	eventually(t, "revoked-served finding", 20*time.Second, func() string {
		out, _, _ := in.cli("findings", "list", "--identity", show.SHA256, "-o", "json")
		if !strings.Contains(out, `"rule": "revoked-served"`) || !strings.Contains(out, ln.Addr().String()) {
			return "findings: " + out
		}
		return ""
	})
	if _, _, code := in.cli("findings", "list", "--fail-on", "critical"); code != 3 {
		t.Errorf("--fail-on critical with a revoked certificate served: exit %d", code)
	}
}

// TestAuditSinkRequiredFailsClosed: with --audit-sink-required, a sink that
// cannot be written makes state-changing requests fail with 503; reads keep
// working; events committed meanwhile reach the collector once it is back.
func TestAuditSinkRequiredFailsClosed(t *testing.T) {
	tc := siemtest.ListenTCP(t, "127.0.0.1:0")
	addr := tc.Addr
	in := startMonitored(t, t.TempDir(), server.MonitorConfig{AuditSinks: []string{"tcp://" + addr}, AuditSinkRequired: true})
	work := t.TempDir()
	prof := writeFile(t, work, "p.yaml", []byte(testProfiles))
	eventually(t, "gate opens once the sink is written", 20*time.Second, func() string {
		if _, errOut, code := in.cli("profile", "apply", "-f", prof); code != 0 {
			return errOut
		}
		return ""
	})
	in.mustCLI("cert", "issue", "--profile", "web", "--name", "a.test", "--key-out", filepath.Join(work, "a.key"), "--out", filepath.Join(work, "a.crt"))
	eventually(t, "collector got the issuance", 10*time.Second, func() string {
		if !strings.Contains(strings.Join(tc.Actions(), ","), "cert.issue") {
			return "got " + strings.Join(tc.Actions(), ",")
		}
		return ""
	})

	tc.Stop()
	var lastErr string
	eventually(t, "writes refused while the sink is down", 20*time.Second, func() string {
		_, errOut, code := in.cli("cert", "issue", "--profile", "web", "--name", "b.test", "--key-out", filepath.Join(work, "b.key"), "--out", filepath.Join(work, "b.crt"))
		lastErr = errOut
		if code != 2 || !strings.Contains(errOut, "audit sink") {
			return "issue: exit " + string(rune('0'+code)) + " " + errOut
		}
		return ""
	})
	_, errOut, code := in.cli("cert", "issue", "--profile", "web", "--name", "d.test", "--key-out", filepath.Join(work, "d.key"), "--out", filepath.Join(work, "d.crt"))
	if code != 2 || !strings.Contains(errOut, "503") {
		t.Errorf("issue while the sink is down: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(work, "d.crt")); err == nil {
		t.Error("a certificate was written while the required sink was down")
	}
	if _, _, code := in.cli("cert", "list"); code != 0 {
		t.Error("reads must keep working while the sink is down")
	}
	t.Logf("refusal: %s", strings.TrimSpace(lastErr))

	tc2 := siemtest.ListenTCP(t, addr)
	eventually(t, "writes accepted again", 20*time.Second, func() string {
		if _, errOut, code := in.cli("cert", "issue", "--profile", "web", "--name", "c.test", "--key-out", filepath.Join(work, "c.key"), "--out", filepath.Join(work, "c.crt")); code != 0 {
			return errOut
		}
		return ""
	})
	eventually(t, "refusals and the new issuance reach the collector", 10*time.Second, func() string {
		got := strings.Join(tc2.Actions(), ",")
		if !strings.Contains(got, "cert.issue") {
			return "got " + got
		}
		return ""
	})
}

// TestAuditSinkRequiredReplicas: two servers on one PostgreSQL database with
// a required sink. Only the lease holder ships, but both refuse writes while
// the sink is down (they read the shared sink state) and both accept again
// once it is back; events from both reach the collector.
func TestAuditSinkRequiredReplicas(t *testing.T) {
	dsn := pgtest.FreshDatabase(t)
	tc := siemtest.ListenTCP(t, "127.0.0.1:0")
	addr := tc.Addr
	mon := server.MonitorConfig{AuditSinks: []string{"tcp://" + addr}, AuditSinkRequired: true}
	dir := t.TempDir()
	a := startMonitoredDB(t, dir, dsn, mon)
	b := startMonitoredDB(t, dir, dsn, mon)
	work := t.TempDir()
	prof := writeFile(t, work, "p.yaml", []byte(testProfiles))
	eventually(t, "gate opens", 20*time.Second, func() string {
		if _, errOut, code := a.cli("profile", "apply", "-f", prof); code != 0 {
			return errOut
		}
		return ""
	})
	issue := func(in *instance, name string) (string, int) {
		_, errOut, code := in.cli("cert", "issue", "--profile", "web", "--name", name, "--key-out", filepath.Join(work, name+".key"), "--out", filepath.Join(work, name+".crt"))
		return errOut, code
	}
	for _, in := range []*instance{a, b} {
		eventually(t, "issue while the sink is up", 20*time.Second, func() string {
			if errOut, code := issue(in, "up"+strings.TrimPrefix(in.srv.APIURL, "https://127.0.0.1:")+".test"); code != 0 {
				return errOut
			}
			return ""
		})
	}
	tc.Stop()
	for i, in := range []*instance{a, b} {
		eventually(t, "both replicas refuse while the sink is down", 20*time.Second, func() string {
			if errOut, code := issue(in, "down"+strings.Repeat("x", i+1)+".test"); code != 2 || !strings.Contains(errOut, "audit sink") {
				return errOut
			}
			return ""
		})
	}
	tc2 := siemtest.ListenTCP(t, addr)
	for i, in := range []*instance{a, b} {
		eventually(t, "both replicas accept again", 20*time.Second, func() string {
			if errOut, code := issue(in, "back"+strings.Repeat("y", i+1)+".test"); code != 0 {
				return errOut
			}
			return ""
		})
	}
	eventually(t, "events of both replicas reach the collector", 10*time.Second, func() string {
		n := strings.Count(strings.Join(tc2.Actions(), ","), "cert.issue")
		if n < 2 {
			return "got " + strings.Join(tc2.Actions(), ",")
		}
		return ""
	})
}
