package server

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/ra"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"github.com/sigil-pki/sigil/internal/keys"
)

func BenchmarkRAIssue(b *testing.B) {
	ctx := context.Background()
	s, err := New(ctx, Config{DataDir: b.TempDir(), Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Dev: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil { b.Fatal(err) }
	defer s.Close()
	doc, _ := policy.ParseDocument([]byte("profiles:\n  - name: web\n    default_ttl: 24h\n    max_ttl: 48h\n    dns: [\"*.test\"]\n"))
	s.RA().ApplyProfiles(ctx, ra.Caller{}, doc)
	key, _ := keys.GenerateKey(identity.KeyECDSAP256)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a.test"}, DNSNames: []string{"a.test"}}, key)
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	b.ResetTimer()
	t0 := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.RA().Issue(ctx, ra.Caller{}, ra.IssueRequest{Profile: "web", CSR: csr}); err != nil { b.Fatal(err) }
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "certs/s")
}
