package discovery

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/store"
)

func run(t testing.TB, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (.ci/run installs it): %v", tool, err)
		}
	}
}

func write(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func certFP(t testing.TB, pemFile string) (fp, spki string) {
	t.Helper()
	b, _ := pem.Decode(read(t, pemFile))
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return inventory.SHA256Hex(c.Raw), inventory.SHA256Hex(c.RawSubjectPublicKeyInfo)
}

func sshFP(t testing.TB, pubFile string) string {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey(read(t, pubFile))
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(pub.Marshal())
	return hex.EncodeToString(s[:])
}

// fsFixture builds a tree of real files made by openssl and ssh-keygen.
type fsFixture struct {
	root                string
	certFP, certSPKI    string // web/cert.pem, whose key is web/key.pem and copied to backup/key.pem
	p12Leaf, p12PwLeaf  string
	edFP, rsaFP, hostFP string
	secretFP            string
	encPKCS8            string // fingerprint of the encrypted blob
	ecSPKI              string
}

func buildFSFixture(t testing.TB) *fsFixture {
	need(t, "openssl", "ssh-keygen")
	root := t.TempDir()
	f := &fsFixture{root: root}
	web := filepath.Join(root, "srv", "web")
	os.MkdirAll(web, 0o755)
	run(t, web, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
		"-days", "30", "-subj", "/CN=web.fixture.test", "-addext", "subjectAltName=DNS:web.fixture.test")
	os.Chmod(filepath.Join(web, "key.pem"), 0o600)
	f.certFP, f.certSPKI = certFP(t, filepath.Join(web, "cert.pem"))
	// The same key copied elsewhere: key reuse.
	write(t, filepath.Join(root, "backup", "key.pem"), read(t, filepath.Join(web, "key.pem")), 0o644)
	// DER copy of the certificate.
	run(t, web, "openssl", "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der")

	// PKCS#12 with an empty password and with a password (OpenSSL 3 defaults: AES-256, PBKDF2).
	p12 := filepath.Join(root, "keystores")
	os.MkdirAll(p12, 0o755)
	run(t, p12, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "k.pem", "-out", "c.pem", "-days", "10", "-subj", "/CN=p12.fixture.test")
	run(t, p12, "openssl", "pkcs12", "-export", "-in", "c.pem", "-inkey", "k.pem", "-out", "empty.p12", "-passout", "pass:")
	f.p12Leaf, _ = certFP(t, filepath.Join(p12, "c.pem"))
	run(t, p12, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k2.pem", "-out", "c2.pem",
		"-days", "10", "-subj", "/CN=p12pw.fixture.test")
	run(t, p12, "openssl", "pkcs12", "-export", "-in", "c2.pem", "-inkey", "k2.pem", "-out", "pw.p12", "-passout", "pass:s3cret")
	f.p12PwLeaf, _ = certFP(t, filepath.Join(p12, "c2.pem"))
	// Keep only the keystores in that directory.
	for _, n := range []string{"k.pem", "c.pem", "k2.pem", "c2.pem"} {
		os.Remove(filepath.Join(p12, n))
	}

	// An encrypted PKCS#8 key (public key not readable) and a SEC1 EC key.
	keys := filepath.Join(root, "keys")
	os.MkdirAll(keys, 0o755)
	run(t, keys, "openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-aes256",
		"-pass", "pass:hunter2", "-out", "enc.pem")
	b, _ := pem.Decode(read(t, filepath.Join(keys, "enc.pem")))
	f.encPKCS8 = inventory.SHA256Hex(b.Bytes)
	run(t, keys, "openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec.pem")
	run(t, keys, "openssl", "ec", "-in", "ec.pem", "-pubout", "-outform", "DER", "-out", "ec.pub.der")
	f.ecSPKI = inventory.SHA256Hex(read(t, filepath.Join(keys, "ec.pub.der")))
	os.Remove(filepath.Join(keys, "ec.pub.der"))

	// SSH: an unencrypted ed25519 key, an encrypted RSA key, authorized_keys, known_hosts.
	sshDir := filepath.Join(root, "home", "alice", ".ssh")
	os.MkdirAll(sshDir, 0o700)
	run(t, sshDir, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", "id_ed25519")
	run(t, sshDir, "ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "passphrase", "-C", "alice@old", "-f", "id_rsa")
	f.edFP, f.rsaFP = sshFP(t, filepath.Join(sshDir, "id_ed25519.pub")), sshFP(t, filepath.Join(sshDir, "id_rsa.pub"))
	auth := append(read(t, filepath.Join(sshDir, "id_ed25519.pub")), []byte("# comment\n")...)
	auth = append(auth, []byte(`from="10.0.0.0/8",no-pty `)...)
	auth = append(auth, read(t, filepath.Join(sshDir, "id_rsa.pub"))...)
	write(t, filepath.Join(sshDir, "authorized_keys"), auth, 0o600)
	hostDir := t.TempDir()
	run(t, hostDir, "ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", "host")
	f.hostFP = sshFP(t, filepath.Join(hostDir, "host.pub"))
	hostPub := strings.Fields(string(read(t, filepath.Join(hostDir, "host.pub"))))
	write(t, filepath.Join(sshDir, "known_hosts"), []byte("git.test,10.1.1.1 "+hostPub[0]+" "+hostPub[1]+"\n"), 0o644)

	// A fake secret in a config file (the AWS documentation's example key).
	write(t, filepath.Join(root, "srv", "app", "config.env"),
		[]byte("REGION=eu-west-1\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\npassword=not-a-rule\n"), 0o640)
	f.secretFP = inventory.SHA256Hex([]byte("AKIAIOSFODNN7EXAMPLE"))

	// Hostile and special files.
	write(t, filepath.Join(root, "junk", "binary.bin"), append([]byte{0x30, 0x82, 0xff, 0xff, 0}, make([]byte, 5000)...), 0o644)
	write(t, filepath.Join(root, "junk", "broken.pem"), []byte("-----BEGIN CERTIFICATE-----\nnot base64 !!!\n-----END CERTIFICATE-----\n"), 0o644)
	write(t, filepath.Join(root, "junk", "badcert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}), 0o644)
	write(t, filepath.Join(root, "junk", "huge.pem"), append(read(t, filepath.Join(web, "cert.pem")), make([]byte, 5<<20)...), 0o644)
	if err := syscall.Mkfifo(filepath.Join(root, "junk", "fifo"), 0o644); err != nil {
		t.Logf("mkfifo: %v", err)
	}
	os.Symlink(root, filepath.Join(root, "junk", "loop")) // a directory loop
	os.Symlink(filepath.Join(web, "cert.pem"), filepath.Join(root, "junk", "link.pem"))
	return f
}

type fsResult struct {
	rep  *inventory.Report
	ids  map[string]inventory.Identity
	locs map[string][]inventory.Location
}

func scanFixture(t testing.TB, f *fsFixture, opt FSOptions) fsResult {
	t.Helper()
	col := inventory.NewCollector()
	if err := ScanFS(context.Background(), []string{f.root}, opt, col); err != nil {
		t.Fatalf("ScanFS: %v", err)
	}
	r := fsResult{rep: col.Report("fs", "h"), ids: map[string]inventory.Identity{}, locs: map[string][]inventory.Location{}}
	for _, id := range r.rep.Identities {
		r.ids[id.Fingerprint] = id
	}
	for _, l := range r.rep.Locations {
		r.locs[l.Fingerprint] = append(r.locs[l.Fingerprint], l)
	}
	return r
}

func (r fsResult) paths(fp string) []string {
	var out []string
	for _, l := range r.locs[fp] {
		out = append(out, l.Path)
	}
	slices.Sort(out)
	return out
}

func TestScanFS(t *testing.T) {
	f := buildFSFixture(t)
	r := scanFixture(t, f, FSOptions{ParseOptions: ParseOptions{SSH: true, Secrets: true, Passwords: []string{"s3cret"}}, Host: "h"})
	p := func(rel ...string) string { return filepath.Join(append([]string{f.root}, rel...)...) }

	want := map[string]struct {
		kind  store.InventoryKind
		paths []string
	}{
		f.certFP:    {store.KindX509, []string{p("srv", "web", "cert.der"), p("srv", "web", "cert.pem")}},
		f.certSPKI:  {store.KindPrivateKey, []string{p("backup", "key.pem"), p("srv", "web", "key.pem")}},
		f.p12Leaf:   {store.KindX509, []string{p("keystores", "empty.p12")}},
		f.p12PwLeaf: {store.KindX509, []string{p("keystores", "pw.p12")}},
		f.encPKCS8:  {store.KindPrivateKey, []string{p("keys", "enc.pem")}},
		f.ecSPKI:    {store.KindPrivateKey, []string{p("keys", "ec.pem")}},
		f.edFP: {store.KindSSHKey, []string{p("home", "alice", ".ssh", "authorized_keys"), p("home", "alice", ".ssh", "id_ed25519"),
			p("home", "alice", ".ssh", "id_ed25519.pub")}},
		f.rsaFP: {store.KindSSHKey, []string{p("home", "alice", ".ssh", "authorized_keys"), p("home", "alice", ".ssh", "id_rsa"),
			p("home", "alice", ".ssh", "id_rsa.pub")}},
		f.hostFP:   {store.KindSSHKey, []string{p("home", "alice", ".ssh", "known_hosts")}},
		f.secretFP: {store.KindSecret, []string{p("srv", "app", "config.env")}},
	}
	for fp, w := range want {
		id, ok := r.ids[fp]
		if !ok {
			t.Errorf("missing %s identity at %v", w.kind, w.paths)
			continue
		}
		if id.Kind != w.kind {
			t.Errorf("%v: kind %s, want %s", w.paths, id.Kind, w.kind)
		}
		if got := r.paths(fp); !slices.Equal(got, w.paths) {
			t.Errorf("%s %s: paths %v, want %v", w.kind, fp[:8], got, w.paths)
		}
	}
	// The two PKCS#12 files also hold their private keys: 2 more identities.
	if len(r.ids) != len(want)+2 {
		for fp, id := range r.ids {
			if _, ok := want[fp]; !ok {
				t.Logf("extra: %s %s %v", id.Kind, id.Subject, r.paths(fp))
			}
		}
		t.Errorf("got %d identities, want %d", len(r.ids), len(want)+2)
	}
	// The private key is linked to its certificate by SPKI.
	if r.ids[f.certFP].SPKISHA256 != r.ids[f.certSPKI].SPKISHA256 || r.ids[f.certSPKI].KeyAlgorithm != "RSA" || r.ids[f.certSPKI].KeySize != 2048 {
		t.Errorf("cert/key link: cert %+v key %+v", r.ids[f.certFP].SPKISHA256, r.ids[f.certSPKI])
	}
	// The SSH key's SPKI is set (links an SSH key to an X.509 use of the same key).
	if r.ids[f.edFP].SPKISHA256 == "" || r.ids[f.edFP].KeyAlgorithm != "Ed25519" || r.ids[f.edFP].Subject == "" {
		t.Errorf("ssh key = %+v", r.ids[f.edFP])
	}
	// File mode and owner are recorded; private key locations say so.
	for _, l := range r.locs[f.certSPKI] {
		if !strings.HasPrefix(l.Detail, store.DetailPrivateKey) || l.FileOwner == "" || l.Host != "h" {
			t.Errorf("key location = %+v", l)
		}
		if strings.HasSuffix(l.Path, "srv/web/key.pem") && l.FileMode != 0o600 {
			t.Errorf("key mode = %o, want 600", l.FileMode)
		}
	}
	// Nothing secret leaves the parser: no DER except on certificates.
	for _, id := range r.rep.Identities {
		if id.Kind != store.KindX509 && id.DER != nil {
			t.Errorf("%s identity carries bytes", id.Kind)
		}
		if id.Kind == store.KindSecret && (id.Subject != "" || id.RuleID != "aws-access-key-id") {
			t.Errorf("secret identity = %+v", id)
		}
	}
	// Errors: the malformed files, no crash; the huge file skipped; no loop.
	var errPaths []string
	for _, e := range r.rep.Errors {
		errPaths = append(errPaths, filepath.Base(e.Target))
	}
	for _, w := range []string{"broken.pem", "badcert.pem"} {
		if !slices.Contains(errPaths, w) {
			t.Errorf("no scan error for %s: %v", w, r.rep.Errors)
		}
	}
	for _, l := range r.rep.Locations {
		if strings.Contains(l.Path, "junk") {
			t.Errorf("found something in junk: %+v", l)
		}
	}
}

func TestScanFSPasswords(t *testing.T) {
	f := buildFSFixture(t)
	r := scanFixture(t, f, FSOptions{ParseOptions: ParseOptions{}, Host: "h"})
	if _, ok := r.ids[f.p12PwLeaf]; ok {
		t.Error("password-protected PKCS#12 read without its password")
	}
	if _, ok := r.ids[f.edFP]; ok {
		t.Error("SSH keys recorded without --ssh")
	}
	if _, ok := r.ids[f.secretFP]; ok {
		t.Error("secret recorded with secrets off")
	}
	found := false
	for _, e := range r.rep.Errors {
		if filepath.Base(e.Target) == "pw.p12" && strings.Contains(e.Error, "password") {
			found = true
		}
	}
	if !found {
		t.Errorf("no password error for pw.p12: %v", r.rep.Errors)
	}
}

func TestParseFileHostile(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":          nil,
		"nul":            {0},
		"seq":            {0x30},
		"begin only":     []byte("-----BEGIN CERTIFICATE-----\n"),
		"nested":         []byte("-----BEGIN -----BEGIN -----END -----END"),
		"huge length":    {0x30, 0x84, 0xff, 0xff, 0xff, 0xff},
		"ssh junk":       []byte("ssh-rsa AAAA!!!! x\nssh-ed25519\n"),
		"openssh broken": []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
		"jks":            {0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2},
	} {
		found, _ := ParseFile("authorized_keys", data, ParseOptions{SSH: true, Secrets: true})
		if len(found) != 0 {
			t.Errorf("%s: found %v", name, found)
		}
	}
}

// TestScanJKS reads a Java keystore made by the real keytool: a key entry
// (its certificate, and the key by its public half) and a trusted entry.
func TestScanJKS(t *testing.T) {
	need(t, "keytool", "openssl")
	dir := t.TempDir()
	run(t, dir, "keytool", "-genkeypair", "-keystore", "app.jks", "-storetype", "JKS", "-storepass", "changeit",
		"-keypass", "changeit", "-alias", "app", "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=jks.test", "-validity", "10")
	run(t, dir, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", "ca.key", "-out", "ca.pem", "-days", "5", "-subj", "/CN=JKS Trusted CA")
	run(t, dir, "keytool", "-importcert", "-noprompt", "-keystore", "app.jks", "-storepass", "changeit", "-alias", "ca", "-file", "ca.pem")
	run(t, dir, "keytool", "-exportcert", "-keystore", "app.jks", "-storepass", "changeit", "-alias", "app", "-rfc", "-file", "app.pem")
	os.Remove(filepath.Join(dir, "ca.key"))
	appFP, appSPKI := certFP(t, filepath.Join(dir, "app.pem"))
	caFP, _ := certFP(t, filepath.Join(dir, "ca.pem"))
	found, errs := ParseFile("app.jks", read(t, filepath.Join(dir, "app.jks")), ParseOptions{})
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	got := map[string]store.InventoryKind{}
	for _, f := range found {
		got[f.Identity.Fingerprint] = f.Identity.Kind
	}
	want := map[string]store.InventoryKind{appFP: store.KindX509, caFP: store.KindX509, appSPKI: store.KindPrivateKey}
	if len(got) != len(want) {
		t.Fatalf("found %v, want %v", got, want)
	}
	for fp, k := range want {
		if got[fp] != k {
			t.Errorf("%s: got %q, want %q", fp[:8], got[fp], k)
		}
	}
}
