package ca

import (
	"crypto/x509"
	"net"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
)

// BenchmarkPrepareSign is the CA's share of one issuance: build, lint, sign
// and check a web-profile leaf (3 DNS names, an IP, a SPIFFE URI).
//
//	go test -run XXX -bench PrepareSign -count 5 ./internal/ca/
func BenchmarkPrepareSign(b *testing.B) {
	for _, kt := range []string{identity.KeyECDSAP256, identity.KeyRSA2048, identity.KeyEd25519} {
		b.Run(kt, func(b *testing.B) {
			iss := leafIssuer(b, "bench", kt, "Sigil Bench Intermediate")
			authority, err := New([]*Issuer{iss}, "bench", sharedLinter(b), testURLs)
			if err != nil {
				b.Fatal(err)
			}
			req := benchLeaf(b)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			for b.Loop() {
				p, err := authority.Prepare("", req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := authority.Sign(p); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}

// BenchmarkPrepare is Prepare alone (build + lint), ECDSA P-256 issuer.
func BenchmarkPrepare(b *testing.B) {
	iss := leafIssuer(b, "bench", identity.KeyECDSAP256, "Sigil Bench Intermediate")
	authority, err := New([]*Issuer{iss}, "bench", sharedLinter(b), testURLs)
	if err != nil {
		b.Fatal(err)
	}
	req := benchLeaf(b)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if _, err := authority.Prepare("", req); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// cpuClock reports the process's CPU time (user + system, GC included) per
// operation: on a machine shared with other work it varies far less than
// ns/op, which is wall time.
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{processCPU()} }

func (c cpuClock) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
	}
}

func benchLeaf(tb testing.TB) *LeafRequest {
	u, _ := url.Parse("spiffe://prod.internal/ns/web/sa/api")
	return &LeafRequest{
		PublicKey:   leafKey(tb, identity.KeyECDSAP256, "leaf").Public(),
		CommonName:  "api.prod.internal",
		DNSNames:    []string{"api.prod.internal", "api-1.prod.internal", "localhost"},
		IPAddresses: []net.IP{net.IPv4(10, 0, 0, 7)},
		URIs:        []*url.URL{u},
		NotBefore:   time.Now(),
		TTL:         720 * time.Hour,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
}
