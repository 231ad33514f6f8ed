package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/store/storetest"
)

// The inventory benchmark dataset is storetest's (BenchInventoryRow), built
// once here with a bulk insert (one transaction, prepared statements, no
// API) and cached in the temp dir: SIGIL_BENCH_INVENTORY_DB overrides the path.

func openInventoryBench(b *testing.B) *Store {
	b.Helper()
	path := os.Getenv("SIGIL_BENCH_INVENTORY_DB")
	if path == "" {
		path = filepath.Join(os.TempDir(), "sigil-bench-inventory-1m-v5.db")
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
		if err := bulkInventory(ctx, tmp, storetest.BenchInventoryIdentities); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %d identities in %v at %s", storetest.BenchInventoryIdentities, time.Since(start).Round(time.Second), path)
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
	// Rows in primary-key order: SQLite appends instead of splitting pages.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	fps := make([]string, n)
	for i := range fps {
		fps[i] = storetest.BenchInventoryFP(i)
	}
	sort.Slice(order, func(a, b int) bool { return fps[order[a]] < fps[order[b]] })

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO inventory_identities (`+invColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	loc, err := tx.PrepareContext(ctx, `INSERT INTO inventory_locations (`+locColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	for _, i := range order {
		id, l := storetest.BenchInventoryRow(i)
		args, err := identityArgs(id)
		if err != nil {
			return err
		}
		if _, err := ins.ExecContext(ctx, args...); err != nil {
			return err
		}
		if _, err := loc.ExecContext(ctx, locationArgs(l)...); err != nil {
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
	storetest.BenchInventoryQueries(b, openInventoryBench(b))
}
