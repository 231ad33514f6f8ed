package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/client"
	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/server"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
)

// startServerFast is startServerDB with a short background interval, so
// scheduled scans run within the test.
func startServerFast(t *testing.T, dir string) *instance {
	t.Helper()
	return startServerConfig(t, server.Config{DataDir: dir, BackgroundInterval: 200 * time.Millisecond})
}

func makeCert(t *testing.T, cn string, parent *tls.Certificate, isCA bool, nb, na time.Time) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na,
		DNSNames: []string{cn}, IsCA: isCA, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	signer, signKey := tmpl, crypto.Signer(key)
	var chain [][]byte
	if parent != nil {
		signer, signKey, chain = parent.Leaf, parent.PrivateKey.(crypto.Signer), parent.Certificate
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: append([][]byte{der}, chain...), PrivateKey: key, Leaf: leaf}
}

func serve(t *testing.T, addr string, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fn(c)
		}
	}()
	return ln.Addr().String()
}

func serveTLS(t *testing.T, addr string, cert tls.Certificate) string {
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	return serve(t, addr, func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_ = tls.Server(c, cfg).Handshake()
	})
}

func fpOf(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

// inventoryAll lists every identity through the CLI (exercising --all paging).
func (in *instance) inventoryAll(args ...string) map[string]inventory.Identity {
	in.t.Helper()
	out := in.mustCLI(append([]string{"inventory", "list", "--all", "--limit", "2", "-o", "json"}, args...)...)
	var resp struct {
		Items []inventory.Identity `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		in.t.Fatalf("inventory list output: %v\n%s", err, out)
	}
	m := map[string]inventory.Identity{}
	for _, id := range resp.Items {
		m[id.Fingerprint] = id
	}
	return m
}

func (in *instance) show(fp string) inventory.Identity {
	in.t.Helper()
	var id inventory.Identity
	if err := json.Unmarshal([]byte(in.mustCLI("inventory", "show", fp, "-o", "json")), &id); err != nil {
		in.t.Fatal(err)
	}
	return id
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (in *instance) auditCount(action string) int {
	in.t.Helper()
	var resp struct {
		Count int `json:"count"`
	}
	if err := in.api.Do(context.Background(), "GET", "/api/v1/audit?action="+action, nil, &resp); err != nil {
		in.t.Fatal(err)
	}
	return resp.Count
}

func TestDiscoveryNet(t *testing.T) {
	in := startServerFast(t, filepath.Join(t.TempDir(), "data"))
	in.applyProfiles()
	work := t.TempDir()
	now := time.Now()

	// One certificate issued by this Sigil, served by a test listener.
	crt, key, chain := filepath.Join(work, "s.crt"), filepath.Join(work, "s.key"), filepath.Join(work, "s.chain")
	in.mustCLI("cert", "issue", "--profile", "web", "--name", "sigil.test", "--key-out", key, "--out", crt, "--chain", chain)
	sigilPair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, _ := os.ReadFile(chain)
	for rest := chainPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if !slices.ContainsFunc(sigilPair.Certificate, func(d []byte) bool { return string(d) == string(b.Bytes) }) {
			sigilPair.Certificate = append(sigilPair.Certificate, b.Bytes)
		}
	}
	// Sigil's chain file may include the root; servers send leaf + intermediate.
	sigilLeaf, _ := x509.ParseCertificate(sigilPair.Certificate[0])
	var sent [][]byte
	for _, d := range sigilPair.Certificate {
		c, _ := x509.ParseCertificate(d)
		if c.Subject.String() != c.Issuer.String() {
			sent = append(sent, d)
		}
	}
	sigilPair.Certificate = sent

	self := makeCert(t, "self.test", nil, false, now.Add(-time.Hour), now.Add(20*24*time.Hour))
	expired := makeCert(t, "expired.test", nil, false, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	root := makeCert(t, "E2E Test Root", nil, true, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	inter := makeCert(t, "E2E Test Intermediate", &root, true, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	inter.Certificate = inter.Certificate[:1]
	leaf := makeCert(t, "chain.test", &inter, false, now.Add(-time.Hour), now.Add(90*24*time.Hour))

	eps := map[string]string{
		"self":    serveTLS(t, "127.0.0.1", self),
		"expired": serveTLS(t, "127.0.0.2", expired),
		"chain":   serveTLS(t, "127.0.0.3", leaf),
		"sigil":   serveTLS(t, "127.0.0.4", sigilPair),
		"garbage": serve(t, "127.0.0.5", func(c net.Conn) { defer c.Close(); c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n\x00\xff")) }),
		"silent":  serve(t, "127.0.0.6", func(c net.Conn) { defer c.Close(); time.Sleep(20 * time.Second) }),
	}
	want := map[string][]string{ // fingerprint → endpoint#chain index
		fpOf(self.Certificate[0]):      {eps["self"] + "#0"},
		fpOf(expired.Certificate[0]):   {eps["expired"] + "#0"},
		fpOf(leaf.Certificate[0]):      {eps["chain"] + "#0"},
		fpOf(leaf.Certificate[1]):      {eps["chain"] + "#1"},
		fpOf(sigilPair.Certificate[0]): {eps["sigil"] + "#0"},
	}
	for i, d := range sigilPair.Certificate[1:] {
		want[fpOf(d)] = []string{fmt.Sprintf("%s#%d", eps["sigil"], i+1)}
	}
	targets := []string{eps["self"], eps["expired"], eps["chain"], eps["sigil"], eps["garbage"], eps["silent"]}

	scan := func() inventory.Summary {
		start := time.Now()
		out := in.mustCLI(append([]string{"scan", "net", "--timeout", "1s", "-q", "-o", "json"}, targets...)...)
		// A hang guard, not a speed target: the tarpit costs one timeout.
		if el := time.Since(start); el > 15*time.Second {
			t.Errorf("scan took %v with a 1s timeout", el)
		}
		var res struct {
			Errors []inventory.ScanError `json:"errors"`
			Server *inventory.Summary    `json:"server"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("scan output: %v\n%s", err, out)
		}
		var errEPs []string
		for _, e := range res.Errors {
			errEPs = append(errEPs, e.Target)
		}
		slices.Sort(errEPs)
		wantErr := []string{eps["garbage"], eps["silent"]}
		slices.Sort(wantErr)
		if !slices.Equal(errEPs, wantErr) {
			t.Errorf("scan errors %v, want %v", res.Errors, wantErr)
		}
		if res.Server == nil {
			t.Fatal("results were not reported to the server (SIGIL_SERVER is set)")
		}
		return *res.Server
	}
	first := scan()
	// Issued by this Sigil: the leaf and the intermediate that signed it.
	if first.NewIdentities != len(want) || first.Issued != len(sigilPair.Certificate) {
		t.Errorf("first scan summary %+v, want %d new identities, %d issued", first, len(want), len(sigilPair.Certificate))
	}

	// Exactly the expected identities and locations.
	inv := in.inventoryAll()
	if got, w := keysOf(inv), keysOf(want); !slices.Equal(got, w) {
		t.Fatalf("inventory holds %d identities %v, want %d %v", len(got), got, len(w), w)
	}
	shown := map[string]inventory.Identity{}
	for fp, wantLocs := range want {
		id := in.show(fp)
		shown[fp] = id
		var got []string
		for _, l := range id.Locations {
			got = append(got, fmt.Sprintf("%s:%d#%d", l.Host, l.Port, l.ChainIndex))
			if l.Kind != store.LocationNet || l.TLSVersion == "" || l.CipherSuite == "" {
				t.Errorf("location %+v lacks TLS details", l)
			}
		}
		if !slices.Equal(got, wantLocs) {
			t.Errorf("%s (%s): locations %v, want %v", id.Subject, fp[:8], got, wantLocs)
		}
	}
	// The certificate Sigil issued is recognised and linked to its serial.
	sid := shown[fpOf(sigilPair.Certificate[0])]
	if sid.Source != store.SourceIssued || sid.IssuedSerial != strings.ToLower(sigilLeaf.SerialNumber.Text(16)) {
		t.Errorf("Sigil-issued certificate: source %s serial %q, want issued %s", sid.Source, sid.IssuedSerial, sigilLeaf.SerialNumber.Text(16))
	}
	if s := shown[fpOf(self.Certificate[0])]; s.Source != store.SourceDiscovered || s.Subject != "CN=self.test" {
		t.Errorf("self-signed: %+v", s)
	}

	// Idempotence: the same scan again changes nothing but last-seen.
	time.Sleep(10 * time.Millisecond)
	second := scan()
	if second.NewIdentities != 0 || second.NewLocations != 0 {
		t.Errorf("second scan created things: %+v", second)
	}
	for fp := range want {
		a, b := shown[fp], in.show(fp)
		if !b.LastSeen.After(a.LastSeen) || !b.FirstSeen.Equal(a.FirstSeen) {
			t.Errorf("%s: seen %v..%v then %v..%v: last seen must move, first seen stay", fp[:8], a.FirstSeen, a.LastSeen, b.FirstSeen, b.LastSeen)
		}
		a.FirstSeen, a.LastSeen, b.FirstSeen, b.LastSeen = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		for i := range a.Locations {
			a.Locations[i].LastSeen = time.Time{}
		}
		for i := range b.Locations {
			b.Locations[i].LastSeen = time.Time{}
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%s changed beyond last-seen:\n%s\n%s", fp[:8], ja, jb)
		}
	}
	// One audit event per batch, not per identity.
	if n := in.auditCount("inventory.report"); n != 2 {
		t.Errorf("%d inventory.report audit events, want 2", n)
	}

	// Filters through the CLI.
	if got := keysOf(in.inventoryAll("--expiring", "25d")); !slices.Equal(got, []string{fpOf(self.Certificate[0])}) {
		t.Errorf("--expiring 25d = %v, want only self.test", got)
	}
	if got := keysOf(in.inventoryAll("--expired")); !slices.Equal(got, []string{fpOf(expired.Certificate[0])}) {
		t.Errorf("--expired = %v", got)
	}
	if got := keysOf(in.inventoryAll("--location", eps["chain"])); len(got) != 2 {
		t.Errorf("--location %s = %v, want leaf and intermediate", eps["chain"], got)
	}
	unknown := in.inventoryAll("--issuer-unknown")
	if _, ok := unknown[fpOf(sigilPair.Certificate[0])]; ok || len(unknown) != 4 {
		t.Errorf("--issuer-unknown = %d identities %v, want the 4 foreign ones", len(unknown), keysOf(unknown))
	}
	// Importing the test root makes the intermediate it signed known.
	rootFile := writeFile(t, work, "root.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate[0]}))
	in.mustCLI("inventory", "import", rootFile)
	if id := in.show(fpOf(root.Certificate[0])); id.Source != store.SourceImported {
		t.Errorf("imported root: source %s", id.Source)
	}
	if _, ok := in.inventoryAll("--issuer-unknown")[fpOf(leaf.Certificate[1])]; ok {
		t.Error("the intermediate of an imported root is still issuer-unknown")
	}

	// Owner and labels.
	selfFP := fpOf(self.Certificate[0])
	in.mustCLI("inventory", "set-owner", selfFP, "--owner", "team-payments", "--label", "env=prod")
	if got := keysOf(in.inventoryAll("--owner", "team-payments", "--label", "env=prod")); !slices.Equal(got, []string{selfFP}) {
		t.Errorf("by owner = %v", got)
	}
	if _, errOut, code := in.cli("inventory", "set-owner", strings.Repeat("0", 64), "--owner", "x"); code != 2 || !strings.Contains(errOut, "not found") {
		t.Errorf("set-owner on unknown fingerprint: exit %d %s", code, errOut)
	}

	// Hostile report bodies change nothing and are audited as refused.
	before := len(in.inventoryAll())
	for _, body := range []any{
		map[string]any{"scanner": "net", "identities": []map[string]any{{"kind": "x509", "der": "MAMCAQE="}}, "bogus": 1},
		map[string]any{"scanner": "net", "identities": []map[string]any{{"kind": "private-key", "fingerprint": strings.Repeat("a", 64), "der": "AAAA"}}},
		map[string]any{"scanner": "net", "identities": []map[string]any{{"kind": "secret", "fingerprint": "nope"}}},
	} {
		err := in.api.Do(context.Background(), "POST", "/api/v1/discovery/results", body, nil)
		var ce *client.Error
		if !errorsAs(err, &ce) || ce.Status != 400 {
			t.Errorf("hostile report %v: got %v, want 400", body, err)
		}
	}
	if after := len(in.inventoryAll()); after != before {
		t.Errorf("hostile reports changed the inventory: %d → %d", before, after)
	}

	// A scheduled scan, run by the server itself.
	// last is read before the schedule exists: the server may run it at once.
	expFP := fpOf(expired.Certificate[0])
	last := in.show(expFP).LastSeen
	in.mustCLI("scan", "schedule", "create", "--name", "dc1", "--targets", eps["expired"], "--every", "1h", "--timeout", "1s")
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ss []client.ScanSchedule
		out := in.mustCLI("scan", "schedule", "list", "-o", "json")
		var resp struct {
			Items []client.ScanSchedule `json:"items"`
		}
		json.Unmarshal([]byte(out), &resp)
		ss = resp.Items
		if len(ss) == 1 && !ss[0].LastRun.IsZero() {
			if !strings.Contains(ss[0].LastResult, "1 identities") {
				t.Errorf("scheduled scan result %q", ss[0].LastResult)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scheduled scan did not run: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !in.show(expFP).LastSeen.After(last) {
		t.Error("scheduled scan did not refresh last-seen")
	}
	in.mustCLI("scan", "schedule", "delete", "dc1")
	if _, errOut, code := in.cli("scan", "schedule", "create", "--name", "bad", "--targets", "10.0.0.0/33", "--every", "1h"); code != 1 {
		t.Errorf("bad target accepted: %d %s", code, errOut)
	}
}

func errorsAs(err error, target **client.Error) bool {
	e, ok := err.(*client.Error)
	if ok {
		*target = e
	}
	return ok
}

func TestDiscoveryFS(t *testing.T) {
	testDiscoveryFS(t, startServer(t, filepath.Join(t.TempDir(), "data")), true)
}

// TestDiscoveryFSPostgres runs the same scenario on a PostgreSQL-backed server.
func TestDiscoveryFSPostgres(t *testing.T) {
	dsn := pgtest.FreshDatabase(t)
	testDiscoveryFS(t, startServerDB(t, filepath.Join(t.TempDir(), "data"), dsn), false)
}

func testDiscoveryFS(t *testing.T, in *instance, sqliteFiles bool) {
	for _, tool := range []string{"openssl", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (.ci/run installs it)", tool)
		}
	}
	root := t.TempDir()
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	web := filepath.Join(root, "etc", "web")
	os.MkdirAll(web, 0o755)
	run(web, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "key.pem", "-out", "cert.pem", "-days", "5", "-subj", "/CN=fs.test")
	keyPEM, _ := os.ReadFile(filepath.Join(web, "key.pem"))
	os.MkdirAll(filepath.Join(root, "backup"), 0o755)
	os.MkdirAll(filepath.Join(root, "srv"), 0o755)
	writeFile(t, filepath.Join(root, "backup"), "key-copy.pem", keyPEM) // the same key in a second place
	run(web, "openssl", "pkcs12", "-export", "-in", "cert.pem", "-inkey", "key.pem", "-out", "bundle.p12", "-passout", "pass:")
	sshDir := filepath.Join(root, "home", "bob", ".ssh")
	os.MkdirAll(sshDir, 0o700)
	run(sshDir, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bob@host", "-f", "id_ed25519")
	pub, _ := os.ReadFile(filepath.Join(sshDir, "id_ed25519.pub"))
	writeFile(t, sshDir, "authorized_keys", pub)
	os.Remove(filepath.Join(sshDir, "id_ed25519.pub"))
	writeFile(t, filepath.Join(root, "srv"), "app.env", []byte("SLACK=xoxb-123456789012-abcdefABCDEF123456\n"))

	certPEM, _ := os.ReadFile(filepath.Join(web, "cert.pem"))
	b, _ := pem.Decode(certPEM)
	cert, _ := x509.ParseCertificate(b.Bytes)
	certFP, spki := fpOf(cert.Raw), fpOf(cert.RawSubjectPublicKeyInfo)

	scan := func() {
		out := in.mustCLI("scan", "fs", root, "--ssh", "-q", "--host", "fixture-host")
		if !strings.Contains(out, "reported to the server") {
			t.Fatalf("scan fs did not report:\n%s", out)
		}
	}
	scan()
	inv := in.inventoryAll()
	kinds := map[store.InventoryKind]int{}
	for _, id := range inv {
		kinds[id.Kind]++
	}
	if kinds[store.KindX509] != 1 || kinds[store.KindPrivateKey] != 1 || kinds[store.KindSSHKey] != 1 || kinds[store.KindSecret] != 1 || len(inv) != 4 {
		t.Fatalf("inventory kinds %v (%d identities), want one of each", kinds, len(inv))
	}
	// The certificate (PEM and inside the PKCS#12) and its key (two files, and the PKCS#12).
	var certPaths, keyPaths []string
	for _, l := range in.show(certFP).Locations {
		certPaths = append(certPaths, strings.TrimPrefix(l.Path, root))
		if l.Host != "fixture-host" {
			t.Errorf("location host %q", l.Host)
		}
	}
	key := in.show(spki)
	for _, l := range key.Locations {
		keyPaths = append(keyPaths, strings.TrimPrefix(l.Path, root))
	}
	if !slices.Equal(certPaths, []string{"/etc/web/bundle.p12", "/etc/web/cert.pem"}) ||
		!slices.Equal(keyPaths, []string{"/backup/key-copy.pem", "/etc/web/bundle.p12", "/etc/web/key.pem"}) {
		t.Errorf("cert at %v, key at %v", certPaths, keyPaths)
	}
	if key.Kind != store.KindPrivateKey || key.SPKISHA256 != spki || key.KeyAlgorithm != "ECDSA" {
		t.Errorf("key identity %+v", key)
	}
	// Linked by SPKI: one query returns the certificate and its key.
	if got := keysOf(in.inventoryAll("--spki", spki)); !slices.Equal(got, keysOf(map[string]bool{certFP: true, spki: true})) {
		t.Errorf("--spki = %v", got)
	}
	// Key reuse: the key sits in three places.
	var reuse struct {
		Items []store.KeyReuse `json:"items"`
	}
	if err := in.api.Do(context.Background(), "GET", "/api/v1/inventory/key-reuse", nil, &reuse); err != nil {
		t.Fatal(err)
	}
	if len(reuse.Items) != 1 || reuse.Items[0].SPKISHA256 != spki || reuse.Items[0].KeyLocations != 3 {
		t.Errorf("key reuse = %+v", reuse.Items)
	}
	for _, id := range inv {
		if id.Kind == store.KindSecret && id.RuleID != "slack-token" {
			t.Errorf("secret rule %q", id.RuleID)
		}
		if id.Kind == store.KindSSHKey {
			ssh := in.show(id.SSHFingerprint) // accepted in OpenSSH form too
			var details []string
			for _, l := range ssh.Locations {
				details = append(details, l.Detail)
			}
			slices.Sort(details)
			if !slices.Equal(details, []string{"authorized_keys", "private key (openssh)"}) || ssh.Subject != "bob@host" {
				t.Errorf("ssh key %s at %v", ssh.Subject, details)
			}
		}
	}
	// Nothing secret reached the server: the secret's value is nowhere in the database.
	if sqliteFiles {
		db, _ := os.ReadFile(filepath.Join(in.dir, "sigil.db"))
		wal, _ := os.ReadFile(filepath.Join(in.dir, "sigil.db-wal"))
		if len(db)+len(wal) == 0 || strings.Contains(string(db)+string(wal), "xoxb-123456789012") {
			t.Error("the secret's value is stored (or the database file was not found)")
		}
	}

	// Roles: an auditor reads the inventory but cannot report or set owners.
	var tok struct {
		Token string `json:"token"`
	}
	if err := in.api.Do(context.Background(), "POST", "/api/v1/tokens", map[string]any{"role": "auditor", "name": "aud"}, &tok); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := in.cliToken(tok.Token, "inventory", "list", "-o", "json"); code != 0 || !strings.Contains(out, certFP) {
		t.Errorf("auditor list: exit %d %s", code, errOut)
	}
	if _, errOut, code := in.cliToken(tok.Token, "scan", "fs", root, "-q"); code != 2 || !strings.Contains(errOut, "may not") {
		t.Errorf("auditor report: exit %d %s", code, errOut)
	}
	if _, errOut, code := in.cliToken(tok.Token, "inventory", "set-owner", certFP, "--owner", "x"); code != 2 {
		t.Errorf("auditor set-owner: exit %d %s", code, errOut)
	}

	// Idempotence.
	before := in.inventoryAll()
	time.Sleep(10 * time.Millisecond)
	scan()
	after := in.inventoryAll()
	if !slices.Equal(keysOf(before), keysOf(after)) {
		t.Fatalf("second scan changed the identities")
	}
	for fp, a := range before {
		b := after[fp]
		if !b.LastSeen.After(a.LastSeen) || !b.FirstSeen.Equal(a.FirstSeen) {
			t.Errorf("%s: last seen %v → %v", fp[:8], a.LastSeen, b.LastSeen)
		}
	}
}

// TestDiscoveryInterrupt: Ctrl-C during a scan stops it at once, prints and
// reports what was found, and exits 1.
func TestDiscoveryInterrupt(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	now := time.Now()
	ok := makeCert(t, "before-interrupt.test", nil, false, now.Add(-time.Hour), now.Add(time.Hour))
	targets := []string{serveTLS(t, "127.0.0.1", ok)}
	for range 4 {
		targets = append(targets, serve(t, "127.0.0.1", func(c net.Conn) { defer c.Close(); time.Sleep(30 * time.Second) }))
	}
	cmd := exec.Command(sigilBin, append([]string{"scan", "net", "--timeout", "1m", "--concurrency", "2", "-o", "json"}, targets...)...)
	cmd.Env = append(os.Environ(), "SIGIL_SERVER="+in.srv.APIURL, "SIGIL_TOKEN="+in.token, "SIGIL_ROOT="+filepath.Join(in.dir, "root.pem"))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the TLS endpoint is done; the workers sit in tarpits
	start := time.Now()
	_ = cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if time.Since(start) > 10*time.Second {
		t.Errorf("the scan took %v to stop after Ctrl-C", time.Since(start))
	}
	if ee, isExit := err.(*exec.ExitError); !isExit || ee.ExitCode() != 1 || !strings.Contains(errb.String(), "interrupted") {
		t.Fatalf("exit: %v, stderr %s", err, errb.String())
	}
	var res struct {
		Identities []inventory.Identity `json:"identities"`
		Server     *inventory.Summary   `json:"server"`
	}
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatalf("partial output: %v\n%s", err, out.String())
	}
	if len(res.Identities) != 1 || res.Server == nil || res.Server.NewIdentities != 1 {
		t.Fatalf("partial results: %+v server %+v", res.Identities, res.Server)
	}
	if id := in.show(fpOf(ok.Certificate[0])); id.Subject != "CN=before-interrupt.test" {
		t.Errorf("partial results not in the inventory: %+v", id)
	}
}
