package agent

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestClientKeyExchange: the agent offers X25519 alone, so a server that
// prefers the post-quantum hybrid (Go's default) still agrees on X25519;
// see agentCurves for why.
func TestClientKeyExchange(t *testing.T) {
	var got tls.CurveID
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.TLS.CurveID
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Status{})
	}))
	srv.TLS = &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519}}
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c := &Client{Server: srv.URL, Roots: roots}
	if _, err := c.Status(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if got != tls.X25519 {
		t.Fatalf("negotiated %v, want X25519", got)
	}
	// The same server, with a client that offers Go's default, negotiates the
	// hybrid: the check above is not vacuous.
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != tls.X25519MLKEM768 {
		t.Fatalf("default client negotiated %v, want X25519MLKEM768", got)
	}
}
