package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

var inventoryTests = []test{
	{"RoundTrip", testInvRoundTrip},
	{"Merge", testInvMerge},
	{"Owner", testInvOwner},
	{"Locations", testInvLocations},
	{"LocationUnknownIdentity", testInvLocationUnknown},
	{"Filters", testInvFilters},
	{"KeyReuse", testInvKeyReuse},
	{"IssuedLookup", testInvIssuedLookup},
	{"Schedules", testInvSchedules},
	{"Lint", testInvLint},
	{"GetMany", testInvGetMany},
}

// testInvGetMany: GetInventoryIdentities returns exactly the known ones
// among the asked fingerprints, each equal to GetInventoryIdentity's answer,
// also past one statement's worth of parameters.
func testInvGetMany(t *testing.T, s store.Store) {
	var ids []*store.InventoryIdentity
	var ask []string
	for i := range 1200 {
		f := fmt.Sprintf("%064x", i+1)
		if i%2 == 0 {
			ids = append(ids, invIdentity(f, store.KindX509, base))
		}
		ask = append(ask, f)
	}
	upsertIDs(t, s, ids...)
	got, err := s.GetInventoryIdentities(t.Context(), append(ask, fp('z')))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ids) {
		t.Fatalf("got %d identities, want %d", len(got), len(ids))
	}
	byFP := map[string]*store.InventoryIdentity{}
	for _, id := range got {
		byFP[id.Fingerprint] = id
	}
	for _, want := range []*store.InventoryIdentity{ids[0], ids[len(ids)/2], ids[len(ids)-1]} {
		if g := byFP[want.Fingerprint]; g == nil || !reflect.DeepEqual(canonID(g), canonID(getID(t, s, want.Fingerprint))) {
			t.Errorf("identity %s: got %+v", want.Fingerprint[:8], g)
		}
	}
	if none, err := s.GetInventoryIdentities(t.Context(), nil); err != nil || len(none) != 0 {
		t.Errorf("no fingerprints: %v, %v", none, err)
	}
}

// testInvLint: lint results round-trip (nil = not linted, empty = linted
// clean), are written once, and UnlintedInventory reports what still needs
// linting.
func testInvLint(t *testing.T, s store.Store) {
	dirty, clean, none := invIdentity(fp('l'), store.KindX509, base), invIdentity(fp('m'), store.KindX509, base), invIdentity(fp('n'), store.KindX509, base)
	dirty.Lint = &store.InventoryLint{Errors: []string{"e_one (details)"}, Warnings: []string{"w_a", "w_b"}}
	clean.Lint = &store.InventoryLint{}
	upsertIDs(t, s, dirty, clean, none)
	for _, want := range []*store.InventoryIdentity{dirty, clean, none} {
		if got := getID(t, s, want.Fingerprint); !reflect.DeepEqual(got.Lint, want.Lint) {
			t.Errorf("%s: Lint = %+v, want %+v", want.Fingerprint[:4], got.Lint, want.Lint)
		}
	}
	// A re-report with other results changes nothing; a first result fills
	// a row that had none.
	again := invIdentity(fp('l'), store.KindX509, base.Add(time.Hour))
	again.Lint = &store.InventoryLint{Warnings: []string{"w_other"}}
	later := invIdentity(fp('n'), store.KindX509, base.Add(time.Hour))
	later.Lint = &store.InventoryLint{Warnings: []string{"w_late"}}
	noLint := invIdentity(fp('m'), store.KindX509, base.Add(time.Hour))
	upsertIDs(t, s, again, later, noLint)
	if got := getID(t, s, fp('l')); !reflect.DeepEqual(got.Lint, dirty.Lint) {
		t.Errorf("re-report overwrote lint results: %+v", got.Lint)
	}
	if got := getID(t, s, fp('m')); got.Lint == nil || got.Lint.Errors != nil || got.Lint.Warnings != nil {
		t.Errorf("re-report without results: Lint = %+v, want linted clean", got.Lint)
	}
	if got := getID(t, s, fp('n')); !reflect.DeepEqual(got.Lint, later.Lint) {
		t.Errorf("first lint results: %+v, want %+v", got.Lint, later.Lint)
	}
	page, err := s.ListInventory(t.Context(), store.InventoryFilter{After: fp('k'), Limit: 1})
	if err != nil || len(page) != 1 || !reflect.DeepEqual(page[0].Lint, dirty.Lint) {
		t.Errorf("ListInventory: %v, %+v", err, page)
	}
	upsertIDs(t, s, invIdentity(fp('o'), store.KindX509, base))
	got, err := s.UnlintedInventory(t.Context(), []string{fp('p'), fp('l'), fp('o'), fp('m')})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{fp('p'), fp('o')}; !slices.Equal(got, want) {
		t.Errorf("UnlintedInventory = %v, want %v", got, want)
	}
	if got, err := s.UnlintedInventory(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("UnlintedInventory(none) = %v, %v", got, err)
	}
}

func fp(c byte) string { // a distinct 64-hex fingerprint
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func invIdentity(f string, kind store.InventoryKind, seen time.Time) *store.InventoryIdentity {
	return &store.InventoryIdentity{
		Fingerprint: f, Kind: kind, Source: store.SourceDiscovered,
		Subject: "CN=" + f[:4], Issuer: "CN=Some CA", SANs: []string{"a.example", "10.0.0.1"},
		Serial: "0a1b", NotBefore: base.Add(-24 * time.Hour), NotAfter: base.Add(90 * 24 * time.Hour),
		SignatureAlg: "SHA256-RSA", KeyAlgorithm: "RSA", KeySize: 2048, SPKISHA256: fp('9'),
		FirstSeen: seen, LastSeen: seen, DER: []byte("der-" + f[:4]),
	}
}

func upsertIDs(t *testing.T, s store.Store, ids ...*store.InventoryIdentity) int {
	t.Helper()
	var n int
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		n, err = tx.UpsertIdentities(ctx, ids)
		return err
	})
	return n
}

func upsertLocs(t *testing.T, s store.Store, ls ...*store.InventoryLocation) int {
	t.Helper()
	var n int
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		n, err = tx.UpsertLocations(ctx, ls)
		return err
	})
	return n
}

func getID(t *testing.T, s store.Store, f string) *store.InventoryIdentity {
	t.Helper()
	id, err := s.GetInventoryIdentity(t.Context(), f)
	if err != nil {
		t.Fatalf("GetInventoryIdentity(%s): %v", f[:8], err)
	}
	checkTime(t, "FirstSeen", id.FirstSeen)
	checkTime(t, "LastSeen", id.LastSeen)
	return id
}

func canonID(id *store.InventoryIdentity) store.InventoryIdentity {
	x := *id
	x.SANs, x.DER = emptyNil(x.SANs), emptyNil(x.DER)
	if len(x.Labels) == 0 {
		x.Labels = nil
	}
	x.NotBefore, x.NotAfter = canonTime(x.NotBefore), canonTime(x.NotAfter)
	x.FirstSeen, x.LastSeen = canonTime(x.FirstSeen), canonTime(x.LastSeen)
	return x
}

func testInvRoundTrip(t *testing.T, s store.Store) {
	want := invIdentity(fp('a'), store.KindX509, base)
	want.IsCA, want.Owner, want.Labels, want.IssuedSerial = true, "team-x", map[string]string{"env": "prod", "ü": "✓"}, "abc"
	if n := upsertIDs(t, s, want); n != 1 {
		t.Errorf("created = %d, want 1", n)
	}
	if got := getID(t, s, want.Fingerprint); !reflect.DeepEqual(canonID(got), canonID(want)) {
		t.Errorf("identity:\n got %+v\nwant %+v", canonID(got), canonID(want))
	}
	minimal := &store.InventoryIdentity{Fingerprint: fp('b'), Kind: store.KindSecret, Source: store.SourceDiscovered, RuleID: "aws-access-key-id"}
	upsertIDs(t, s, minimal)
	if got := getID(t, s, minimal.Fingerprint); !reflect.DeepEqual(canonID(got), canonID(minimal)) {
		t.Errorf("minimal identity:\n got %+v\nwant %+v", canonID(got), canonID(minimal))
	}
	_, err := s.GetInventoryIdentity(t.Context(), fp('z'))
	wantErr(t, "GetInventoryIdentity(unknown)", err, store.ErrNotFound)
}

func testInvMerge(t *testing.T, s store.Store) {
	f := fp('c')
	first := invIdentity(f, store.KindX509, base)
	first.Owner = "orig-owner"
	upsertIDs(t, s, first)

	// A later report: widens the seen window, never lowers the source, never
	// overwrites owner or labels, fills nothing already set.
	later := invIdentity(f, store.KindX509, base.Add(time.Hour))
	later.Subject, later.Owner, later.Labels = "CN=changed", "intruder", map[string]string{"x": "y"}
	earlier := invIdentity(f, store.KindX509, base.Add(-time.Hour))
	earlier.LastSeen = base.Add(-time.Hour)
	if n := upsertIDs(t, s, later, earlier); n != 0 {
		t.Errorf("created on merge = %d, want 0", n)
	}
	got := getID(t, s, f)
	if !got.FirstSeen.Equal(canonTime(base.Add(-time.Hour))) || !got.LastSeen.Equal(canonTime(base.Add(time.Hour))) {
		t.Errorf("seen window = %v..%v, want %v..%v", got.FirstSeen, got.LastSeen, canonTime(base.Add(-time.Hour)), canonTime(base.Add(time.Hour)))
	}
	if got.Subject != first.Subject || got.Owner != "orig-owner" || got.Labels != nil || got.Source != store.SourceDiscovered {
		t.Errorf("merge changed kept fields: %+v", got)
	}

	// Source only goes up; the issued serial is attached.
	imp := invIdentity(f, store.KindX509, base)
	imp.Source = store.SourceImported
	upsertIDs(t, s, imp)
	if got := getID(t, s, f); got.Source != store.SourceImported {
		t.Errorf("source after import = %s", got.Source)
	}
	iss := &store.InventoryIdentity{Fingerprint: f, Kind: store.KindX509, Source: store.SourceIssued, IssuedSerial: "7f"}
	upsertIDs(t, s, iss)
	disc := invIdentity(f, store.KindX509, base)
	upsertIDs(t, s, disc)
	got = getID(t, s, f)
	if got.Source != store.SourceIssued || got.IssuedSerial != "7f" {
		t.Errorf("after issued then discovered: source %s serial %q", got.Source, got.IssuedSerial)
	}
	if got.Subject != first.Subject || len(got.DER) == 0 || got.KeySize != 2048 {
		t.Errorf("sparse report blanked fields: %+v", got)
	}

	// Fill-in: an identity first seen without details gets them later.
	sparse := &store.InventoryIdentity{Fingerprint: fp('d'), Kind: store.KindX509, Source: store.SourceDiscovered}
	upsertIDs(t, s, sparse)
	upsertIDs(t, s, invIdentity(fp('d'), store.KindX509, base))
	if got := getID(t, s, fp('d')); got.Subject == "" || got.KeyAlgorithm != "RSA" || got.NotAfter.IsZero() || got.SPKISHA256 == "" {
		t.Errorf("fill-in failed: %+v", got)
	}

	// The same fingerprint twice in one batch counts once.
	if n := upsertIDs(t, s, invIdentity(fp('e'), store.KindX509, base), invIdentity(fp('e'), store.KindX509, base)); n != 1 {
		t.Errorf("duplicate in batch: created %d, want 1", n)
	}
}

func testInvOwner(t *testing.T, s store.Store) {
	f := fp('1')
	id := invIdentity(f, store.KindX509, base)
	id.Labels = map[string]string{"env": "dev", "tier": "1"}
	upsertIDs(t, s, id)
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.SetInventoryOwner(ctx, f, "team-payments", map[string]string{"env": "prod", "tier": "", "app": "pay"})
	})
	got := getID(t, s, f)
	if got.Owner != "team-payments" || !reflect.DeepEqual(got.Labels, map[string]string{"env": "prod", "app": "pay"}) {
		t.Errorf("owner/labels = %q %v", got.Owner, got.Labels)
	}
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		return tx.SetInventoryOwner(ctx, fp('2'), "x", nil)
	})
	wantErr(t, "SetInventoryOwner(unknown)", err, store.ErrNotFound)
}

func testInvLocations(t *testing.T, s store.Store) {
	f := fp('3')
	upsertIDs(t, s, invIdentity(f, store.KindX509, base))
	net := &store.InventoryLocation{Fingerprint: f, Kind: store.LocationNet, Host: "127.0.0.2", Port: 443, SNI: "a.example",
		FirstSeen: base, LastSeen: base, TLSVersion: "TLS 1.2", CipherSuite: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}
	file := &store.InventoryLocation{Fingerprint: f, Kind: store.LocationFS, Host: "web1", Path: "/etc/ssl/a.pem",
		FirstSeen: base, LastSeen: base, FileMode: 0o644, FileOwner: "root", ChainIndex: 1, Detail: "pem"}
	if n := upsertLocs(t, s, net, file); n != 2 {
		t.Errorf("created = %d, want 2", n)
	}
	// Same endpoint, different SNI: a separate location.
	sni2 := *net
	sni2.SNI = "b.example"
	// Same endpoint again later with a new TLS version: last seen and fields move.
	again := *net
	again.FirstSeen, again.LastSeen, again.TLSVersion = base.Add(time.Hour), base.Add(time.Hour), "TLS 1.3"
	if n := upsertLocs(t, s, &sni2, &again); n != 1 {
		t.Errorf("created = %d, want 1", n)
	}
	// An older report does not move anything back.
	old := *net
	old.LastSeen, old.TLSVersion = base.Add(-time.Hour), "TLS 1.0"
	upsertLocs(t, s, &old)

	got, err := s.ListInventoryLocations(t.Context(), f, fp('4'))
	if err != nil {
		t.Fatalf("ListInventoryLocations: %v", err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d locations, want 3: %+v", len(got), got)
	}
	// Order: fs < net by kind; then SNI a < b.
	if got[0].Kind != store.LocationFS || got[1].SNI != "a.example" || got[2].SNI != "b.example" {
		t.Errorf("order: %+v %+v %+v", got[0], got[1], got[2])
	}
	if g := got[0]; g.Path != file.Path || g.FileMode != 0o644 || g.FileOwner != "root" || g.ChainIndex != 1 || g.Detail != "pem" || g.Host != "web1" {
		t.Errorf("fs location = %+v", g)
	}
	g := got[1]
	checkTime(t, "location LastSeen", g.LastSeen)
	if !g.FirstSeen.Equal(canonTime(base.Add(-time.Hour))) && !g.FirstSeen.Equal(canonTime(base)) {
		t.Errorf("first seen = %v", g.FirstSeen)
	}
	if !g.LastSeen.Equal(canonTime(base.Add(time.Hour))) || g.TLSVersion != "TLS 1.3" || g.Port != 443 || g.CipherSuite == "" {
		t.Errorf("net location after re-report = %+v", g)
	}
	if none, err := s.ListInventoryLocations(t.Context()); err != nil || len(none) != 0 {
		t.Errorf("no fingerprints: %v %v", none, err)
	}
}

func testInvLocationUnknown(t *testing.T, s store.Store) {
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.UpsertLocations(ctx, []*store.InventoryLocation{{Fingerprint: fp('5'), Kind: store.LocationNet, Host: "h", Port: 1}})
		return err
	})
	wantErr(t, "location of unknown identity", err, store.ErrNotFound)
}

func fps(ids []*store.InventoryIdentity) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Fingerprint[:1]
	}
	return out
}

func testInvFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := base
	a := invIdentity(fp('a'), store.KindX509, now) // expires in 90d
	a.Owner, a.Labels = "pay", map[string]string{"env": "prod"}
	b := invIdentity(fp('b'), store.KindX509, now.Add(-30*24*time.Hour)) // seen long ago
	b.NotAfter, b.Issuer = now.Add(10*24*time.Hour), "CN=Imported Root"
	c := invIdentity(fp('c'), store.KindX509, now)
	c.Source, c.IsCA, c.Subject, c.Issuer = store.SourceImported, true, "CN=Imported Root", "CN=Imported Root"
	d := &store.InventoryIdentity{Fingerprint: fp('d'), Kind: store.KindSSHKey, Source: store.SourceDiscovered,
		KeyAlgorithm: "Ed25519", KeySize: 256, FirstSeen: now, LastSeen: now, Labels: map[string]string{"env": "dev"}}
	e := invIdentity(fp('e'), store.KindX509, now)
	e.Source, e.IssuedSerial, e.Issuer = store.SourceIssued, "1", "CN=Sigil Intermediate"
	upsertIDs(t, s, a, b, c, d, e)
	upsertLocs(t, s,
		&store.InventoryLocation{Fingerprint: fp('a'), Kind: store.LocationNet, Host: "10.0.0.1", Port: 443, LastSeen: now},
		&store.InventoryLocation{Fingerprint: fp('b'), Kind: store.LocationNet, Host: "10.0.0.1", Port: 8443, LastSeen: now},
		&store.InventoryLocation{Fingerprint: fp('c'), Kind: store.LocationFS, Host: "h", Path: "/etc/ssl/certs/c.pem", LastSeen: now},
		&store.InventoryLocation{Fingerprint: fp('d'), Kind: store.LocationFS, Host: "h", Path: "/etc/ssl2/d", LastSeen: now},
		&store.InventoryLocation{Fingerprint: fp('e'), Kind: store.LocationFS, Host: "h", Path: "/etc/ssl", LastSeen: now},
	)
	for _, tc := range []struct {
		name string
		f    store.InventoryFilter
		want []string
	}{
		{"all", store.InventoryFilter{}, []string{"a", "b", "c", "d", "e"}},
		{"kind", store.InventoryFilter{Kind: store.KindSSHKey}, []string{"d"}},
		{"source", store.InventoryFilter{Source: store.SourceImported}, []string{"c"}},
		{"owner", store.InventoryFilter{Owner: "pay"}, []string{"a"}},
		{"issuer", store.InventoryFilter{Issuer: "CN=Imported Root"}, []string{"b", "c"}},
		{"issuer unknown", store.InventoryFilter{IssuerUnknown: true}, []string{"a"}},
		{"key algorithm", store.InventoryFilter{KeyAlgorithm: "Ed25519"}, []string{"d"}},
		{"spki", store.InventoryFilter{SPKISHA256: fp('9')}, []string{"a", "b", "c", "e"}},
		{"label key", store.InventoryFilter{Label: "env"}, []string{"a", "d"}},
		{"label value", store.InventoryFilter{Label: "env=dev"}, []string{"d"}},
		{"host", store.InventoryFilter{Location: "10.0.0.1"}, []string{"a", "b"}},
		{"host:port", store.InventoryFilter{Location: "10.0.0.1:8443"}, []string{"b"}},
		{"path dir", store.InventoryFilter{Location: "/etc/ssl/"}, []string{"c", "e"}},
		{"expiring 30d", store.InventoryFilter{NotAfterBefore: now.Add(30 * 24 * time.Hour)}, []string{"b"}},
		{"valid after 30d", store.InventoryFilter{NotAfterAfter: now.Add(30 * 24 * time.Hour)}, []string{"a", "c", "e"}},
		{"seen within", store.InventoryFilter{SeenSince: now.Add(-24 * time.Hour)}, []string{"a", "c", "d", "e"}},
		{"page 1", store.InventoryFilter{Limit: 2}, []string{"a", "b"}},
		{"page 2", store.InventoryFilter{After: fp('b'), Limit: 2}, []string{"c", "d"}},
		{"combined", store.InventoryFilter{Kind: store.KindX509, Location: "10.0.0.1", Owner: "pay"}, []string{"a"}},
	} {
		got, err := s.ListInventory(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if g := fps(got); !slices.Equal(g, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, g, tc.want)
		}
	}
	// Listings carry the DER (assessment lints discovered certificates from it).
	if got, _ := s.ListInventory(ctx, store.InventoryFilter{Owner: "pay"}); len(got) != 1 || string(got[0].DER) != string(a.DER) {
		t.Errorf("ListInventory does not return the DER")
	}
}

func testInvKeyReuse(t *testing.T, s store.Store) {
	spkiShared, spkiOne, spkiCopied := fp('7'), fp('8'), fp('6')
	// Two certificates on one key: reuse.
	c1 := invIdentity(fp('a'), store.KindX509, base)
	c2 := invIdentity(fp('b'), store.KindX509, base)
	c1.SPKISHA256, c2.SPKISHA256 = spkiShared, spkiShared
	// One certificate and its key in one file: not reuse.
	c3 := invIdentity(fp('c'), store.KindX509, base)
	c3.SPKISHA256 = spkiOne
	k3 := &store.InventoryIdentity{Fingerprint: spkiOne, Kind: store.KindPrivateKey, Source: store.SourceDiscovered, SPKISHA256: spkiOne}
	// One key file copied to two hosts: reuse.
	k4 := &store.InventoryIdentity{Fingerprint: spkiCopied, Kind: store.KindPrivateKey, Source: store.SourceDiscovered, SPKISHA256: spkiCopied}
	upsertIDs(t, s, c1, c2, c3, k3, k4)
	upsertLocs(t, s,
		&store.InventoryLocation{Fingerprint: spkiOne, Kind: store.LocationFS, Host: "h", Path: "/k.pem", Detail: store.DetailPrivateKey},
		&store.InventoryLocation{Fingerprint: fp('c'), Kind: store.LocationFS, Host: "h", Path: "/c.pem"},
		&store.InventoryLocation{Fingerprint: spkiCopied, Kind: store.LocationFS, Host: "h1", Path: "/k.pem", Detail: store.DetailPrivateKey},
		&store.InventoryLocation{Fingerprint: spkiCopied, Kind: store.LocationFS, Host: "h2", Path: "/k.pem", Detail: store.DetailPrivateKey + " (encrypted)"},
	)
	got, err := s.ListKeyReuse(t.Context(), 0)
	if err != nil {
		t.Fatalf("ListKeyReuse: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d reused keys, want 2: %+v", len(got), got)
	}
	if g := got[0]; g.SPKISHA256 != spkiCopied || g.KeyLocations != 2 || g.Certificates != 0 || !slices.Equal(g.Fingerprints, []string{spkiCopied}) {
		t.Errorf("copied key = %+v", g)
	}
	if g := got[1]; g.SPKISHA256 != spkiShared || g.Certificates != 2 || !slices.Equal(g.Fingerprints, []string{fp('a'), fp('b')}) {
		t.Errorf("shared key = %+v", g)
	}
	if lim, err := s.ListKeyReuse(t.Context(), 1); err != nil || len(lim) != 1 || len(lim[0].Fingerprints) != 1 {
		t.Errorf("limit 1: %+v %v", lim, err)
	}
}

func testInvIssuedLookup(t *testing.T, s store.Store) {
	c := newCert("2a", base)
	insert(t, s, c)
	update(t, s, func(ctx context.Context, tx store.Tx) error { return markIssued(ctx, tx, "2a", base) })
	issuedFP := identity.Fingerprint([]byte("der of 2a"))
	got, err := s.IssuedSerialsBySHA256(t.Context(), []string{issuedFP, fp('0')})
	if err != nil {
		t.Fatalf("IssuedSerialsBySHA256: %v", err)
	}
	if !reflect.DeepEqual(got, map[string]string{issuedFP: "2a"}) {
		t.Errorf("got %v", got)
	}
	if got, err := s.IssuedSerialsBySHA256(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("empty lookup: %v %v", got, err)
	}
}

func testInvSchedules(t *testing.T, s store.Store) {
	ctx := t.Context()
	sc := &store.ScanSchedule{Name: "dc1", Targets: []string{"10.20.0.0/24", "web:8443"}, Ports: []int{443, 8443},
		SNI: []string{"a.example"}, Every: 6 * time.Hour, Timeout: 3 * time.Second, Concurrency: 64,
		CreatedBy: "token:admin", CreatedAt: base, NextRun: base}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.PutScanSchedule(ctx, sc) })
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.PutScanSchedule(ctx, &store.ScanSchedule{Name: "a", Every: time.Hour})
	})
	got, err := s.GetScanSchedule(ctx, "dc1")
	if err != nil {
		t.Fatalf("GetScanSchedule: %v", err)
	}
	want := *sc
	want.CreatedAt, want.NextRun = canonTime(sc.CreatedAt), canonTime(sc.NextRun)
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("schedule:\n got %+v\nwant %+v", *got, want)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.MarkScanScheduleRun(ctx, "dc1", base.Add(time.Minute), base.Add(6*time.Hour), "12 endpoints, 3 identities")
	})
	got, _ = s.GetScanSchedule(ctx, "dc1")
	if !got.LastRun.Equal(canonTime(base.Add(time.Minute))) || !got.NextRun.Equal(canonTime(base.Add(6*time.Hour))) || got.LastResult == "" {
		t.Errorf("after run: %+v", got)
	}
	list, err := s.ListScanSchedules(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[1].Name != "dc1" {
		t.Fatalf("ListScanSchedules = %v, %v", list, err)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteScanSchedule(ctx, "a") })
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error { return tx.DeleteScanSchedule(ctx, "a") })
	wantErr(t, "delete absent schedule", err, store.ErrNotFound)
	err = s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.MarkScanScheduleRun(ctx, "a", base, base, "")
	})
	wantErr(t, "mark absent schedule", err, store.ErrNotFound)
	_, err = s.GetScanSchedule(ctx, "a")
	wantErr(t, "get absent schedule", err, store.ErrNotFound)
}
