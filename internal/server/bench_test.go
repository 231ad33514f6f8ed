package server

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sigil-pki/sigil/internal/client"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/ra"
)

// BenchmarkIssueAPI measures issuance through the HTTPS API of a real
// server: CSR → policy → lint → planned row → sign → issued row + audit →
// response. Run with -cpu to vary client parallelism:
//
//	go test -run XXX -bench IssueAPI -benchtime 5000x ./internal/server/
func BenchmarkIssueAPI(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := b.TempDir()
	s, err := New(ctx, Config{DataDir: dir, Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Dev: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	go s.Run(ctx)
	doc, err := policy.ParseDocument([]byte("profiles:\n  - name: web\n    default_ttl: 24h\n    max_ttl: 48h\n    dns: [\"*.test\"]\n"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.RA().ApplyProfiles(ctx, ra.Caller{}, doc); err != nil {
		b.Fatal(err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, "admin.token"))
	c, err := client.New(s.APIURL, strings.TrimSpace(string(tok)), filepath.Join(dir, "root.pem"))
	if err != nil {
		b.Fatal(err)
	}
	csrs := make([]string, 32)
	for i := range csrs {
		key, _ := keys.GenerateKey(identity.KeyECDSAP256)
		name := fmt.Sprintf("bench-%d.test", i)
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, key)
		csrs[i] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if err := c.Do(ctx, "POST", "/api/v1/certificates", map[string]string{"profile": "web", "csr": csrs[i%int64(len(csrs))]}, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// BenchmarkRAIssue measures issuance without HTTP: the RA's whole path from
// CSR bytes to a recorded, audited certificate.
//
//	go test -run XXX -bench RAIssue -benchtime 5000x -cpu 1,2,64 ./internal/server/
func BenchmarkRAIssue(b *testing.B) {
	ctx := context.Background()
	s, err := New(ctx, Config{DataDir: b.TempDir(), Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Dev: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	doc, _ := policy.ParseDocument([]byte("profiles:\n  - name: web\n    default_ttl: 24h\n    max_ttl: 48h\n    dns: [\"*.test\"]\n"))
	s.RA().ApplyProfiles(ctx, ra.Caller{}, doc)
	key, _ := keys.GenerateKey(identity.KeyECDSAP256)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a.test"}, DNSNames: []string{"a.test"}}, key)
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.RA().Issue(ctx, ra.Caller{}, ra.IssueRequest{Profile: "web", CSR: csr}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}
