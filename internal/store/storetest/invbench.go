package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

// The 1M-identity inventory dataset both backends' query benchmarks load
// (each with its own bulk path), so that their figures compare: one location
// per identity, 1 KiB of DER, one of BenchInventoryOwners owners, one of
// BenchInventoryIssuers issuers, one of BenchInventoryHosts hosts, NotAfter
// spread over [-30d, +395d] around BenchInventoryNow.
const (
	BenchInventoryIdentities = 1_000_000
	BenchInventoryOwners     = 1000
	BenchInventoryIssuers    = 200
	BenchInventoryHosts      = 50_000
)

var BenchInventoryNow = time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)

// BenchInventoryFP is the fingerprint of identity i.
func BenchInventoryFP(i int) string {
	s := sha256.Sum256([]byte("inventory-bench-" + strconv.Itoa(i)))
	return hex.EncodeToString(s[:])
}

// BenchInventoryRow returns identity i of the dataset and its location.
func BenchInventoryRow(i int) (*store.InventoryIdentity, *store.InventoryLocation) {
	fp := BenchInventoryFP(i)
	der := make([]byte, 1024)
	copy(der, fp)
	span := uint64(425 * 24 * time.Hour / time.Microsecond)
	notAfter := time.UnixMicro(BenchInventoryNow.Add(-30*24*time.Hour).UnixMicro() + int64(uint64(i)*2654435761%span)).UTC()
	seen := BenchInventoryNow.Add(-time.Duration(i%(30*24)) * time.Hour)
	h := i % BenchInventoryHosts
	id := &store.InventoryIdentity{
		Fingerprint: fp, Kind: store.KindX509, Source: store.SourceDiscovered,
		Subject: fmt.Sprintf("CN=host%d.example", i), Issuer: fmt.Sprintf("CN=Issuer %d,O=Bench", i%BenchInventoryIssuers),
		SANs: []string{fmt.Sprintf("host%d.example", i)}, Serial: fmt.Sprintf("%x", i),
		NotBefore: BenchInventoryNow.Add(-365 * 24 * time.Hour), NotAfter: notAfter,
		SignatureAlg: "SHA256-RSA", KeyAlgorithm: "RSA", KeySize: 2048, SPKISHA256: BenchInventoryFP(-i - 1),
		Owner: fmt.Sprintf("team-%d", i%BenchInventoryOwners), Labels: map[string]string{"env": []string{"prod", "staging", "dev"}[i%3]},
		FirstSeen: seen, LastSeen: seen, DER: der,
	}
	loc := &store.InventoryLocation{
		Fingerprint: fp, Kind: store.LocationNet, Host: fmt.Sprintf("10.%d.%d.%d", h/65536, h/256%256, h%256), Port: 443,
		FirstSeen: seen, LastSeen: seen, TLSVersion: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256",
	}
	return id, loc
}

// BenchInventoryQueries measures one page (100 identities) of each
// inventory query the discovery issue names, on a store holding the
// dataset. Target: < 50 ms each.
func BenchInventoryQueries(b *testing.B, r store.InventoryReader) {
	ctx := b.Context()
	now := BenchInventoryNow
	for _, q := range []struct {
		name string
		f    store.InventoryFilter
	}{
		{"expiring-30d", store.InventoryFilter{NotAfterAfter: now, NotAfterBefore: now.Add(30 * 24 * time.Hour)}},
		{"expiring-1d", store.InventoryFilter{NotAfterAfter: now, NotAfterBefore: now.Add(24 * time.Hour)}},
		{"owner", store.InventoryFilter{Owner: "team-417"}},
		{"issuer", store.InventoryFilter{Issuer: "CN=Issuer 42,O=Bench"}},
		{"location-host", store.InventoryFilter{Location: "10.0.3.7"}},
		{"location-host-port", store.InventoryFilter{Location: "10.0.3.7:443"}},
		{"kind-x509", store.InventoryFilter{Kind: store.KindX509}},
		{"issuer-unknown", store.InventoryFilter{IssuerUnknown: true}},
		{"label", store.InventoryFilter{Label: "env=staging"}},
		{"seen-within-7d", store.InventoryFilter{SeenSince: now.Add(-7 * 24 * time.Hour)}},
		{"owner-and-expiring", store.InventoryFilter{Owner: "team-417", NotAfterAfter: now, NotAfterBefore: now.Add(30 * 24 * time.Hour)}},
	} {
		b.Run(q.name, func(b *testing.B) {
			q.f.Limit = 100
			var got int
			for b.Loop() {
				ids, err := r.ListInventory(ctx, q.f)
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
		fp := BenchInventoryFP(123456)
		for b.Loop() {
			if _, err := r.GetInventoryIdentity(ctx, fp); err != nil {
				b.Fatal(err)
			}
			if _, err := r.ListInventoryLocations(ctx, fp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
