package assess

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/sqlite"
)

// BenchmarkFindings measures a full run of every rule over an inventory of
// N identities with 2 locations each on SQLite, then an incremental run
// after a scan touched 1,000 of them. N is SIGIL_BENCH_IDENTITIES (default
// 100,000; the target in docs/benchmarks.md is measured with 1,000,000):
//
//	SIGIL_BENCH_IDENTITIES=1000000 go test ./internal/assess -run '^$' -bench Findings -benchtime 1x -timeout 60m
//
// The data is synthetic but shaped like a real estate: ECDSA mostly, 1%
// RSA-1024, expiry spread over 400 days (about 7% within 30 days), 1%
// valid for two years, 5% without owner, 0.1% sharing a key, 2% from an
// unknown CA, lint results stored at ingestion for every certificate (10%
// with a warning, 1% with an error).
func BenchmarkFindings(b *testing.B) {
	n := 100_000
	if v := os.Getenv("SIGIL_BENCH_IDENTITIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	// SIGIL_BENCH_DB keeps the generated database between runs (it is
	// reused when it exists; delete it after changing N).
	path := os.Getenv("SIGIL_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "bench.db")
	}
	_, statErr := os.Stat(path)
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	anchor := benchAnchor(b)
	start := time.Now()
	var fps []string
	if statErr == nil {
		for i := range min(n, 1000) {
			fps = append(fps, hexHash("cert", i))
		}
		b.Logf("reusing %s", path)
	} else {
		fps = fillInventory(b, st, n, anchor.Subject.String())
		b.Logf("generated %d identities and %d locations in %s", n, 2*n, time.Since(start).Round(time.Second))
	}

	e := &Engine{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return benchNow }, TrustAnchors: []*x509.Certificate{anchor}}
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		sum, err := e.Run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		full := time.Since(t0)
		for _, rule := range []string{"lint", "lint-warning", "weak-key", "shadow"} {
			if fs, err := st.ListFindings(ctx, store.FindingFilter{Rule: rule, Limit: 1}); err != nil || len(fs) == 0 {
				b.Fatalf("no %s finding after the full run (%v)", rule, err)
			}
		}
		// A second full run over unchanged data writes nothing.
		t1 := time.Now()
		if _, err := e.Run(ctx); err != nil {
			b.Fatal(err)
		}
		again := time.Since(t1)
		// A scan touched 1,000 identities: only they are re-evaluated.
		touched := fps[:min(1000, len(fps))]
		var locs []*store.InventoryLocation
		for i, fp := range touched {
			locs = append(locs, &store.InventoryLocation{Fingerprint: fp, Kind: store.LocationNet, Host: "10.9.0." + strconv.Itoa(i%250), Port: 8443, FirstSeen: benchNow, LastSeen: benchNow})
		}
		if err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error { _, err := tx.UpsertLocations(ctx, locs); return err }); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		inc, err := e.RunFor(ctx, touched)
		if err != nil {
			b.Fatal(err)
		}
		incr := time.Since(t2)
		b.ReportMetric(full.Seconds(), "full-s")
		b.ReportMetric(again.Seconds(), "full-unchanged-s")
		b.ReportMetric(float64(incr.Milliseconds()), "incremental-1000-ms")
		b.ReportMetric(float64(sum.Findings), "findings")
		b.Logf("full run: %s (%d identities, %d findings opened); unchanged full run: %s; incremental (%d identities): %s",
			full.Round(time.Millisecond), sum.Identities, sum.Opened, again.Round(time.Millisecond), inc.Identities, incr.Round(time.Millisecond))
	}
}

var benchNow = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func benchAnchor(b *testing.B) *x509.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Bench Corp CA"}, NotBefore: benchNow.Add(-time.Hour), NotAfter: benchNow.Add(time.Hour * 24 * 3650), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func hexHash(prefix string, i int) string {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(i))
	h := sha256.Sum256(append([]byte(prefix), buf[:]...))
	return hex.EncodeToString(h[:])
}

// fillInventory writes n identities with two locations each, in batches.
func fillInventory(b *testing.B, st store.Store, n int, managedDN string) []string {
	ctx := context.Background()
	const batch = 5000
	fps := make([]string, 0, n)
	for lo := 0; lo < n; lo += batch {
		var ids []*store.InventoryIdentity
		var locs []*store.InventoryLocation
		for i := lo; i < min(lo+batch, n); i++ {
			fp := hexHash("cert", i)
			fps = append(fps, fp)
			name := fmt.Sprintf("host%d.bench.internal", i)
			spki := hexHash("key", i)
			if i%1000 == 1 {
				spki = hexHash("key", i-1) // 0.1% share a key
			}
			alg, size := "ECDSA", 256
			if i%100 == 7 {
				alg, size = "RSA", 1024
			}
			issuer := managedDN
			if i%50 == 3 {
				issuer = "CN=Unknown Vendor CA"
			}
			owner := "team-" + strconv.Itoa(i%40)
			if i%20 == 9 {
				owner = ""
			}
			na := benchNow.Add(time.Duration(i%400+1)*24*time.Hour + time.Hour)
			nb := na.Add(-time.Duration(90+i%300) * 24 * time.Hour) // 90 to 389 days
			if i%100 == 11 {
				nb = na.Add(-730 * 24 * time.Hour) // 1% over the 398-day limit
			}
			// Lint results as ingestion stores them (inventory.Batch.LintNew).
			lr := &store.InventoryLint{}
			if i%10 == 5 {
				lr.Warnings = []string{"w_ext_subject_key_identifier_missing_sub_cert"}
			}
			if i%100 == 13 {
				lr.Errors = []string{"e_sub_cert_aia_does_not_contain_ocsp_url"}
			}
			ids = append(ids, &store.InventoryIdentity{Fingerprint: fp, Kind: store.KindX509, Source: store.SourceDiscovered,
				Subject: "CN=" + name, Issuer: issuer, SANs: []string{name}, Serial: strconv.FormatInt(int64(i), 16),
				NotBefore: nb, NotAfter: na, SignatureAlg: "ECDSA-SHA256", KeyAlgorithm: alg, KeySize: size, SPKISHA256: spki,
				Owner: owner, FirstSeen: benchNow.Add(-24 * time.Hour), LastSeen: benchNow.Add(-time.Hour), Lint: lr})
			locs = append(locs,
				&store.InventoryLocation{Fingerprint: fp, Kind: store.LocationNet, Host: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), Port: 443, SNI: name,
					FirstSeen: benchNow.Add(-24 * time.Hour), LastSeen: benchNow.Add(-time.Hour)},
				&store.InventoryLocation{Fingerprint: fp, Kind: store.LocationFS, Host: "node" + strconv.Itoa(i%500), Path: "/etc/ssl/" + name + ".pem",
					FileMode: 0o644, FirstSeen: benchNow.Add(-24 * time.Hour), LastSeen: benchNow.Add(-time.Hour)})
		}
		err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			if _, err := tx.UpsertIdentities(ctx, ids); err != nil {
				return err
			}
			_, err := tx.UpsertLocations(ctx, locs)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return fps
}
