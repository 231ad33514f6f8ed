package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
)

func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Listen, cfg.HTTPListen, cfg.Log = "127.0.0.1:0", "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	return s
}

// served returns the leaf certificate the HTTPS listener presents,
// verified against the data directory's root.pem.
func served(t *testing.T, s *Server, dir string) *x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(filepath.Join(dir, "root.pem"))
	pool.AppendCertsFromPEM(b)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	for i := 0; ; i++ {
		resp, err := c.Get(s.APIURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			return resp.TLS.PeerCertificates[0]
		}
		if i > 50 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTLSCertificateRenewsItself: the server's own certificate chains to
// root.pem, covers loopback, and is replaced once two thirds of its
// lifetime have passed (with an injected clock), without a restart.
func TestTLSCertificateRenewsItself(t *testing.T) {
	dir := t.TempDir()
	s := newTestServer(t, Config{DataDir: dir, Dev: true})
	first := served(t, s, dir)
	if err := first.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := first.VerifyHostname("localhost"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.renewTLSIfDue(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if again := served(t, s, dir); again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("renewed although not due")
	}
	due := first.NotBefore.Add(first.NotAfter.Sub(first.NotBefore)*2/3 + time.Second)
	if err := s.renewTLSIfDue(ctx, due); err != nil {
		t.Fatal(err)
	}
	renewed := served(t, s, dir)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("not renewed when due")
	}
	// Both are in the inventory, recorded before use; the replaced one is
	// revoked as superseded.
	for c, want := range map[*x509.Certificate]identity.CertStatus{first: identity.StatusRevoked, renewed: identity.StatusIssued} {
		rec, err := s.Store().GetCertificate(ctx, serialOf(c))
		if err != nil || rec.Profile != "sigil-server" || rec.Status != want {
			t.Fatalf("server certificate %x: %v %+v, want %s", c.SerialNumber, err, rec, want)
		}
		if want == identity.StatusRevoked && rec.RevocationReason != identity.ReasonSuperseded {
			t.Fatalf("replaced server certificate revoked for %s, want superseded", rec.RevocationReason)
		}
	}
}

// TestNonDevNeedsKEK: outside --dev, a first start without a key-encryption
// key is refused with a message saying how to provide one.
func TestNonDevNeedsKEK(t *testing.T) {
	_, err := New(context.Background(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "SIGIL_KEK") {
		t.Fatalf("New without KEK: %v", err)
	}
}

func serialOf(c *x509.Certificate) identity.Serial { return identity.SerialFromBig(c.SerialNumber) }
