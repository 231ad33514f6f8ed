package acme_test

import (
	"strings"
	"testing"

	"github.com/sigil-pki/sigil/internal/bench"
	sigilclient "github.com/sigil-pki/sigil/internal/client"
)

// TestBenchACME runs the `sigil bench acme` load generator against a real
// server: every order completes (new account, order, http-01 served by the
// generator and validated by the server, finalize, download) and is in
// the inventory; a profile that requires EAB is refused up front.
func TestBenchACME(t *testing.T) {
	port := freePort(t)
	e := newEnv(t, envOpts{httpPort: port, perName: 1})
	c := &sigilclient.Client{BaseURL: e.api, HTTP: e.http}
	// Connections dialled by the generator but never used stay "new" on
	// the server, which waits 5 s for them at shutdown: close them first.
	t.Cleanup(e.http.CloseIdleConnections)
	before := certCount(t, e)
	res, err := bench.ACME(t.Context(), c, bench.ACMEOptions{Profile: "web", Orders: 24, Concurrency: 4, HTTPListen: "127.0.0.1:" + itoa(port), NamePattern: "lg-%d.test"})
	if err != nil {
		t.Fatalf("bench.ACME: %v", err)
	}
	if res.Errors != 0 || res.Orders != 24 {
		t.Fatalf("%d orders, %d errors: %s", res.Orders, res.Errors, res.FirstError)
	}
	if res.Validations < 24 {
		t.Errorf("the server made %d http-01 requests for 24 orders", res.Validations)
	}
	if got := certCount(t, e) - before; got != 24 {
		t.Errorf("%d certificates issued, want 24", got)
	}
	if res.PerSecond <= 0 || res.P50 <= 0 || res.P99 < res.P50 {
		t.Errorf("figures: %+v", res)
	}

	// The same names again hit the per-name limit (1): every order fails,
	// and the run says why.
	res, err = bench.ACME(t.Context(), c, bench.ACMEOptions{Profile: "web", Orders: 2, Concurrency: 1, HTTPListen: "127.0.0.1:" + itoa(port), NamePattern: "lg-%d.test"})
	if err != nil || res.Errors != 2 || !strings.Contains(res.FirstError, "rateLimited") {
		t.Fatalf("rate-limited run: %+v %v", res, err)
	}

	eab := newEnv(t, envOpts{eabRequired: true})
	t.Cleanup(eab.http.CloseIdleConnections)
	_, err = bench.ACME(t.Context(), &sigilclient.Client{BaseURL: eab.api, HTTP: eab.http}, bench.ACMEOptions{Profile: "web", Orders: 1, Concurrency: 1, HTTPListen: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "External Account Binding") {
		t.Fatalf("EAB profile: %v", err)
	}
}
