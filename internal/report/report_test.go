package report

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sigil-pki/sigil/internal/assess"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/sqlite"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// fixture fills a real store with certificates (one expiring soon, one
// hostile name, one with a 2-year validity) and runs the findings engine.
func fixture(t *testing.T) *sqlite.Store {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Report CA"}, NotBefore: now.Add(-day), NotAfter: now.Add(3650 * day), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	for i, c := range []struct {
		cn, owner string
		life      time.Duration
	}{
		{"soon.test", "team-a", 10 * day},
		{"<script>alert(1)</script>.test", "", 40 * day},
		{"long.test", "team-b", 730 * day},
		{"later.test", "team-a", 60 * day},
	} {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(10 + i)), Subject: pkix.Name{CommonName: c.cn}, DNSNames: []string{c.cn},
			NotBefore: now.Add(-day), NotAfter: now.Add(c.life), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		spki, _ := identity.SPKIFingerprint(&key.PublicKey)
		rec := &identity.Certificate{Serial: identity.Serial(big.NewInt(int64(10 + i)).Text(16)), IssuerID: "issuing-1", Profile: "web", Status: identity.StatusIssued,
			Requester: "token:x", Owner: c.owner, CommonName: c.cn, DNSNames: []string{c.cn}, KeyType: "ecdsa-p256", SPKIFingerprint: spki,
			Fingerprint: identity.Fingerprint(der), NotBefore: now.Add(-day), NotAfter: now.Add(c.life), CreatedAt: now.Add(-day), IssuedAt: now.Add(-day), DER: der}
		if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.InsertCertificate(ctx, rec) }); err != nil {
			t.Fatal(err)
		}
	}
	e := &assess.Engine{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}
	if _, err := e.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestBuildJSON(t *testing.T) {
	st := fixture(t)
	r, err := Build(t.Context(), st, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Expiring) != 3 || r.Expiring[0].Name != "soon.test" || r.Summary.ExpiringWithin30d != 1 {
		t.Fatalf("expiry calendar: %+v", r.Expiring)
	}
	total := 0
	for _, w := range r.Timeline {
		total += w.Count
	}
	if total != 3 || r.Timeline[1].Count != 1 {
		t.Fatalf("timeline: %+v", r.Timeline)
	}
	checks := map[string]bool{}
	for _, c := range r.Compliance {
		checks[c.ID] = c.Pass
	}
	if checks["tls-validity"] || checks["ownership"] || checks["renewal"] || !checks["key-strength"] || !checks["signature-hash"] {
		t.Fatalf("compliance: %+v", r.Compliance)
	}
	if r.Summary.Certificates["issued"] != 4 || r.Summary.FindingsBySeverity["medium"] < 2 {
		t.Fatalf("summary: %+v", r.Summary)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}

func TestHTMLSelfContained(t *testing.T) {
	r, err := Build(t.Context(), fixture(t), now)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := HTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, banned := range []string{"<script", "http://", "https://", "<link", "@import", "url("} {
		if i := strings.Index(html, banned); i >= 0 {
			t.Errorf("report references external or active content: %q near %q", banned, html[max(0, i-40):min(len(html), i+40)])
		}
	}
	if !strings.Contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;.test") {
		t.Error("a hostile certificate name is not escaped")
	}
}

// TestHTMLInChromium opens the report in headless Chromium: no console
// error, the chart and tables render, and a screenshot is written.
func TestHTMLInChromium(t *testing.T) {
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("chromium is not installed (apt-get install chromium): skipping the browser check of the HTML report")
	}
	r, err := Build(t.Context(), fixture(t), now)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := HTML(f, r); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A control page with a console error proves the check can fail.
	bad := filepath.Join(dir, "bad.html")
	os.WriteFile(bad, []byte(`<!DOCTYPE html><html><body><script>console.error("deliberate")</script></body></html>`), 0o644)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(dir, "profile")), chromedp.WindowSize(1280, 900))
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	load := func(path string) []chromedp.ConsoleMessage {
		t.Helper()
		tctx, tcancel := chromedp.NewContext(bctx)
		defer tcancel()
		if err := chromedp.Do(tctx); err != nil { // start the tab, so Console sees everything
			t.Fatalf("starting chromium: %v", err)
		}
		msgs := chromedp.Console(tctx)
		var mu sync.Mutex
		var got []chromedp.ConsoleMessage
		done := make(chan struct{})
		go func() {
			defer close(done)
			for m, err := range msgs {
				if err != nil {
					return
				}
				mu.Lock()
				got = append(got, m)
				mu.Unlock()
			}
		}()
		if err := chromedp.Do(tctx, chromedp.Navigate("file://"+path)); err != nil {
			t.Fatalf("opening %s: %v", path, err)
		}
		if path == page {
			n, err := chromedp.Run(tctx, chromedp.Evaluate[int](`document.querySelectorAll("svg rect").length`))
			if err != nil || n != len(r.Timeline) {
				t.Errorf("chart bars: %d, %v (want %d)", n, err, len(r.Timeline))
			}
			rows, err := chromedp.Run(tctx, chromedp.Evaluate[int](`document.querySelectorAll("table tr").length`))
			if err != nil || rows < 10 {
				t.Errorf("table rows: %d, %v", rows, err)
			}
			png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
			if err != nil || len(png) < 1000 {
				t.Fatalf("screenshot: %d bytes, %v", len(png), err)
			}
			shot := filepath.Join(dir, "report.png")
			if err := os.WriteFile(shot, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s (%d bytes)", shot, len(png))
		}
		time.Sleep(300 * time.Millisecond) // let late console events arrive
		tcancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return got
	}
	isError := func(ms []chromedp.ConsoleMessage) []string {
		var out []string
		for _, m := range ms {
			if m.Type == chromedp.ConsoleError || m.IsException() {
				out = append(out, m.String())
			}
		}
		return out
	}
	if errs := isError(load(bad)); len(errs) == 0 {
		t.Fatal("the console check did not see the control page's deliberate error")
	}
	if errs := isError(load(page)); len(errs) > 0 {
		t.Fatalf("console errors in the report: %v", errs)
	}
}
