package postgres

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
	"github.com/sigil-pki/sigil/internal/store/storetest"
)

// The PostgreSQL twin of the SQLite inventory benchmark, on storetest's
// dataset (BenchInventoryRow), loaded once with COPY into the database
// benchInventoryDB and kept between runs (drop it to rebuild).
const benchInventoryDB = "sigil_bench_inventory_1m_v2"

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
	if n != storetest.BenchInventoryIdentities {
		start := time.Now()
		if err := bulkInventory(ctx, s, storetest.BenchInventoryIdentities); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %d identities in %v in database %s", storetest.BenchInventoryIdentities, time.Since(start).Round(time.Second), benchInventoryDB)
	}
	return s
}

// bulkInventory replaces the inventory with n synthetic identities and
// locations, loaded with COPY, then ANALYZEs.
func bulkInventory(ctx context.Context, s *Store, n int) error {
	if _, err := s.pool.Exec(ctx, "TRUNCATE inventory_locations, inventory_identities"); err != nil {
		return err
	}
	ids := pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		id, _ := storetest.BenchInventoryRow(i)
		return []any{id.Fingerprint, string(id.Kind), string(id.Source), id.Subject, id.Issuer, id.SANs, id.Serial,
			id.NotBefore, id.NotAfter, id.IsCA, id.SignatureAlg, id.KeyAlgorithm, id.KeySize, id.SPKISHA256, id.Owner,
			id.Labels, id.FirstSeen, id.LastSeen, id.DER}, nil
	})
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"inventory_identities"}, []string{"fingerprint", "kind", "source", "subject", "issuer",
		"sans", "serial", "not_before", "not_after", "is_ca", "signature_alg", "key_algorithm", "key_size", "spki_sha256", "owner",
		"labels", "first_seen", "last_seen", "der"}, ids); err != nil {
		return fmt.Errorf("copying identities: %w", err)
	}
	locs := pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		_, l := storetest.BenchInventoryRow(i)
		return []any{l.Fingerprint, string(l.Kind), l.Host, l.Port, l.FirstSeen, l.LastSeen, l.TLSVersion, l.CipherSuite}, nil
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
	storetest.BenchInventoryQueries(b, openInventoryBench(b))
}
