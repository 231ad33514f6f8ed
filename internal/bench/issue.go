// Package bench drives load against a running Sigil server and reports
// throughput, latency and the server's CPU cost per certificate.
package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sigil-pki/sigil/internal/client"
	"github.com/sigil-pki/sigil/internal/keys"
)

// IssueOptions configure an issuance load run.
type IssueOptions struct {
	Profile     string
	Count       int
	Concurrency int
	KeyType     string
	NamePattern string // fmt pattern with one %d, e.g. "bench-%d.test"
	DistinctCSR int    // how many different CSRs to cycle through
}

// IssueResult is what a run measured.
type IssueResult struct {
	Count         int           `json:"count"`
	Errors        int           `json:"errors"`
	FirstError    string        `json:"first_error,omitempty"`
	Concurrency   int           `json:"concurrency"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	PerSecond     float64       `json:"certificates_per_second"`
	P50, P90, P99 time.Duration `json:"-"`
	P50ms         float64       `json:"p50_ms"`
	P90ms         float64       `json:"p90_ms"`
	P99ms         float64       `json:"p99_ms"`
	ServerCPU     float64       `json:"server_cpu_seconds"`           // -1 if unknown
	CPUPerCert    time.Duration `json:"-"`                            //
	CPUPerCertUS  float64       `json:"server_cpu_us_per_cert"`       // microseconds
	PerCoreSecond float64       `json:"certificates_per_core_second"` // Count / ServerCPU
}

// Issue runs the load: Count issuance requests with Concurrency workers.
func Issue(ctx context.Context, c *client.Client, o IssueOptions) (*IssueResult, error) {
	if o.Count <= 0 || o.Concurrency <= 0 {
		return nil, fmt.Errorf("count and concurrency must be positive")
	}
	if o.DistinctCSR <= 0 {
		o.DistinctCSR = min(o.Count, 64)
	}
	csrs := make([]string, o.DistinctCSR)
	for i := range csrs {
		key, err := keys.GenerateKey(o.KeyType)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf(o.NamePattern, i)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, key)
		if err != nil {
			return nil, err
		}
		csrs[i] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	// Warm the connections so TLS handshakes are not in the figures.
	var warm sync.WaitGroup
	for range o.Concurrency {
		warm.Go(func() { _ = c.Do(ctx, "GET", "/api/v1/whoami", nil, nil) })
	}
	warm.Wait()

	cpuBefore, cpuErr := serverCPU(ctx, c)
	lat := make([]time.Duration, o.Count)
	var next, errs atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= o.Count || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := c.Do(ctx, "POST", "/api/v1/certificates", map[string]string{"profile": o.Profile, "csr": csrs[i%len(csrs)]}, nil)
				lat[i] = time.Since(t0)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := &IssueResult{Count: o.Count, Errors: int(errs.Load()), Concurrency: o.Concurrency, Elapsed: elapsed, ServerCPU: -1}
	if v, ok := firstErr.Load().(string); ok {
		res.FirstError = v
	}
	res.PerSecond = float64(o.Count) / elapsed.Seconds()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	res.P50, res.P90, res.P99 = pct(0.50), pct(0.90), pct(0.99)
	res.P50ms, res.P90ms, res.P99ms = ms(res.P50), ms(res.P90), ms(res.P99)
	if cpuAfter, err := serverCPU(ctx, c); err == nil && cpuErr == nil {
		res.ServerCPU = cpuAfter - cpuBefore
		res.CPUPerCert = time.Duration(res.ServerCPU / float64(o.Count) * float64(time.Second))
		res.CPUPerCertUS = float64(res.CPUPerCert) / float64(time.Microsecond)
		if res.ServerCPU > 0 {
			res.PerCoreSecond = float64(o.Count) / res.ServerCPU
		}
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// serverCPU reads process_cpu_seconds_total from the server's /metrics.
func serverCPU(ctx context.Context, c *client.Client) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.BaseURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_cpu_seconds_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("process_cpu_seconds_total not found in /metrics")
}
