package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
)

// The PostgreSQL twin of the SQLite inventory benchmark
// (store/sqlite/inventory_bench_test.go), with the same dataset: 1M
// identities, one location each, 1 KiB of DER, 1,000 owners, 200 issuers,
// 50,000 hosts, NotAfter spread over [-30d, +395d] around benchNow. It is
// loaded once with COPY into the database benchInventoryDB, kept between runs
// (drop it to rebuild).
const (
	benchIdentities  = 1_000_000
	benchOwners      = 1000
	benchIssuers     = 200
	benchHosts       = 50_000
	benchInventoryDB = "sigil_bench_inventory_1m_v1"
)

var benchNow = time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)

func benchFP(i int) string {
	s := sha256.Sum256([]byte("inventory-bench-" + strconv.Itoa(i)))
	return hex.EncodeToString(s[:])
}

func openInventoryBench(b *testing.B) *Store {
	b.Helper()
	admin := os.Getenv(pgtest.DSNEnv)
	if admin == "" {
		b.Skip(pgtest.DSNEnv + " not set; set it to a PostgreSQL DSN to run the PostgreSQL inventory benchmark")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		b.Fatal(err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", benchInventoryDB).Scan(&exists); err != nil {
		b.Fatal(err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+benchInventoryDB); err != nil {
			b.Fatal(err)
		}
	}
	conn.Close(ctx)
	u, err := url.Parse(admin)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + benchInventoryDB
	s, err := Open(ctx, u.String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM inventory_identities").Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n != benchIdentities {
		start := time.Now()
		if err := bulkInventory(ctx, s, benchIdentities); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %d identities in %v in database %s", benchIdentities, time.Since(start).Round(time.Second), benchInventoryDB)
	}
	return s
}

// bulkInventory replaces the inventory with n synthetic identities and
// locations, loaded with COPY, then ANALYZEs.
func bulkInventory(ctx context.Context, s *Store, n int) error {
	if _, err := s.pool.Exec(ctx, "TRUNCATE inventory_locations, inventory_identities"); err != nil {
		return err
	}
	der := make([]byte, 1024)
	span := int64(425 * 24 * time.Hour / time.Microsecond)
	ids := pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		fp := benchFP(i)
		b := make([]byte, len(der))
		copy(b, fp)
		notAfter := time.UnixMicro(benchNow.Add(-30*24*time.Hour).UnixMicro() + int64(uint64(i)*2654435761%uint64(span))).UTC()
		seen := benchNow.Add(-time.Duration(i%(30*24)) * time.Hour)
		labels := map[string]string{"env": []string{"prod", "staging", "dev"}[i%3]}
		return []any{fp, "x509", "discovered", fmt.Sprintf("CN=host%d.example", i), fmt.Sprintf("CN=Issuer %d,O=Bench", i%benchIssuers),
			[]string{fmt.Sprintf("host%d.example", i)}, fmt.Sprintf("%x", i), benchNow.Add(-365 * 24 * time.Hour), notAfter, false,
			"SHA256-RSA", "RSA", 2048, benchFP(-i - 1), fmt.Sprintf("team-%d", i%benchOwners), labels, seen, seen, b}, nil
	})
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"inventory_identities"}, []string{"fingerprint", "kind", "source", "subject", "issuer",
		"sans", "serial", "not_before", "not_after", "is_ca", "signature_alg", "key_algorithm", "key_size", "spki_sha256", "owner",
		"labels", "first_seen", "last_seen", "der"}, ids); err != nil {
		return fmt.Errorf("copying identities: %w", err)
	}
	locs := pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		h := i % benchHosts
		seen := benchNow.Add(-time.Duration(i%(30*24)) * time.Hour)
		return []any{benchFP(i), "net", fmt.Sprintf("10.%d.%d.%d", h/65536, h/256%256, h%256), 443, seen, seen, "TLS 1.3", "TLS_AES_128_GCM_SHA256"}, nil
	})
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"inventory_locations"}, []string{"fingerprint", "kind", "host", "port",
		"first_seen", "last_seen", "tls_version", "cipher_suite"}, locs); err != nil {
		return fmt.Errorf("copying locations: %w", err)
	}
	for _, t := range []string{"inventory_identities", "inventory_locations"} {
		if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE "+t); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkInventoryQuery1M measures one page (100 identities) of each
// inventory query the discovery issue names, at 1M identities on PostgreSQL.
// Target (issue 5): < 50 ms each, as on SQLite.
func BenchmarkInventoryQuery1M(b *testing.B) {
	s := openInventoryBench(b)
	ctx := context.Background()
	for _, q := range []struct {
		name string
		f    store.InventoryFilter
	}{
		{"expiring-30d", store.InventoryFilter{NotAfterAfter: benchNow, NotAfterBefore: benchNow.Add(30 * 24 * time.Hour)}},
		{"expiring-1d", store.InventoryFilter{NotAfterAfter: benchNow, NotAfterBefore: benchNow.Add(24 * time.Hour)}},
		{"owner", store.InventoryFilter{Owner: "team-417"}},
		{"issuer", store.InventoryFilter{Issuer: "CN=Issuer 42,O=Bench"}},
		{"location-host", store.InventoryFilter{Location: "10.0.3.7"}},
		{"location-host-port", store.InventoryFilter{Location: "10.0.3.7:443"}},
		{"kind-x509", store.InventoryFilter{Kind: store.KindX509}},
		{"issuer-unknown", store.InventoryFilter{IssuerUnknown: true}},
		{"label", store.InventoryFilter{Label: "env=staging"}},
		{"seen-within-7d", store.InventoryFilter{SeenSince: benchNow.Add(-7 * 24 * time.Hour)}},
		{"owner-and-expiring", store.InventoryFilter{Owner: "team-417", NotAfterAfter: benchNow, NotAfterBefore: benchNow.Add(30 * 24 * time.Hour)}},
	} {
		b.Run(q.name, func(b *testing.B) {
			q.f.Limit = 100
			var got int
			for b.Loop() {
				ids, err := s.ListInventory(ctx, q.f)
				if err != nil {
					b.Fatal(err)
				}
				got = len(ids)
			}
			if got == 0 {
				b.Fatalf("%s matched nothing", q.name)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/query")
		})
	}
	b.Run("get-with-locations", func(b *testing.B) {
		fp := benchFP(123456)
		for b.Loop() {
			if _, err := s.GetInventoryIdentity(ctx, fp); err != nil {
				b.Fatal(err)
			}
			if _, err := s.ListInventoryLocations(ctx, fp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
