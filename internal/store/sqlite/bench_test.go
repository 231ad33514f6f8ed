package sqlite

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// BenchmarkIssue measures one issuance as the CA performs it: a transaction
// planning the certificate, then one marking it issued, each with its event.
func BenchmarkIssue(b *testing.B) {
	s, err := Open(context.Background(), b.TempDir()+"/bench.db")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var n atomic.Int64
	der := make([]byte, 1200)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			serial := identity.Serial(fmt.Sprintf("%x", 0x1000000+n.Add(1)))
			now := time.Now()
			err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				c := &identity.Certificate{Serial: serial, IssuerID: "default", Profile: "web", Status: identity.StatusPlanned,
					Requester: "bench", KeyType: identity.KeyECDSAP256, SPKIFingerprint: string(serial),
					DNSNames: []string{"a.example.com"}, Labels: map[string]string{"env": "bench"},
					NotBefore: now, NotAfter: now.Add(time.Hour), CreatedAt: now, TBS: der[:900]}
				if err := tx.InsertCertificate(ctx, c); err != nil {
					return err
				}
				return tx.AppendAudit(ctx, &audit.Event{Time: now, Actor: "bench", Action: "cert.plan", Object: string(serial), Result: audit.ResultSuccess})
			})
			if err == nil {
				err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
					if err := tx.MarkIssued(ctx, serial, der, "fp", now); err != nil {
						return err
					}
					return tx.AppendAudit(ctx, &audit.Event{Time: now, Actor: "bench", Action: "cert.issue", Object: string(serial), Result: audit.ResultSuccess})
				})
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "issuances/s")
}

// BenchmarkUpsertFindings measures the findings engine's write of a new
// certificate's findings: batches of 1,000 (the engine's chunk), half new
// rows and half refreshes of open ones, in one Update as the engine does.
func BenchmarkUpsertFindings(b *testing.B) {
	s, err := Open(context.Background(), b.TempDir()+"/bench.db")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const batch = 1000
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i += batch {
		fs := make([]*store.Finding, 0, batch)
		for j := range batch {
			// Every second finding repeats one of the previous batch.
			id := i + j
			if j%2 == 1 && i > 0 {
				id = i - batch + j
			}
			fs = append(fs, &store.Finding{ID: fmt.Sprintf("no-owner:%064x", id), Rule: "no-owner", Severity: "low", Rank: 1,
				Subject: fmt.Sprintf("%064x", id), Message: "no owner", LastSeen: now.Add(time.Duration(i) * time.Microsecond)})
		}
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			_, err := tx.(*txn).UpsertFindings(ctx, fs)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "findings/s")
}
