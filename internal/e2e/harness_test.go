// Package e2e runs Sigil as users do: the real server on loopback with a
// temporary data directory, the real `sigil` binary as the CLI, and openssl
// as the relying party.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/client"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/server"
)

var sigilBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sigil-e2e-bin")
	if err != nil {
		panic(err)
	}
	sigilBin = filepath.Join(dir, "sigil")
	out, err := exec.Command("go", "build", "-o", sigilBin, "github.com/sigil-pki/sigil/cmd/sigil").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building sigil: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is a running in-process server.
type instance struct {
	t      *testing.T
	dir    string
	srv    *server.Server
	cancel context.CancelFunc
	done   chan error
	token  string
	api    *client.Client
}

func startServer(t *testing.T, dir string) *instance {
	t.Helper()
	return startServerDB(t, dir, "")
}

// startServerDB starts a server on a given store (see server.Config.DB).
func startServerDB(t *testing.T, dir, db string) *instance {
	t.Helper()
	return startServerConfig(t, server.Config{DataDir: dir, DB: db})
}

// startServerConfig starts a --dev server with cfg, defaulting the
// listeners to free loopback ports and the log to io.Discard (warnings on
// stderr with -v), and waits until its HTTPS listener answers. A fixed
// Listen address that a previous server of the test still holds is retried
// for a few seconds.
func startServerConfig(t *testing.T, cfg server.Config) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Dev = true
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:0"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
	}
	var srv *server.Server
	var err error
	for i := 0; ; i++ {
		srv, err = server.New(ctx, cfg)
		if err == nil || i > 50 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		cancel()
		t.Fatalf("starting server: %v", err)
	}
	dir := cfg.DataDir
	in := &instance{t: t, dir: dir, srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- srv.Run(ctx) }()
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	in.token = strings.TrimSpace(string(tok))
	if in.api, err = client.New(srv.APIURL, in.token, filepath.Join(dir, "root.pem")); err != nil {
		t.Fatal(err)
	}
	// Wait until the HTTPS listener answers.
	for i := 0; ; i++ {
		if err := in.api.Do(ctx, "GET", "/healthz", nil, nil); err == nil {
			break
		} else if i > 100 {
			t.Fatalf("server not healthy: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(in.stop)
	return in
}

func (in *instance) stop() {
	if in.cancel == nil {
		return
	}
	in.cancel()
	select {
	case <-in.done:
	case <-time.After(15 * time.Second):
		in.t.Error("server did not stop")
	}
	in.srv.Close()
	in.cancel = nil
}

// cli runs the sigil binary against the instance and returns stdout, stderr
// and the exit code.
func (in *instance) cli(args ...string) (string, string, int) {
	return in.cliToken(in.token, args...)
}

func (in *instance) cliToken(token string, args ...string) (string, string, int) {
	in.t.Helper()
	cmd := exec.Command(sigilBin, args...)
	cmd.Env = append(os.Environ(), "SIGIL_SERVER="+in.srv.APIURL, "SIGIL_TOKEN="+token, "SIGIL_ROOT="+filepath.Join(in.dir, "root.pem"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		in.t.Fatalf("running sigil: %v", err)
	}
	return out.String(), errb.String(), code
}

func (in *instance) mustCLI(args ...string) string {
	in.t.Helper()
	out, errOut, code := in.cli(args...)
	if code != 0 {
		in.t.Fatalf("sigil %s: exit %d: %s%s", strings.Join(args, " "), code, errOut, out)
	}
	return out
}

const testProfiles = `profiles:
  - name: web
    key_types: [ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, ed25519]
    default_ttl: 720h
    max_ttl: 2160h
    dns: ["*.prod.internal", "*.test", "localhost"]
    ips: ["127.0.0.0/8", "10.0.0.0/8"]
    uris: ["spiffe://prod.internal/*"]
    ext_key_usage: [server_auth, client_auth]
    rule: 'size(request.dns) <= 10'
  - name: owned
    key_types: [ecdsa-p256]
    default_ttl: 24h
    max_ttl: 48h
    dns: ["*.test"]
    require_owner: true
`

func (in *instance) applyProfiles() {
	in.t.Helper()
	f := filepath.Join(in.t.TempDir(), "profiles.yaml")
	if err := os.WriteFile(f, []byte(testProfiles), 0o644); err != nil {
		in.t.Fatal(err)
	}
	in.mustCLI("profile", "apply", "-f", f)
}

// newCSR makes a key of keyType and a CSR for names.
func newCSR(t testing.TB, keyType string, names ...string) []byte {
	t.Helper()
	key, err := keys.GenerateKey(keyType)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: names[0]}, DNSNames: names}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// openssl runs the openssl binary; the tests need the real one.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required (apt-get install openssl; .ci/run installs it)")
	}
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
