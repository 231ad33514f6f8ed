package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/agent"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/server"
	"github.com/sigil-pki/sigil/internal/store"
)

// fleetProfile issues one-minute certificates (the policy minimum), so
// renewals happen within the test.
const fleetProfile = `profiles:
  - name: fleet
    key_types: [ecdsa-p256, ed25519]
    default_ttl: 1m
    max_ttl: 1m
    dns: ["*.prod.internal"]
    ext_key_usage: [server_auth, client_auth]
`

// startServerAt is startServerDB on a fixed API address, so a restarted
// server is where the agent expects it.
func startServerAt(t *testing.T, dir, listen string) *instance {
	t.Helper()
	return startServerConfig(t, server.Config{DataDir: dir, Listen: listen})
}

func (in *instance) applyFleetProfile() {
	in.t.Helper()
	f := writeFile(in.t, in.t.TempDir(), "fleet.yaml", []byte(fleetProfile))
	in.mustCLI("profile", "apply", "-f", f)
}

func (in *instance) joinToken(names ...string) string {
	in.t.Helper()
	args := []string{"join-token", "create", "--profile", "fleet", "--ttl", "15m"}
	for _, n := range names {
		args = append(args, "--name", n)
	}
	return strings.TrimSpace(in.mustCLI(args...))
}

// rootFingerprint is what openssl prints for root.pem (colons, upper case).
func (in *instance) rootFingerprint() string {
	in.t.Helper()
	return strings.TrimSpace(mustOpenSSL(in.t, "x509", "-noout", "-fingerprint", "-sha256", "-in", filepath.Join(in.dir, "root.pem")))
}

func readAgentState(t *testing.T, dir string) *agent.State {
	t.Helper()
	st, err := agent.ReadState(dir)
	if err != nil {
		return nil
	}
	return st
}

// waitState polls the agent's state file until ok holds.
func waitState(t *testing.T, dir, name string, timeout time.Duration, what string, ok func(*agent.CertState) bool) *agent.CertState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *agent.CertState
	for time.Now().Before(deadline) {
		if st := readAgentState(t, dir); st != nil {
			if cs := st.Certificates[name]; cs != nil {
				last = cs
				if ok(cs) {
					return cs
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last state %+v", what, last)
	return nil
}

// agentProc is a running `sigil agent`.
type agentProc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
	code   int
}

func startAgent(t *testing.T, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{cmd: exec.Command(sigilBin, append([]string{"agent"}, args...)...), stderr: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "SIGIL_TOKEN=", "SIGIL_ROOT=")
	p.cmd.Stderr = &syncWriter{w: p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *agentProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *agentProc) log() string {
	return p.cmd.Stderr.(*syncWriter).String()
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// servingWatch runs a TLS listener that loads the agent's files on every
// handshake (as a server reloaded by the hook would) and a client that
// connects to it continuously, verifying against the root: any handshake
// failure or torn file read is counted.
type servingWatch struct {
	handshakes, failures, torn atomic.Int64
	firstErr                   atomic.Value
	serials                    sync.Map
}

func watchServing(t *testing.T, ctx context.Context, rootPEM []byte, certFile, keyFile, chainFile, name string) *servingWatch {
	t.Helper()
	w := &servingWatch{}
	var last atomic.Pointer[tls.Certificate]
	load := func() (*tls.Certificate, error) {
		cb, err1 := os.ReadFile(certFile)
		kb, err2 := os.ReadFile(keyFile)
		chb, err3 := os.ReadFile(chainFile)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("reading files: %v %v %v", err1, err2, err3)
		}
		if b, _ := pem.Decode(cb); b == nil {
			w.torn.Add(1)
		}
		if b, _ := pem.Decode(kb); b == nil {
			w.torn.Add(1)
		}
		c, err := tls.X509KeyPair(append(cb, chb...), kb)
		if err != nil {
			// Between the key's rename and the certificate's the pair
			// differs for a moment; a server reloads after the hook.
			return nil, err
		}
		return &c, nil
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c, err := load(); err == nil {
			last.Store(c)
		}
		return last.Load(), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	go func() {
		defer ln.Close()
		for ctx.Err() == nil {
			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name})
			w.handshakes.Add(1)
			if err != nil {
				w.failures.Add(1)
				w.firstErr.CompareAndSwap(nil, err.Error())
			} else {
				w.serials.Store(conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16), true)
				conn.Close()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return w
}

func auditHas(t *testing.T, in *instance, action, result, contains string) bool {
	t.Helper()
	evs, err := in.srv.Store().ListAudit(t.Context(), store.AuditFilter{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Result == result && strings.Contains(e.Detail+e.Object+e.Actor, contains) {
			return true
		}
	}
	return false
}

func issuedFor(t *testing.T, in *instance, machine string) []*identity.Certificate {
	t.Helper()
	cs, err := in.srv.Store().ListCertificates(t.Context(), store.CertFilter{Profile: "fleet"})
	if err != nil {
		t.Fatal(err)
	}
	var out []*identity.Certificate
	for _, c := range cs {
		if c.Labels[ra.AgentLabel] == machine && c.Status != identity.StatusPlanned {
			out = append(out, c)
		}
	}
	return out
}

// TestAgentLifecycle runs a real agent process against a real server:
// enrolment, two renewals with the hook and a TLS listener serving the
// files throughout, a revocation answered by a re-key, an agent restart
// without a token, a server outage across the renewal point, and finally
// disabling the machine, which stops the agent.
func TestAgentLifecycle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addrLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := addrLn.Addr().String()
	addrLn.Close()
	in := startServerAt(t, dir, addr)
	in.applyFleetProfile()
	const name = "web-01.prod.internal"
	token := in.joinToken(name)
	if !strings.HasPrefix(token, "sgj_") {
		t.Fatalf("join token %q", token)
	}

	m := t.TempDir()
	state := filepath.Join(m, "state")
	certF, keyF, chainF, hookLog := filepath.Join(m, "web.crt"), filepath.Join(m, "web.key"), filepath.Join(m, "chain.pem"), filepath.Join(m, "hook.log")
	common := []string{"--server", in.srv.APIURL, "--name", name, "--cert", certF, "--key", keyF, "--chain", chainF,
		"--on-change", `echo "$SIGIL_SERIAL" >> ` + hookLog, "--state", state,
		"--check-interval", "1s", "--renew-at", "0.3", "--jitter", "0.05", "--log-level", "debug"}
	p := startAgent(t, append([]string{"--root-fingerprint", in.rootFingerprint(), "--join-token", token}, common...)...)

	first := waitState(t, state, name, 20*time.Second, "enrolment", func(cs *agent.CertState) bool { return cs.Serial != "" && !cs.HookPending })
	if fi, err := os.Stat(keyF); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(state, "certs", name+".pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state identity file: %v %v", fi, err)
	}
	rootPEM, _ := os.ReadFile(filepath.Join(dir, "root.pem"))
	ctx, stopWatch := context.WithCancel(t.Context())
	defer stopWatch()
	watch := watchServing(t, ctx, rootPEM, certF, keyF, chainF, name)

	// The server recorded the machine.
	var mach store.Machine
	if err := json.Unmarshal([]byte(in.mustCLI("agent", "show", name, "-o", "json")), &mach); err != nil {
		t.Fatal(err)
	}
	if mach.State != store.MachineActive || mach.Attestation != "join_token" || string(mach.CurrentSerial) != first.Serial {
		t.Fatalf("machine %+v, agent holds %s", mach, first.Serial)
	}

	// Two renewals, each with a new key, each running the hook.
	renewed := waitState(t, state, name, 60*time.Second, "two renewals", func(cs *agent.CertState) bool { return cs.Renewals >= 2 && !cs.HookPending })
	hook, _ := os.ReadFile(hookLog)
	if lines := strings.Fields(string(hook)); len(lines) < 3 || lines[len(lines)-1] != renewed.Serial {
		t.Fatalf("hook ran for %v, want enrolment + 2 renewals ending with %s", lines, renewed.Serial)
	}
	certs := issuedFor(t, in, name)
	spkis := map[string]bool{}
	for _, c := range certs {
		spkis[c.SPKIFingerprint] = true
	}
	if len(certs) < 3 || len(spkis) != len(certs) {
		t.Fatalf("%d certificates with %d distinct keys: renewals must rotate the key", len(certs), len(spkis))
	}
	if !auditHas(t, in, "agent.renew", "success", name) {
		t.Fatal("no agent.renew audit event")
	}

	// Revoke the current certificate: the agent re-keys within the check interval.
	cur := renewed.Serial
	in.mustCLI("cert", "revoke", cur)
	rekeyed := waitState(t, state, name, 15*time.Second, "re-key after revocation", func(cs *agent.CertState) bool { return cs.Rekeys >= 1 && cs.Serial != cur })
	if !auditHas(t, in, "agent.renew", "success", `"rekey_after_revocation":true`) {
		t.Fatal("the re-key was not audited as such")
	}

	// Restart the agent without a token or fingerprint: it resumes from its state.
	p.kill()
	p = startAgent(t, common...)

	// Stop the server across the next renewal: the agent keeps its certificate,
	// says how long it has left, and renews once the server is back.
	in.stop()
	down := waitState(t, state, name, 40*time.Second, "a failed renewal during the outage", func(cs *agent.CertState) bool {
		return cs.LastError != "" && cs.Serial == rekeyed.Serial
	})
	if !strings.Contains(down.LastError, "expires in") {
		t.Errorf("outage error does not say when the certificate expires: %q", down.LastError)
	}
	if b, _ := os.ReadFile(certF); !bytes.Contains(b, []byte("CERTIFICATE")) {
		t.Fatal("the certificate file was lost during the outage")
	}
	in = startServerAt(t, dir, addr)
	back := waitState(t, state, name, 30*time.Second, "renewal after the outage", func(cs *agent.CertState) bool {
		return cs.Serial != rekeyed.Serial && cs.LastError == ""
	})
	if !time.Now().Before(back.NotAfter) {
		t.Fatal("renewed certificate already expired")
	}

	// The listener served a valid certificate all along (the files were
	// never torn; the key/cert pair is re-read on each handshake).
	time.Sleep(500 * time.Millisecond)
	stopWatch()
	if n, f := watch.handshakes.Load(), watch.failures.Load(); n < 50 || f > 0 {
		t.Fatalf("TLS listener on the agent's files: %d handshakes, %d failed (first: %v)", n, f, watch.firstErr.Load())
	}
	if watch.torn.Load() > 0 {
		t.Fatalf("%d torn file reads", watch.torn.Load())
	}
	served := 0
	watch.serials.Range(func(any, any) bool { served++; return true })
	if served < 3 {
		t.Errorf("the listener served %d distinct certificates, want the renewed ones too", served)
	}

	// Disable the machine: its certificates are revoked, the agent stops.
	var dis struct {
		Revoked []string `json:"revoked"`
	}
	if err := json.Unmarshal([]byte(in.mustCLI("agent", "disable", name, "-o", "json")), &dis); err != nil {
		t.Fatal(err)
	}
	if len(dis.Revoked) == 0 {
		t.Fatal("disable revoked nothing")
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the agent did not stop after disable:\n%s", p.log())
	}
	if p.code == 0 {
		t.Fatalf("the agent exited 0 after its machine was disabled")
	}
	out, _, code := in.cli("agent", "status", "--state", state)
	if code != 0 || !strings.Contains(out, "STOPPED") || !strings.Contains(out, "disabled") {
		t.Fatalf("agent status after disable (exit %d):\n%s", code, out)
	}
	if !auditHas(t, in, "agent.disable", "success", name) {
		t.Fatal("disable not audited")
	}
	// A renewal with the (revoked) certificate of a disabled machine is refused.
	id := loadAgentIdentity(t, state, name)
	c := &agent.Client{Server: in.srv.APIURL, Roots: rootPool(t, rootPEM)}
	csr, _ := agent.NewCSR(newKey(t), []string{name})
	if _, err := c.Renew(t.Context(), id, csr); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("renewal of a disabled machine: %v", err)
	}

	// --once on a disabled machine fails; a new join token brings it back.
	runOnce := func(args ...string) (string, int) {
		cmd := exec.Command(sigilBin, append([]string{"agent", "--once"}, append(common, args...)...)...)
		cmd.Env = append(os.Environ(), "SIGIL_TOKEN=", "SIGIL_ROOT=")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return string(out), 0
	}
	if out, code := runOnce(); code == 0 || !strings.Contains(out, "disabled") {
		t.Fatalf("--once on a disabled machine: exit %d: %s", code, out)
	}
	if out, code := runOnce("--join-token", in.joinToken(name)); code != 0 {
		t.Fatalf("re-enrolment with a new token: exit %d: %s", code, out)
	}
	if err := json.Unmarshal([]byte(in.mustCLI("agent", "show", name, "-o", "json")), &mach); err != nil || mach.State != store.MachineActive {
		t.Fatalf("after re-enrolment: %+v %v", mach, err)
	}
	if st := readAgentState(t, state); st.Certificates[name].Stopped != "" || st.Certificates[name].Serial != string(mach.CurrentSerial) {
		t.Fatalf("agent state after re-enrolment: %+v", st.Certificates[name])
	}
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := keys.GenerateKey(identity.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rootPool(t *testing.T, rootPEM []byte) *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(rootPEM) {
		t.Fatal("bad root")
	}
	return p
}

func loadAgentIdentity(t *testing.T, state, name string) *tls.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "certs", name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(b, b)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestAgentRefusals: wrong fingerprint, token reuse, expired token, names
// outside the binding, another machine's names: each refused, audited, and
// nothing issued.
func TestAgentRefusals(t *testing.T) {
	t.Parallel()
	in := startServer(t, t.TempDir())
	in.applyFleetProfile()
	fp := in.rootFingerprint()
	once := func(state, name, token, fingerprint string, extra ...string) (string, int) {
		args := append([]string{"agent", "--once", "--server", in.srv.APIURL, "--root-fingerprint", fingerprint,
			"--join-token", token, "--name", name, "--state", state}, extra...)
		cmd := exec.Command(sigilBin, args...)
		cmd.Env = append(os.Environ(), "SIGIL_TOKEN=", "SIGIL_ROOT=")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	unused := func(token string) bool {
		id := strings.Split(token, "_")[1]
		j, err := in.srv.Store().GetJoinToken(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return j.UsedAt.IsZero()
	}

	t.Run("WrongFingerprint", func(t *testing.T) {
		tok := in.joinToken("fp.prod.internal")
		sum := sha256.Sum256([]byte("not the root"))
		out, code := once(t.TempDir(), "fp.prod.internal", tok, hex.EncodeToString(sum[:]))
		if code == 0 || !strings.Contains(out, "fingerprint") || !strings.Contains(out, "refusing") {
			t.Fatalf("exit %d: %s", code, out)
		}
		if !unused(tok) || len(issuedFor(t, in, "fp.prod.internal")) != 0 {
			t.Fatal("the token was used or a certificate issued despite the wrong fingerprint")
		}
		if _, code := once(t.TempDir(), "fp.prod.internal", tok, "zz"); code != 1 {
			t.Fatalf("malformed fingerprint: exit %d", code)
		}
	})

	t.Run("TokenReuse", func(t *testing.T) {
		tok := in.joinToken("reuse.prod.internal")
		if out, code := once(t.TempDir(), "reuse.prod.internal", tok, fp); code != 0 {
			t.Fatalf("first use: exit %d: %s", code, out)
		}
		out, code := once(t.TempDir(), "reuse.prod.internal", tok, fp)
		if code == 0 || !strings.Contains(out, "already been used") {
			t.Fatalf("second use: exit %d: %s", code, out)
		}
		if n := len(issuedFor(t, in, "reuse.prod.internal")); n != 1 {
			t.Fatalf("%d certificates issued, want 1", n)
		}
		if !auditHas(t, in, "agent.enroll", "refused", "already been used") {
			t.Fatal("reuse not audited")
		}
	})

	t.Run("ExpiredToken", func(t *testing.T) {
		// Tokens live at least a minute: plant one that expired.
		secret := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
		h := sha256.Sum256([]byte(secret))
		now := time.Now()
		err := in.srv.Store().Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			return tx.InsertJoinToken(ctx, &store.JoinToken{ID: "00000000000e0e0e", SecretHash: h[:], Profile: "fleet",
				Names: []string{"late.prod.internal"}, CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute)})
		})
		if err != nil {
			t.Fatal(err)
		}
		out, code := once(t.TempDir(), "late.prod.internal", "sgj_00000000000e0e0e_"+secret, fp)
		if code == 0 || !strings.Contains(out, "expired") {
			t.Fatalf("exit %d: %s", code, out)
		}
		if len(issuedFor(t, in, "late.prod.internal")) != 0 || !auditHas(t, in, "agent.enroll", "refused", "expired") {
			t.Fatal("expired token: issued or not audited")
		}
		// A forged secret for a real ID is refused without detail.
		if out, code := once(t.TempDir(), "late.prod.internal", "sgj_00000000000e0e0e_forged", fp); code == 0 || !strings.Contains(out, "invalid join token") {
			t.Fatalf("forged: exit %d: %s", code, out)
		}
	})

	t.Run("NamesOutsideBinding", func(t *testing.T) {
		tok := in.joinToken("a.prod.internal")
		out, code := once(t.TempDir(), "a.prod.internal", tok, fp, "--san", "b.prod.internal")
		if code == 0 || !strings.Contains(out, "not bound") {
			t.Fatalf("exit %d: %s", code, out)
		}
		if !unused(tok) || len(issuedFor(t, in, "a.prod.internal")) != 0 || !auditHas(t, in, "agent.enroll", "refused", "b.prod.internal") {
			t.Fatal("refused CSR consumed the token, issued, or was not audited")
		}
		// The token still works for what it binds.
		state := t.TempDir()
		if out, code := once(state, "a.prod.internal", tok, fp); code != 0 {
			t.Fatalf("proper use: exit %d: %s", code, out)
		}
		// Renewing with a's certificate for another machine's names is refused.
		rootPEM, _ := os.ReadFile(filepath.Join(in.dir, "root.pem"))
		c := &agent.Client{Server: in.srv.APIURL, Roots: rootPool(t, rootPEM)}
		id := loadAgentIdentity(t, state, "a.prod.internal")
		for _, names := range [][]string{{"reuse.prod.internal"}, {"a.prod.internal", "b.prod.internal"}} {
			csr, _ := agent.NewCSR(newKey(t), names)
			if _, err := c.Renew(t.Context(), id, csr); err == nil || !strings.Contains(err.Error(), "not bound") {
				t.Fatalf("renewal for %v: %v", names, err)
			}
		}
		// Without a client certificate: refused.
		csr, _ := agent.NewCSR(newKey(t), []string{"a.prod.internal"})
		if _, err := c.Renew(t.Context(), nil, csr); err == nil || !strings.Contains(err.Error(), "client certificate") {
			t.Fatalf("renewal without a certificate: %v", err)
		}
		if n := len(issuedFor(t, in, "a.prod.internal")); n != 1 {
			t.Fatalf("%d certificates for a.prod.internal, want 1", n)
		}
		if !auditHas(t, in, "agent.renew", "refused", "not bound") {
			t.Fatal("refused renewal not audited")
		}
	})
}

// TestAgentFleetBench runs `sigil bench agents` with a small fleet: every
// simulated agent enrols, renews through a server outage over mTLS, and no
// certificate expires. The figures are the benchmark's business (see
// docs/benchmarks.md); this checks the run's outcome only.
func TestAgentFleetBench(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(sigilBin, "bench", "agents", "--n", "20", "--concurrency", "8", "--ttl", "1m",
		"--renew-at", "0.15", "--jitter", "0.05", "--outage", "8s", "--burst", "--quiet", "-o", "json", "--data", filepath.Join(t.TempDir(), "srv"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench agents: %v\n%s%s", err, out.String(), errb.String())
	}
	var res struct {
		Enrolled       int     `json:"enrolled"`
		Renewed        int     `json:"renewed"`
		Expired        int     `json:"expired"`
		FailedAttempts int     `json:"failed_attempts"`
		BurstRenewals  int     `json:"burst_renewals"`
		PeakRSS        float64 `json:"server_peak_rss_mb"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if res.Enrolled != 20 || res.Renewed != 20 || res.Expired != 0 || res.BurstRenewals != 20 {
		t.Fatalf("fleet: %+v", res)
	}
	if res.FailedAttempts == 0 {
		t.Errorf("no renewal failed during the outage: the outage did not hit the renewal window (%+v)", res)
	}
	if res.PeakRSS <= 0 {
		t.Errorf("server RSS not measured")
	}
}

// TestAgentConfigFile: one agent, two certificates from agent.yaml (each its
// own join token and machine), with --once; a combined key+cert file; the
// owner and group applied; `sigil agent status -o json` reports both.
func TestAgentConfigFile(t *testing.T) {
	t.Parallel()
	in := startServer(t, t.TempDir())
	in.applyFleetProfile()
	m := t.TempDir()
	uid, gid := os.Getuid(), os.Getgid()
	cfg := fmt.Sprintf(`server: %s
root-fingerprint: %q
state: %s
certificates:
  - name: cfg-a.prod.internal
    join-token: %s
    cert: %s/a.crt
    key: %s/a.key
    chain: %s/a.chain
    fullchain: %s/a.full
    on-change: touch %s/a.reloaded
    owner: "%d"
    group: "%d"
  - name: cfg-b.prod.internal
    sans: [www-b.prod.internal]
    join-token-file: %s/b.token
    cert: %s/b.pem
    key: %s/b.pem
    key-type: ed25519
`, in.srv.APIURL, in.rootFingerprint(), filepath.Join(m, "state"), in.joinToken("cfg-a.prod.internal"), m, m, m, m, m, uid, gid, m, m, m)
	writeFile(t, m, "b.token", []byte(in.joinToken("cfg-b.prod.internal", "www-b.prod.internal")+"\n"))
	conf := writeFile(t, m, "agent.yaml", []byte(cfg))
	cmd := exec.Command(sigilBin, "agent", "--config", conf, "--once")
	cmd.Env = append(os.Environ(), "SIGIL_SERVER=", "SIGIL_TOKEN=", "SIGIL_ROOT=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("agent --config --once: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(m, "a.reloaded")); err != nil {
		t.Fatal("the hook did not run")
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(m, "a.crt"), filepath.Join(m, "a.key")); err != nil {
		t.Fatalf("a: %v", err)
	}
	// The full chain verifies on its own with openssl, as nginx loads it:
	// the leaf first, its intermediates after it in the same file.
	full := filepath.Join(m, "a.full")
	if out := mustOpenSSL(t, "verify", "-CAfile", filepath.Join(in.dir, "root.pem"), "-untrusted", full, full); !strings.Contains(out, ": OK") {
		t.Fatalf("openssl verify of the full chain: %s", out)
	}
	if pair, err := tls.LoadX509KeyPair(full, filepath.Join(m, "a.key")); err != nil || len(pair.Certificate) < 2 {
		t.Fatalf("full chain with the key: %v", err)
	}
	combined, err := tls.LoadX509KeyPair(filepath.Join(m, "b.pem"), filepath.Join(m, "b.pem"))
	if err != nil {
		t.Fatalf("b (combined file): %v", err)
	}
	if dns := combined.Leaf.DNSNames; len(dns) != 2 || dns[1] != "www-b.prod.internal" {
		t.Fatalf("b names %v", dns)
	}
	if fi, _ := os.Stat(filepath.Join(m, "b.pem")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("combined key file mode %v", fi.Mode())
	}
	var st agent.State
	out, _, code := in.cli("agent", "status", "--state", filepath.Join(m, "state"), "-o", "json")
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Certificates) != 2 {
		t.Fatalf("status (exit %d): %s", code, out)
	}
	for name, cs := range st.Certificates {
		if cs.Serial == "" || cs.NextRenewal.IsZero() || cs.Stopped != "" || cs.HookPending {
			t.Errorf("%s: %+v", name, cs)
		}
	}
	var machines []store.Machine
	if err := json.Unmarshal([]byte(in.mustCLI("agent", "list", "-o", "json")), &machines); err != nil || len(machines) != 2 ||
		machines[0].Name != "cfg-a.prod.internal" || machines[1].Names[1] != "www-b.prod.internal" {
		t.Fatalf("agent list: %+v %v", machines, err)
	}
	if out := in.mustCLI("join-token", "list"); strings.Count(out, " fleet ") != 2 || !strings.Contains(out, "cfg-b.prod.internal,www-b.prod.internal") {
		t.Fatalf("join-token list:\n%s", out)
	}
	// An unknown key in the file is refused before anything is sent.
	bad := writeFile(t, m, "bad.yaml", []byte(cfg+"renew_at: 0.5\n"))
	cmd = exec.Command(sigilBin, "agent", "--config", bad, "--once")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "renew_at") {
		t.Fatalf("unknown key: %v %s", err, out)
	}
}

// TestAgentHookFailure: a failing --on-change hook is reported and retried;
// the new certificate stays in place; --once exits non-zero meanwhile.
func TestAgentHookFailure(t *testing.T) {
	t.Parallel()
	in := startServer(t, t.TempDir())
	in.applyFleetProfile()
	m := t.TempDir()
	const name = "hook.prod.internal"
	state := filepath.Join(m, "state")
	ok := filepath.Join(m, "ok")
	args := []string{"--server", in.srv.APIURL, "--root-fingerprint", in.rootFingerprint(), "--name", name,
		"--cert", filepath.Join(m, "c.pem"), "--key", filepath.Join(m, "k.pem"), "--chain", filepath.Join(m, "ch.pem"),
		"--fullchain", filepath.Join(m, "full.pem"), "--on-change", "test -f " + ok + " || { echo reload refused; exit 3; }", "--state", state, "--check-interval", "1s"}
	cmd := exec.Command(sigilBin, append([]string{"agent", "--once", "--join-token", in.joinToken(name)}, args...)...)
	cmd.Env = append(os.Environ(), "SIGIL_TOKEN=", "SIGIL_ROOT=")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "reload refused") {
		t.Fatalf("--once with a failing hook: %v %s", err, out)
	}
	cs := readAgentState(t, state).Certificates[name]
	if cs.Serial == "" || !cs.HookPending || !strings.Contains(cs.HookError, "reload refused") {
		t.Fatalf("state after the failed hook: %+v", cs)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(m, "c.pem"), filepath.Join(m, "k.pem")); err != nil {
		t.Fatalf("the certificate was not kept: %v", err)
	}
	leafPEM, _ := os.ReadFile(filepath.Join(m, "c.pem"))
	chainPEM, _ := os.ReadFile(filepath.Join(m, "ch.pem"))
	if full, _ := os.ReadFile(filepath.Join(m, "full.pem")); string(full) != string(leafPEM)+string(chainPEM) {
		t.Fatalf("--fullchain is not the certificate followed by the chain:\n%s", full)
	}
	// The running agent retries the hook until it succeeds, without re-issuing.
	p := startAgent(t, args...)
	time.Sleep(1500 * time.Millisecond)
	if err := os.WriteFile(ok, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	done := waitState(t, state, name, 20*time.Second, "the hook to succeed", func(c *agent.CertState) bool { return !c.HookPending })
	if done.Serial != cs.Serial || done.HookError != "" {
		t.Fatalf("after the retried hook: %+v (was %s)", done, cs.Serial)
	}
	p.kill()
	if out, _, code := in.cli("agent", "status", "--state", state); code != 0 || !strings.Contains(out, " ok") {
		t.Fatalf("status: %s", out)
	}
}

// tcpProxy forwards loopback connections to target until closed; it can
// be reopened on the same address.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, addr: "127.0.0.1:0", target: target}
	p.open()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) open() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the closed port may take a moment to free
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr, p.conns = ln, ln.Addr().String(), map[net.Conn]bool{}
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

// close stops listening and cuts every forwarded connection.
func (p *tcpProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// TestAgentOCSPFallback: with the API listener unreachable to the agent
// (its only way there, a TCP proxy, is closed) but the plain-HTTP OCSP
// responder up, a revocation is still noticed, through OCSP, within the
// check interval; the re-key happens as soon as the API is reachable again.
func TestAgentOCSPFallback(t *testing.T) {
	t.Parallel()
	in := startServer(t, t.TempDir())
	in.applyFleetProfile()
	proxy := newTCPProxy(t, strings.TrimPrefix(in.srv.APIURL, "https://"))
	const name = "ocsp.prod.internal"
	m := t.TempDir()
	state := filepath.Join(m, "state")
	p := startAgent(t, "--server", "https://"+proxy.addr, "--root-fingerprint", in.rootFingerprint(),
		"--join-token", in.joinToken(name), "--name", name, "--cert", filepath.Join(m, "c.pem"), "--key", filepath.Join(m, "k.pem"),
		"--state", state, "--check-interval", "1s", "--renew-at", "0.9", "--jitter", "0", "--log-level", "debug")
	first := waitState(t, state, name, 20*time.Second, "enrolment", func(cs *agent.CertState) bool {
		return cs.Serial != "" && cs.StatusFrom == "server"
	})

	proxy.close()
	// The status endpoint is now unreachable; the responder still answers
	// "good", which changes nothing.
	waitState(t, state, name, 15*time.Second, "an OCSP check while the API is unreachable", func(cs *agent.CertState) bool {
		return cs.LastOCSPCheck.After(first.LastCheck)
	})
	if cs := readAgentState(t, state).Certificates[name]; cs.CertStatus != "issued" || cs.Serial != first.Serial {
		t.Fatalf("a good OCSP answer changed the state: %+v", cs)
	}
	in.mustCLI("cert", "revoke", first.Serial)
	revoked := waitState(t, state, name, 15*time.Second, "the revocation noticed through OCSP", func(cs *agent.CertState) bool {
		return cs.CertStatus == "revoked" && cs.StatusFrom == "ocsp"
	})
	if revoked.Serial != first.Serial || revoked.Rekeys != 0 {
		t.Fatalf("state after the OCSP revocation: %+v", revoked)
	}
	// It tries to re-key at once, and fails only because the API is unreachable.
	waitState(t, state, name, 15*time.Second, "a re-key attempt", func(cs *agent.CertState) bool {
		return strings.Contains(cs.LastError, "renewal failed") && cs.LastErrorAt.After(revoked.LastOCSPCheck.Add(-time.Second))
	})
	if !strings.Contains(p.log(), "OCSP responder says the certificate is revoked") {
		t.Fatalf("the agent did not say it learned of the revocation through OCSP:\n%s", p.log())
	}
	if out, _, code := in.cli("agent", "status", "--state", state); code != 0 || !strings.Contains(out, "REVOKED (ocsp), re-keying") {
		t.Fatalf("agent status while the revocation is known only through OCSP (exit %d):\n%s", code, out)
	}

	proxy.open()
	rekeyed := waitState(t, state, name, 20*time.Second, "the re-key once the API is back", func(cs *agent.CertState) bool {
		return cs.Rekeys >= 1 && cs.Serial != first.Serial && cs.CertStatus == "issued"
	})
	if !auditHas(t, in, "agent.renew", "success", `"rekey_after_revocation":true`) {
		t.Fatal("the re-key was not audited as such")
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(m, "c.pem"), filepath.Join(m, "k.pem")); err != nil {
		t.Fatalf("deployed files after the re-key (%s): %v", rekeyed.Serial, err)
	}
}

// TestAgentSuperseded: a copy of an agent's state directory (a cloned VM)
// renews the machine first and uses its new certificate; the original then
// holds a superseded certificate, which may not renew, and `sigil agent`
// stops with that reason instead of retrying until the certificate expires.
func TestAgentSuperseded(t *testing.T) {
	t.Parallel()
	in := startServer(t, t.TempDir())
	in.applyFleetProfile()
	fp := in.rootFingerprint()
	const name = "clone.prod.internal"
	once := func(state string, extra ...string) (string, int) {
		out, errOut, code := runSigil(t, append([]string{"agent", "--once", "--server", in.srv.APIURL, "--root-fingerprint", fp,
			"--name", name, "--state", state, "--renew-at", "0.1", "--jitter", "0"}, extra...)...)
		return out + errOut, code
	}
	orig := t.TempDir()
	if out, code := once(orig, "--join-token", in.joinToken(name)); code != 0 {
		t.Fatalf("enrolment: exit %d\n%s", code, out)
	}
	clone := t.TempDir()
	if err := os.CopyFS(clone, os.DirFS(orig)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(7 * time.Second) // 0.1 of the fleet profile's one-minute lifetime
	if out, code := once(clone); code != 0 {
		t.Fatalf("the clone's renewal: exit %d\n%s", code, out)
	}
	// The clone's next run checks its status with the new certificate.
	if out, code := once(clone); code != 0 {
		t.Fatalf("the clone's status check: exit %d\n%s", code, out)
	}
	out, code := once(orig)
	if code == 0 || !strings.Contains(out, "superseded") || !strings.Contains(out, "new join token") {
		t.Fatalf("the original after the clone renewed: exit %d\n%s", code, out)
	}
	var st struct {
		Certificates map[string]struct {
			Stopped string `json:"stopped"`
		} `json:"certificates"`
	}
	status, _, _ := runSigil(t, "agent", "status", "--state", orig, "-o", "json")
	if err := json.Unmarshal([]byte(status), &st); err != nil || !strings.Contains(st.Certificates[name].Stopped, "superseded") {
		t.Errorf("agent status after the stop: %v\n%s", err, status)
	}
}
