package acme_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkACMEOrders measures complete ACME orders per second — newOrder,
// authorization, http-01 challenge (validated over loopback), finalize
// (policy, lint, store, audit through the RA), certificate download — by
// in-process clients, one account each, over HTTPS to a real server on
// SQLite. docs/benchmarks.md has the figures and the command:
//
//	go test -run '^$' -bench BenchmarkACMEOrders -benchtime 3000x -cpu 2 ./internal/acme/
func BenchmarkACMEOrders(b *testing.B) {
	// As `sigil server` does unless GOGC is set (cmd/sigil/server.go).
	defer debug.SetGCPercent(debug.SetGCPercent(200))
	e := newEnv(b, envOpts{})
	clients := make(chan *client, 64)
	for range cap(clients) {
		c := newClient(b, e)
		c.register(nil)
		clients <- c
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var seq atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS concurrent clients
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c := <-clients
		defer func() { clients <- c }()
		for pb.Next() {
			name := fmt.Sprintf("b%d.test", seq.Add(1))
			_, o := c.newOrder(name)
			c.solve(o, "")
			resp, body := c.post(o.Finalize, map[string]any{"csr": b64(csrFor(b, key, name, name))})
			c.mustOK("finalize", resp, body, &o)
			if o.Status != "valid" || o.Certificate == "" {
				b.Errorf("order %s after finalize", o.Status)
				return
			}
			resp, body = c.post(o.Certificate, nil)
			c.mustOK("certificate", resp, body, nil)
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "orders/s")
}
