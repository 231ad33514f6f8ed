package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// acmeServer is the real sigil binary serving ACME, with its validation
// network pointed at loopback.
type acmeServer struct {
	t         *testing.T
	dir       string
	api, http string
	token     string
	httpPort  int // where the server validates http-01
}

func loopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startACMEBinary(t *testing.T) *acmeServer {
	t.Helper()
	s := &acmeServer{t: t, dir: t.TempDir(), httpPort: loopbackPort(t)}
	apiPort, pubPort := loopbackPort(t), loopbackPort(t)
	s.api = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	s.http = "http://127.0.0.1:" + strconv.Itoa(pubPort)
	cmd := exec.Command(sigilBin, "server", "--dev", "--data", s.dir,
		"--listen", "127.0.0.1:"+strconv.Itoa(apiPort), "--http-listen", "127.0.0.1:"+strconv.Itoa(pubPort),
		"--acme-resolve", "app.test=127.0.0.1", "--acme-resolve", "www.app.test=127.0.0.1",
		"--acme-http-port", strconv.Itoa(s.httpPort), "--acme-tls-port", "1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("server output:\n%s", logs.String())
		}
	})
	for i := 0; ; i++ {
		tok, err := os.ReadFile(filepath.Join(s.dir, "admin.token"))
		if err == nil {
			if _, _, code := s.cli("acme", "list"); code == 0 {
				s.token = strings.TrimSpace(string(tok))
				break
			}
		}
		if i > 300 {
			t.Fatalf("server did not start:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func (s *acmeServer) cli(args ...string) (string, string, int) {
	s.t.Helper()
	tok, _ := os.ReadFile(filepath.Join(s.dir, "admin.token"))
	cmd := exec.Command(sigilBin, args...)
	cmd.Env = append(os.Environ(), "SIGIL_SERVER="+s.api, "SIGIL_TOKEN="+strings.TrimSpace(string(tok)), "SIGIL_ROOT="+filepath.Join(s.dir, "root.pem"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("running sigil: %v", err)
	}
	return out.String(), errb.String(), code
}

func (s *acmeServer) mustCLI(args ...string) string {
	s.t.Helper()
	out, errOut, code := s.cli(args...)
	if code != 0 {
		s.t.Fatalf("sigil %s: exit %d: %s%s", strings.Join(args, " "), code, errOut, out)
	}
	return out
}

func certbotBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("certbot")
	if err != nil {
		t.Fatal("certbot is required (apt-get install certbot; .ci/run installs it)")
	}
	return p
}

// certbot runs certbot with its state in dir, trusting Sigil's root.
func (s *acmeServer) certbot(dir string, args ...string) (string, error) {
	s.t.Helper()
	base := []string{"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"), "--logs-dir", filepath.Join(dir, "logs"),
		"--non-interactive", "--server", s.api + "/acme/web/directory"}
	cmd := exec.Command(certbotBin(s.t), append(args[:1:1], append(base, args[1:]...)...)...)
	cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+filepath.Join(s.dir, "root.pem"))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	s.t.Logf("certbot %s: %v", args[0], time.Since(start).Round(time.Millisecond))
	return string(out), err
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestACMECertbot: an admin enables ACME on a profile with EAB; certbot in
// standalone mode obtains, renews and revokes; the certificates chain to
// Sigil's root, are in the inventory with the EAB key's owner, and the
// revocation shows in OCSP.
func TestACMECertbot(t *testing.T) {
	start := time.Now()
	s := startACMEBinary(t)
	t.Logf("server started in %v", time.Since(start).Round(time.Millisecond))
	prof := filepath.Join(t.TempDir(), "profiles.yaml")
	if err := os.WriteFile(prof, []byte(testProfiles), 0o644); err != nil {
		t.Fatal(err)
	}
	s.mustCLI("profile", "apply", "-f", prof)
	if out := s.mustCLI("acme", "enable", "--profile", "web", "--eab-required"); !strings.Contains(out, "/acme/web/directory") {
		t.Fatalf("acme enable: %s", out)
	}
	var eab struct {
		KID     string `json:"kid"`
		HMACKey string `json:"hmac_key"`
	}
	if err := json.Unmarshal([]byte(s.mustCLI("acme", "eab", "create", "--profile", "web", "--owner", "team-a", "-o", "json")), &eab); err != nil || eab.KID == "" || eab.HMACKey == "" {
		t.Fatalf("eab create: %+v %v", eab, err)
	}
	if out := s.mustCLI("acme", "list"); !strings.Contains(out, "web") || !strings.Contains(out, "true") {
		t.Fatalf("acme list: %s", out)
	}

	cb := t.TempDir()
	standalone := []string{"--standalone", "--preferred-challenges", "http", "--http-01-port", strconv.Itoa(s.httpPort), "--http-01-address", "127.0.0.1"}
	out, err := s.certbot(cb, append([]string{"certonly", "--agree-tos", "--register-unsafely-without-email",
		"--eab-kid", eab.KID, "--eab-hmac-key", eab.HMACKey, "-d", "app.test", "-d", "www.app.test", "--key-type", "ecdsa"}, standalone...)...)
	if err != nil {
		t.Fatalf("certbot certonly: %v\n%s", err, out)
	}
	live := filepath.Join(cb, "config", "live", "app.test")
	root := filepath.Join(s.dir, "root.pem")
	if o, err := openssl(t, "verify", "-CAfile", root, "-untrusted", filepath.Join(live, "chain.pem"), filepath.Join(live, "cert.pem")); err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, o)
	}
	first := readCert(t, filepath.Join(live, "cert.pem"))
	var rec struct {
		Owner   string `json:"owner"`
		Status  string `json:"status"`
		Profile string `json:"profile"`
	}
	if err := json.Unmarshal([]byte(s.mustCLI("cert", "show", first.SerialNumber.Text(16), "-o", "json")), &rec); err != nil || rec.Owner != "team-a" || rec.Status != "issued" || rec.Profile != "web" {
		t.Fatalf("inventory record: %+v %v", rec, err)
	}

	if out := s.mustCLI("acme", "renew-early", first.SerialNumber.Text(16)); !strings.Contains(out, "1 certificate(s) marked") {
		t.Fatalf("acme renew-early: %s", out)
	}

	out, err = s.certbot(cb, append([]string{"renew", "--force-renewal", "--no-random-sleep-on-renew"}, standalone...)...)
	if err != nil {
		t.Fatalf("certbot renew: %v\n%s", err, out)
	}
	if lg, err := os.ReadFile(filepath.Join(cb, "logs", "letsencrypt.log")); err == nil && os.Getenv("ACME_DEBUG") != "" {
		t.Logf("%s", lg)
	}
	second := readCert(t, filepath.Join(live, "cert.pem"))
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("renewal returned the same certificate")
	}

	out, err = s.certbot(cb, "revoke", "--cert-path", filepath.Join(live, "cert.pem"), "--reason", "keycompromise", "--no-delete-after-revoke")
	if err != nil {
		t.Fatalf("certbot revoke: %v\n%s", err, out)
	}
	o, err := openssl(t, "ocsp", "-issuer", filepath.Join(live, "chain.pem"), "-cert", filepath.Join(live, "cert.pem"), "-url", second.OCSPServer[0], "-CAfile", root, "-no_nonce")
	if err != nil || !strings.Contains(o, "revoked") {
		t.Fatalf("OCSP after certbot revoke: %v\n%s", err, o)
	}
	if out := s.mustCLI("acme", "eab", "list"); !strings.Contains(out, "bound") {
		t.Fatalf("eab list after use: %s", out)
	}

	// The directory of a disabled profile is gone (replicas cache the
	// settings for up to 2 s).
	s.mustCLI("acme", "disable", "--profile", "web")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsTrusting(t, root)}}
	for i := 0; ; i++ {
		resp, err := hc.Get(s.api + "/acme/web/directory")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			break
		}
		if i > 50 {
			t.Fatalf("directory of a disabled profile: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tlsTrusting(t *testing.T, rootPEM string) *tls.Config {
	t.Helper()
	b, err := os.ReadFile(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return &tls.Config{RootCAs: pool}
}
