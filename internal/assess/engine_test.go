package assess

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/lint"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/sqlite"
)

// testCA issues real certificates to put in a real store.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, st store.Store) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Issuing CA"}, NotBefore: now.Add(-365 * day), NotAfter: now.Add(365 * day),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		return tx.PutIssuer(ctx, &store.Issuer{ID: "issuing-1", CertDER: der, IsDefault: true, CreatedAt: now})
	}); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: key}
}

var serialN int64 = 100

// issue records a certificate as the RA would: issued, with DER.
func (ca *testCA) issue(t *testing.T, st store.Store, requester string, names []string, nb, na, issuedAt time.Time, key *ecdsa.PrivateKey) *identity.Certificate {
	t.Helper()
	if key == nil {
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	serialN++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serialN), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names, NotBefore: nb, NotAfter: na,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := identity.SPKIFingerprint(&key.PublicKey)
	rec := &identity.Certificate{Serial: identity.Serial(big.NewInt(serialN).Text(16)), IssuerID: "issuing-1", Profile: "web", Status: identity.StatusIssued,
		Requester: requester, Owner: "team-a", CommonName: names[0], DNSNames: names, KeyType: "ecdsa-p256", SPKIFingerprint: spki,
		Fingerprint: identity.Fingerprint(der), NotBefore: nb, NotAfter: na, CreatedAt: issuedAt, IssuedAt: issuedAt, DER: der}
	if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.InsertCertificate(ctx, rec) }); err != nil {
		t.Fatal(err)
	}
	return rec
}

func openStore(t *testing.T) *sqlite.Store {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func findingIDs(t *testing.T, st store.Store, f store.FindingFilter) []string {
	t.Helper()
	fs, err := st.ListFindings(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range fs {
		out = append(out, x.ID)
	}
	return out
}

func hasPrefix(ids []string, p string) bool {
	for _, id := range ids {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

func TestEngineLifecycle(t *testing.T) {
	st := openStore(t)
	ca := newTestCA(t, st)
	clock := now
	e := &Engine{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return clock }}

	// Unmanaged, 20 days left: expiring (30d). Managed (agent), 20 days
	// left but renewal not due: nothing. Short-lived server certificate:
	// nothing.
	exp := ca.issue(t, st, "token:abc", []string{"exp.test"}, now.Add(-70*day), now.Add(20*day), now.Add(-70*day), nil)
	ca.issue(t, st, "agent:m1", []string{"agent.test"}, now.Add(-day), now.Add(60*day), now.Add(-day), nil)
	ca.issue(t, st, "system", []string{"localhost"}, now.Add(-time.Hour), now.Add(23*time.Hour), now.Add(-time.Hour), nil)

	sum, err := e.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ids := findingIDs(t, st, store.FindingFilter{})
	if len(ids) != 1 || ids[0] != "expiring:"+exp.Fingerprint+":30d" || sum.Opened != 1 {
		t.Fatalf("findings %v (summary %+v)", ids, sum)
	}
	// A second run changes nothing.
	if sum, _ := e.Run(t.Context()); sum.Opened != 0 || sum.Resolved != 0 || sum.Findings != 1 {
		t.Fatalf("second run: %+v", sum)
	}

	// Renewed: the old certificate is superseded and its finding resolves.
	ca.issue(t, st, "token:abc", []string{"exp.test"}, now, now.Add(90*day), now, nil)
	if sum, _ := e.Run(t.Context()); sum.Resolved != 1 {
		t.Fatalf("after renewal: %+v", sum)
	}
	if ids := findingIDs(t, st, store.FindingFilter{}); len(ids) != 0 {
		t.Fatalf("open after renewal: %v", ids)
	}

	// Discovery finds the old (superseded) certificate still served, and a
	// revoked one served, and a shadow certificate with a SHA-1... key reuse.
	rev := ca.issue(t, st, "token:abc", []string{"rev.test"}, now.Add(-day), now.Add(80*day), now.Add(-day), nil)
	if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		return tx.Revoke(ctx, rev.Serial, identity.ReasonKeyCompromise, now.Add(-12*time.Hour))
	}); err != nil {
		t.Fatal(err)
	}
	seen := now.Add(2*day - time.Minute)
	ids2 := []*store.InventoryIdentity{
		{Fingerprint: exp.Fingerprint, Kind: store.KindX509, Source: store.SourceDiscovered, DER: exp.DER, FirstSeen: seen, LastSeen: seen},
		{Fingerprint: rev.Fingerprint, Kind: store.KindX509, Source: store.SourceDiscovered, DER: rev.DER, FirstSeen: seen, LastSeen: seen},
	}
	locs := []*store.InventoryLocation{
		{Fingerprint: exp.Fingerprint, Kind: store.LocationNet, Host: "10.0.0.5", Port: 443, SNI: "exp.test", FirstSeen: seen, LastSeen: seen},
		{Fingerprint: rev.Fingerprint, Kind: store.LocationNet, Host: "10.0.0.6", Port: 443, SNI: "other.test", FirstSeen: seen, LastSeen: seen},
	}
	if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.UpsertIdentities(ctx, ids2); err != nil {
			return err
		}
		_, err := tx.UpsertLocations(ctx, locs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Incremental: only the touched identities are evaluated.
	clock = now.Add(2 * day) // past the superseded grace
	sum, err = e.RunFor(t.Context(), []string{exp.Fingerprint, rev.Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Identities != 2 {
		t.Fatalf("incremental run evaluated %d identities", sum.Identities)
	}
	open := findingIDs(t, st, store.FindingFilter{})
	for _, want := range []string{"superseded-served:" + exp.Fingerprint, "revoked-served:" + rev.Fingerprint, "name-mismatch:" + rev.Fingerprint} {
		if !hasPrefix(open, want) {
			t.Errorf("missing finding %s in %v", want, open)
		}
	}
	// Critical only.
	crit := findingIDs(t, st, store.FindingFilter{MinRank: Rank(SevCritical)})
	if len(crit) != 1 || !strings.HasPrefix(crit[0], "revoked-served:") {
		t.Errorf("critical findings: %v", crit)
	}
	// Orphans now that discovery has data: the agent certificate is
	// managed (no orphan), the renewed exp.test is young.
	clock = now.Add(10 * day)
	if _, err := e.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	open = findingIDs(t, st, store.FindingFilter{Rule: "orphan"})
	if len(open) != 1 {
		t.Errorf("orphans: %v", open)
	}
}

func TestParseBlocklist(t *testing.T) {
	good := strings.Repeat("ab", 32)
	m, err := ParseBlocklist(strings.NewReader("# keys\n" + good + "  # debian\n\nsha256:" + strings.Repeat("CD", 32) + "\n"))
	if err != nil || !m[good] || !m[strings.Repeat("cd", 32)] || len(m) != 2 {
		t.Fatalf("ParseBlocklist = %v, %v", m, err)
	}
	if _, err := ParseBlocklist(strings.NewReader("zz\n")); err == nil {
		t.Fatal("accepted a bad line")
	}
}

func FuzzParseBlocklist(f *testing.F) {
	f.Add("# c\n" + strings.Repeat("0", 64) + "\n")
	f.Add("sha256:xyz")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseBlocklist(strings.NewReader(s))
		if err != nil {
			return
		}
		for k := range m {
			if len(k) != 64 {
				t.Fatalf("entry %q", k)
			}
		}
	})
}

// TestEngineInventoryKeys: a private key found on two machines (one copy
// world-readable) whose public key is in no certificate.
func TestEngineInventoryKeys(t *testing.T) {
	st := openStore(t)
	newTestCA(t, st)
	seen := now.Add(-time.Hour)
	spki := strings.Repeat("ab", 32)
	id := &store.InventoryIdentity{Fingerprint: spki, Kind: store.KindPrivateKey, Source: store.SourceDiscovered, KeyAlgorithm: "ECDSA", KeySize: 256,
		SPKISHA256: spki, Owner: "team-a", FirstSeen: seen, LastSeen: seen}
	locs := []*store.InventoryLocation{
		{Fingerprint: spki, Kind: store.LocationFS, Host: "m1", Path: "/etc/ssl/k.pem", FileMode: 0o600, Detail: "private key (PKCS#8)", FirstSeen: seen, LastSeen: seen},
		{Fingerprint: spki, Kind: store.LocationFS, Host: "m2", Path: "/srv/k.pem", FileMode: 0o644, Detail: "private key (PKCS#8)", FirstSeen: seen, LastSeen: seen},
	}
	if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.UpsertIdentities(ctx, []*store.InventoryIdentity{id}); err != nil {
			return err
		}
		_, err := tx.UpsertLocations(ctx, locs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}
	if _, err := e.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	ids := findingIDs(t, st, store.FindingFilter{Subject: spki})
	for _, want := range []string{"key-reuse:" + spki + ":locations", "key-file-permissions:" + spki + ":m2:/srv/k.pem", "unmatched-private-key:" + spki} {
		if !hasPrefix(ids, want) {
			t.Errorf("missing %s in %v", want, ids)
		}
	}
	if hasPrefix(ids, "key-file-permissions:"+spki+":m1:") {
		t.Errorf("0600 key flagged: %v", ids)
	}
}

// TestEngineLintWarnings runs the real linter: a discovered certificate
// without a subject key identifier gets a lint-warning finding; a Sigil
// leaf, which lacks one by Sigil's own construction, does not.
func TestEngineLintWarnings(t *testing.T) {
	st := openStore(t)
	ca := newTestCA(t, st)
	mine := ca.issue(t, st, "token:abc", []string{"mine.test"}, now.Add(-day), now.Add(60*day), now.Add(-day), nil)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "theirs.test"}, DNSNames: []string{"theirs.test"},
		NotBefore: now.Add(-day), NotAfter: now.Add(60 * day), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherCA := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Other CA"}, NotBefore: now.Add(-day), NotAfter: now.Add(365 * day),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, otherCA, &key.PublicKey, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	theirs := identity.Fingerprint(der)
	// The same certificate shape recorded without lint results (as if
	// ingested with no linter): the engine must not lint it itself.
	tmpl.SerialNumber = big.NewInt(8)
	der2, err := x509.CreateCertificate(rand.Reader, tmpl, otherCA, &key.PublicKey, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	unlinted := identity.Fingerprint(der2)
	l, err := lint.NewWithWarnings()
	if err != nil {
		t.Fatal(err)
	}
	seen := now.Add(-time.Hour)
	if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.UpsertIdentities(ctx, []*store.InventoryIdentity{
			{Fingerprint: theirs, Kind: store.KindX509, Source: store.SourceDiscovered, Subject: "CN=theirs.test", Issuer: "CN=Other CA",
				NotBefore: now.Add(-day), NotAfter: now.Add(60 * day), DER: der, FirstSeen: seen, LastSeen: seen,
				Lint: InventoryLinter(l)(der)}, // what ingestion stores
			{Fingerprint: unlinted, Kind: store.KindX509, Source: store.SourceDiscovered, Subject: "CN=theirs.test", Issuer: "CN=Other CA",
				NotBefore: now.Add(-day), NotAfter: now.Add(60 * day), DER: der2, FirstSeen: seen, LastSeen: seen}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Store: st, Lint: LintWith(l), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}
	if _, err := e.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ids := findingIDs(t, st, store.FindingFilter{Subject: theirs}); !hasPrefix(ids, "lint-warning:"+theirs) {
		t.Errorf("discovered certificate without SKI: findings %v lack lint-warning", ids)
	}
	if ids := findingIDs(t, st, store.FindingFilter{Subject: unlinted}); hasPrefix(ids, "lint-warning:") {
		t.Errorf("discovered certificate without stored lint results was linted by the engine: %v", ids)
	}
	// An incremental run over both keeps their lint findings open (the
	// Sigil certificate's from the full run's cache).
	if _, err := e.RunFor(t.Context(), []string{theirs, mine.Fingerprint}); err != nil {
		t.Fatal(err)
	}
	for _, fp := range []string{theirs, mine.Fingerprint} {
		if ids := findingIDs(t, st, store.FindingFilter{Subject: fp}); !hasPrefix(ids, "lint-warning:"+fp) {
			t.Errorf("%s: incremental run resolved the lint warning: %v", fp[:8], ids)
		}
	}
	// The test CA's leaf (no AIA, CN included) has other warnings, which
	// must come through; only the missing SKI is Sigil's to own.
	fs, err := st.ListFindings(t.Context(), store.FindingFilter{Subject: mine.Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	var warned bool
	for _, f := range fs {
		if f.Rule == "lint-warning" {
			warned = true
			if strings.Contains(f.Message, "subject_key_identifier") {
				t.Errorf("Sigil leaf: %s", f.Message)
			}
		}
	}
	if !warned {
		t.Error("Sigil leaf without AIA: no lint-warning finding")
	}
}

// TestEngineAgentStale: agent-stale comes from the agents table (agents
// report no inventory locations): an active agent not seen for longer than
// the configured period whose current certificate is valid.
func TestEngineAgentStale(t *testing.T) {
	st := openStore(t)
	ca := newTestCA(t, st)
	cert := func(name string) *identity.Certificate {
		return ca.issue(t, st, "agent:"+name, []string{name + ".test"}, now.Add(-day), now.Add(60*day), now.Add(-day), nil)
	}
	stale, fresh, disabled, renewedOld := cert("stale"), cert("fresh"), cert("disabled"), cert("renewed")
	renewedNew := ca.issue(t, st, "agent:renewed", []string{"renewed.test", "www.renewed.test"}, now.Add(-day), now.Add(60*day), now.Add(-day), nil)
	custom := cert("custom")
	machine := func(name string, c *identity.Certificate, seen time.Time, state store.MachineState) *store.Machine {
		return &store.Machine{Name: name, Profile: "web", Names: []string{name + ".test"}, Attestation: "join_token", State: state,
			CurrentSerial: c.Serial, FirstSeen: now.Add(-30 * day), LastSeen: seen}
	}
	if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		for _, m := range []*store.Machine{
			machine("stale", stale, now.Add(-10*day), store.MachineActive),
			machine("fresh", fresh, now.Add(-day), store.MachineActive),
			machine("disabled", disabled, now.Add(-10*day), store.MachineDisabled),
			machine("renewed", renewedNew, now.Add(-day), store.MachineActive),
			machine("custom", custom, now.Add(-10*day), store.MachineActive),
		} {
			if err := tx.PutMachine(ctx, m); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	clock := now
	e := &Engine{Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return clock }}
	if _, err := e.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	fs, err := st.ListFindings(t.Context(), store.FindingFilter{Rule: "agent-stale"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*store.Finding{}
	for _, f := range fs {
		got[f.Subject] = f
	}
	for _, c := range []*identity.Certificate{stale, custom} {
		f := got[c.Fingerprint]
		if f == nil {
			t.Errorf("%s: no agent-stale finding (findings %v)", c.CommonName, findingIDs(t, st, store.FindingFilter{Subject: c.Fingerprint}))
			continue
		}
		if f.Serial != string(c.Serial) || f.Severity != SevMedium || !strings.Contains(f.Message, "10d ago") {
			t.Errorf("%s: finding %+v", c.CommonName, f)
		}
	}
	for _, c := range []*identity.Certificate{fresh, disabled, renewedOld, renewedNew} {
		if got[c.Fingerprint] != nil {
			t.Errorf("%s: unexpected agent-stale finding %+v", c.CommonName, got[c.Fingerprint])
		}
	}

	// The agent comes back: an incremental run over its certificate reads
	// the agents table again and resolves the finding. A longer configured
	// period resolves the other at the next full run.
	if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		return tx.TouchMachine(ctx, "stale", now)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RunFor(t.Context(), []string{stale.Fingerprint}); err != nil {
		t.Fatal(err)
	}
	if ids := findingIDs(t, st, store.FindingFilter{Subject: stale.Fingerprint}); hasPrefix(ids, "agent-stale:") {
		t.Errorf("agent back: finding still open: %v", ids)
	}
	e.Config.AgentStaleAfter = 14 * day
	if _, err := e.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ids := findingIDs(t, st, store.FindingFilter{Rule: "agent-stale"}); len(ids) != 0 {
		t.Errorf("AgentStaleAfter 14d: open %v", ids)
	}
}
