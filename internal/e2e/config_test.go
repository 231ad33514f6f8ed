package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServerConfigFile: `sigil server --config FILE` takes its flags from a
// YAML file; a flag on the command line wins over the file; an unknown key
// is a one-line error.
func TestServerConfigFile(t *testing.T) {
	dir := t.TempDir()
	apiAddr, fileHTTP, flagHTTP := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := writeFile(t, dir, "sigil.yaml", []byte(`# sigil server configuration
dev: true
data: `+filepath.Join(dir, "data")+`
listen: `+apiAddr+`
http-listen: `+fileHTTP+`
tls-name: [sigil.test, 10.1.2.3]
background-interval: 5s
`))
	cmd := exec.Command(sigilBin, "server", "--config", cfg, "--http-listen", flagHTTP)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if !testing.Verbose() {
		cmd.Stdout, cmd.Stderr = nil, nil
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The command-line --http-listen wins over the file's.
	for {
		resp, err := http.Get("http://" + flagHTTP + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("server from config file not healthy on the flag's address: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, err := http.Get("http://" + fileHTTP + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("server also listens on the config file's http-listen, which the flag overrode")
	}
	// listen and tls-name came from the file.
	pool := x509.NewCertPool()
	root, _ := os.ReadFile(filepath.Join(dir, "data", "root.pem"))
	pool.AppendCertsFromPEM(root)
	conn, err := tls.Dial("tcp", apiAddr, &tls.Config{RootCAs: pool, ServerName: "sigil.test"})
	if err != nil {
		t.Fatalf("TLS to the file's listen address as sigil.test: %v", err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if !slices.Contains(leaf.DNSNames, "sigil.test") || !slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(10, 1, 2, 3)) }) {
		t.Fatalf("server certificate names %v %v lack the file's tls-name entries", leaf.DNSNames, leaf.IPAddresses)
	}

	bad := writeFile(t, dir, "bad.yaml", []byte("listen: 127.0.0.1:0\nlisten_port: 8443\n"))
	out, err := exec.Command(sigilBin, "server", "--config", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), `unknown key "listen_port"`) || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("unknown config key: %v %q", err, out)
	}
}
