package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

// Inventory benchmark dataset: benchIdentities identities, each with one
// location, 1 KiB of DER, one of 1,000 owners, one of 200 issuers, one of
// 50,000 hosts, NotAfter spread over [-30d, +395d] around benchNow. It is
// built once with a bulk insert (one transaction, prepared statements, no
// API) and cached in the temp dir: SIGIL_BENCH_INVENTORY_DB overrides the path.
const (
	benchIdentities = 1_000_000
	benchOwners     = 1000
	benchIssuers    = 200
	benchHosts      = 50_000
)

var benchNow = time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)

func benchFP(i int) string {
	s := sha256.Sum256([]byte("inventory-bench-" + strconv.Itoa(i)))
	return hex.EncodeToString(s[:])
}

func openInventoryBench(b *testing.B) *Store {
	b.Helper()
	path := os.Getenv("SIGIL_BENCH_INVENTORY_DB")
	if path == "" {
		path = filepath.Join(os.TempDir(), "sigil-bench-inventory-1m-v4.db")
	}
	ctx := context.Background()
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		tmp := path + ".building"
		os.Remove(tmp)
		s, err := Open(ctx, tmp) // creates the schema
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		if err := bulkInventory(ctx, tmp, benchIdentities); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %d identities in %v at %s", benchIdentities, time.Since(start).Round(time.Second), path)
	}
	s, err := Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// bulkInventory loads n synthetic identities and locations into the file at
// path the fast way: no journal, secondary indexes dropped during the load
// and rebuilt after it, rows inserted in primary-key order.
func bulkInventory(ctx context.Context, path string, n int) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, p := range []string{"PRAGMA journal_mode = DELETE", "PRAGMA journal_mode = OFF", "PRAGMA synchronous = OFF",
		"PRAGMA cache_size = -524288", "PRAGMA foreign_keys = OFF"} {
		if _, err := db.ExecContext(ctx, p); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	var indexes []string
	rows, err := db.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
		AND tbl_name IN ('inventory_identities', 'inventory_locations')`)
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var name, q string
		if err := rows.Scan(&name, &q); err != nil {
			return err
		}
		names, indexes = append(names, name), append(indexes, q)
	}
	rows.Close()
	for _, name := range names {
		if _, err := db.ExecContext(ctx, "DROP INDEX "+name); err != nil {
			return err
		}
	}
	type row struct {
		fp string
		i  int
	}
	all := make([]row, n)
	for i := range n {
		all[i] = row{benchFP(i), i}
	}
	sort.Slice(all, func(a, b int) bool { return all[a].fp < all[b].fp })

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO inventory_identities (`+invColumns+`)
		VALUES (?, 'x509', 'discovered', ?, ?, ?, ?, ?, ?, 0, 'SHA256-RSA', 'RSA', 2048, ?, '', '', ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	loc, err := tx.PrepareContext(ctx, `INSERT INTO inventory_locations (`+locColumns+`)
		VALUES (?, 'net', ?, 443, '', '', ?, ?, 'TLS 1.3', 'TLS_AES_128_GCM_SHA256', 0, 0, '', '')`)
	if err != nil {
		return err
	}
	der := make([]byte, 1024)
	span := uint64(425 * 24 * time.Hour / time.Microsecond)
	for _, r := range all {
		i, fp := r.i, r.fp
		copy(der, fp)
		notAfter := benchNow.Add(-30*24*time.Hour).UnixMicro() + int64(uint64(i)*2654435761%span)
		seen := benchNow.Add(-time.Duration(i%(30*24)) * time.Hour).UnixMicro()
		labels := fmt.Sprintf(`{"env":"%s"}`, []string{"prod", "staging", "dev"}[i%3])
		if _, err := ins.ExecContext(ctx, fp, fmt.Sprintf("CN=host%d.example", i), fmt.Sprintf("CN=Issuer %d,O=Bench", i%benchIssuers),
			fmt.Sprintf(`["host%d.example"]`, i), fmt.Sprintf("%x", i), benchNow.Add(-365*24*time.Hour).UnixMicro(), notAfter,
			benchFP(-i-1), fmt.Sprintf("team-%d", i%benchOwners), labels, seen, seen, der); err != nil {
			return err
		}
		h := i % benchHosts
		if _, err := loc.ExecContext(ctx, fp, fmt.Sprintf("10.%d.%d.%d", h/65536, h/256%256, h%256), seen, seen); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, q := range indexes {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	for _, q := range []string{"ANALYZE", "PRAGMA journal_mode = WAL"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// BenchmarkInventoryQuery1M measures one page (100 identities) of each
// inventory query the issue names, at 1M identities. Target: < 50 ms each.
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
