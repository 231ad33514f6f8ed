package ra_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/assess"
	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/lint"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/sqlite"
)

// foreignCerts returns a CA certificate from another PKI and n leaves it
// signed (without subject key identifiers: zlint warns about that).
func foreignCerts(t testing.TB, n int) (caDER []byte, leaves [][]byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Vendor CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for i := range n {
		name := "vendor" + big.NewInt(int64(i)).String() + ".test"
		lt := &x509.Certificate{SerialNumber: big.NewInt(int64(100 + i)), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, lt, caCert, &leafKey.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, der)
	}
	return caDER, leaves
}

func discoveryReport(ders ...[]byte) *inventory.Report {
	rep := &inventory.Report{Scanner: "net", Host: "scanner1"}
	for i, der := range ders {
		fp := inventory.SHA256Hex(der)
		rep.Identities = append(rep.Identities, inventory.Identity{Kind: store.KindX509, DER: der})
		rep.Locations = append(rep.Locations, inventory.Location{Fingerprint: fp, Kind: store.LocationNet, Host: "10.0.0.1", Port: 443 + i})
	}
	return rep
}

// TestReportDiscoveryLintsNewCertificatesOnce: ingestion lints the leaves
// new to the inventory that Sigil did not issue, stores the results, and a
// re-report (which only moves last-seen) lints nothing.
func TestReportDiscoveryLintsNewCertificatesOnce(t *testing.T) {
	e := newEnv(t)
	l, err := lint.NewWithWarnings()
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	inner := assess.InventoryLinter(l)
	e.ra.SetInventoryLinter(func(der []byte) *store.InventoryLint { calls.Add(1); return inner(der) })

	caDER, leaves := foreignCerts(t, 2)
	mine := parseCert(t, e.issue("mine.test").CertPEM).Raw
	sum, err := e.ra.ReportDiscovery(e.ctx, ra.Caller{}, discoveryReport(leaves[0], caDER, mine))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Linted != 1 || calls.Load() != 1 || sum.NewIdentities != 3 {
		t.Fatalf("first report: summary %+v, linter calls %d; want 1 linted of 3 new", sum, calls.Load())
	}
	get := func(der []byte) *store.InventoryIdentity {
		t.Helper()
		id, err := e.st.GetInventoryIdentity(e.ctx, inventory.SHA256Hex(der))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	theirs := get(leaves[0])
	if theirs.Lint == nil || !slices.ContainsFunc(theirs.Lint.Warnings, func(w string) bool {
		return strings.HasPrefix(w, "w_ext_subject_key_identifier_missing_sub_cert")
	}) {
		t.Errorf("discovered leaf: Lint = %+v, want the missing-SKI warning", theirs.Lint)
	}
	if id := get(caDER); id.Lint != nil {
		t.Errorf("CA certificate linted: %+v", id.Lint)
	}
	if id := get(mine); id.Lint != nil || id.Source != store.SourceIssued {
		t.Errorf("Sigil's own certificate: source %s, Lint %+v; want issued, not linted", id.Source, id.Lint)
	}

	// Re-reported later: last-seen moves, nothing is linted again; a new
	// certificate in the same report is.
	e.clock.advance(time.Hour)
	sum, err = e.ra.ReportDiscovery(e.ctx, ra.Caller{}, discoveryReport(leaves[0], caDER, mine, leaves[1]))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Linted != 1 || calls.Load() != 2 || sum.NewIdentities != 1 {
		t.Errorf("second report: summary %+v, linter calls %d; want only the new leaf linted", sum, calls.Load())
	}
	if again := get(leaves[0]); !again.LastSeen.After(theirs.LastSeen) || !slices.Equal(again.Lint.Warnings, theirs.Lint.Warnings) {
		t.Errorf("re-report: last seen %v (was %v), lint %+v", again.LastSeen, theirs.LastSeen, again.Lint)
	}
	if id := get(leaves[1]); id.Lint == nil {
		t.Error("new leaf in a re-report: not linted")
	}
}

// BenchmarkReportDiscoveryLint measures what linting at ingestion adds per
// new discovered certificate: reports of 500 new certificates (a real
// SQLite store) with and without the linter; ns/op is per certificate.
//
//	go test ./internal/ra -run '^$' -bench ReportDiscoveryLint -benchtime 5000x
func BenchmarkReportDiscoveryLint(b *testing.B) {
	l, err := lint.NewWithWarnings()
	if err != nil {
		b.Fatal(err)
	}
	for _, withLint := range []bool{false, true} {
		name := "no-lint"
		if withLint {
			name = "lint"
		}
		b.Run(name, func(b *testing.B) {
			st, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "s.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			r := ra.New(st, nil, slog.New(slog.DiscardHandler), nil)
			if withLint {
				r.SetInventoryLinter(assess.InventoryLinter(l))
			}
			_, leaves := foreignCerts(b, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i += 500 {
				sum, err := r.ReportDiscovery(b.Context(), ra.Caller{}, discoveryReport(leaves[i:min(i+500, b.N)]...))
				if err != nil {
					b.Fatal(err)
				}
				if withLint && sum.Linted != sum.NewIdentities {
					b.Fatalf("linted %d of %d new", sum.Linted, sum.NewIdentities)
				}
			}
		})
	}
}
