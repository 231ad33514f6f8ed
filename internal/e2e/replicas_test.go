package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/client"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
)

// replica is a `sigil server` process sharing a data directory and a
// PostgreSQL database with others.
type replica struct {
	t         *testing.T
	name      string
	dir       string
	cmd       *exec.Cmd
	exited    chan struct{}
	logFile   string
	apiURL    string
	publicURL string
	token     string
	api       *client.Client
	https     *http.Client // trusts the data directory's root.pem
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startReplica runs `sigil server --dev` on dir and dsn and waits until it
// answers /healthz. The first replica of a database must start alone (it
// creates the CA).
func startReplica(t *testing.T, name, dir, dsn string) *replica {
	t.Helper()
	apiAddr, pubAddr := freeAddr(t), freeAddr(t)
	r := &replica{t: t, name: name, dir: dir, exited: make(chan struct{}),
		logFile: filepath.Join(t.TempDir(), name+".log"),
		apiURL:  "https://" + apiAddr, publicURL: "http://" + pubAddr}
	logf, err := os.Create(r.logFile)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(sigilBin, "server", "--dev", "--data", dir, "--db", dsn,
		"--listen", apiAddr, "--http-listen", pubAddr, "--background-interval", "1s", "--log-level", "info")
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); logf.Close(); close(r.exited) }()
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			b, _ := os.ReadFile(r.logFile)
			t.Logf("log of %s:\n%s", r.name, b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-r.exited:
			b, _ := os.ReadFile(r.logFile)
			t.Fatalf("%s exited during start:\n%s", name, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(r.logFile)
			t.Fatalf("%s not healthy within 60s:\n%s", name, b)
		}
		if r.api == nil {
			tok, err1 := os.ReadFile(filepath.Join(dir, "admin.token"))
			rootPEM, err2 := os.ReadFile(filepath.Join(dir, "root.pem"))
			if err1 == nil && err2 == nil {
				r.token = strings.TrimSpace(string(tok))
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(rootPEM)
				r.https = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
				if r.api, err = client.New(r.apiURL, r.token, filepath.Join(dir, "root.pem")); err != nil {
					t.Fatal(err)
				}
			}
		}
		if r.api != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := r.api.Do(ctx, "GET", "/healthz", nil, nil)
			cancel()
			if err == nil {
				return r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to end.
func (r *replica) kill() {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Kill()
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		r.t.Errorf("%s did not exit after SIGKILL", r.name)
	}
}

func (r *replica) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// leader scrapes /metrics: 1 if the replica reports sigil_background_leader
// 1, 0 if it reports 0, -1 if it cannot be scraped.
func (r *replica) leader() int {
	resp, err := r.https.Get(r.apiURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		switch line {
		case "sigil_background_leader 1":
			return 1
		case "sigil_background_leader 0":
			return 0
		}
	}
	r.t.Errorf("%s: no sigil_background_leader in /metrics", r.name)
	return -1
}

func (r *replica) cli(args ...string) (string, int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sigilBin, args...)
	cmd.Env = append(os.Environ(), "SIGIL_SERVER="+r.apiURL, "SIGIL_TOKEN="+r.token, "SIGIL_ROOT="+filepath.Join(r.dir, "root.pem"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		r.t.Fatalf("running sigil: %v", err)
	}
	return out.String(), 0
}

func (r *replica) mustCLI(args ...string) string {
	r.t.Helper()
	out, code := r.cli(args...)
	if code != 0 {
		r.t.Fatalf("%s: sigil %s: exit %d: %s", r.name, strings.Join(args, " "), code, out)
	}
	return out
}

func (r *replica) applyProfiles() {
	r.t.Helper()
	f := filepath.Join(r.t.TempDir(), "profiles.yaml")
	if err := os.WriteFile(f, []byte(testProfiles), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.mustCLI("profile", "apply", "-f", f)
}

func (r *replica) issue(t testing.TB, name string) (*api.IssueResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out api.IssueResponse
	err := r.api.Do(ctx, "POST", "/api/v1/certificates", api.IssueRequest{Profile: "web", CSR: string(newCSR(t, identity.KeyECDSAP256, name))}, &out)
	return &out, err
}

// startReplicas starts n replicas on a fresh database, the first alone, and
// applies the test profiles through it before the others start (so no
// replica has cached their absence).
func startReplicas(t *testing.T, n int) (string, []*replica) {
	t.Helper()
	dsn := pgtest.FreshDatabase(t)
	dir := filepath.Join(t.TempDir(), "data")
	rs := []*replica{startReplica(t, "replica-0", dir, dsn)}
	rs[0].applyProfiles()
	for i := 1; i < n; i++ {
		rs = append(rs, startReplica(t, fmt.Sprintf("replica-%d", i), dir, dsn))
	}
	return dsn, rs
}

// TestReplicaLeaderFailover: of three server processes exactly one reports
// itself background-job leader; after it is killed with SIGKILL another
// takes over within 10 s, and no sample ever shows two leaders.
func TestReplicaLeaderFailover(t *testing.T) {
	_, rs := startReplicas(t, 3)
	var mu sync.Mutex
	counts := func() (leaders int, who *replica) {
		for _, r := range rs {
			if r.alive() && r.leader() == 1 {
				leaders++
				who = r
			}
		}
		return
	}
	// Sample every 200 ms for the whole test.
	var twoLeaders atomic.Int32
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			mu.Lock()
			if n, _ := counts(); n > 1 {
				twoLeaders.Add(1)
			}
			mu.Unlock()
		}
	}()
	defer func() { close(stop); <-sampled }()

	waitOneLeader := func(within time.Duration) *replica {
		t.Helper()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			mu.Lock()
			n, who := counts()
			mu.Unlock()
			if n == 1 {
				return who
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no single leader within %s", within)
		return nil
	}
	first := waitOneLeader(10 * time.Second)
	t.Logf("leader: %s", first.name)
	killed := time.Now()
	first.kill()
	second := waitOneLeader(10 * time.Second)
	t.Logf("failover %s -> %s in %s", first.name, second.name, time.Since(killed).Round(10*time.Millisecond))
	if second == first {
		t.Fatal("the killed replica is still leader")
	}
	// Leadership stays put for a while.
	time.Sleep(2 * time.Second)
	if again := waitOneLeader(time.Second); again != second {
		t.Fatalf("leadership moved from %s to %s without a failure", second.name, again.name)
	}
	if n := twoLeaders.Load(); n > 0 {
		t.Fatalf("%d samples showed two leaders at once", n)
	}
}

// TestReplicaConcurrentIssuance: 1500 certificates issued concurrently
// through three processes: serials unique, every replica lists them all and
// verifies the audit chain.
func TestReplicaConcurrentIssuance(t *testing.T) {
	_, rs := startReplicas(t, 3)
	const workers, each = 10, 50
	var (
		mu      sync.Mutex
		serials = map[identity.Serial]bool{}
		errs    []error
		wg      sync.WaitGroup
	)
	start := time.Now()
	for ri, r := range rs {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					out, err := r.issue(t, fmt.Sprintf("r%d-w%d-%d.test", ri, w, i))
					mu.Lock()
					if err != nil {
						errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
					} else if serials[out.Serial] {
						errs = append(errs, fmt.Errorf("duplicate serial %s", out.Serial))
					} else {
						serials[out.Serial] = true
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("%d certificates through %d replicas in %s", len(serials), len(rs), time.Since(start).Round(time.Millisecond))
	for i, err := range errs {
		if i < 10 {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	want := len(rs) * workers * each
	if len(serials) != want {
		t.Fatalf("%d distinct serials, want %d", len(serials), want)
	}
	for _, r := range rs {
		var list struct {
			Count int `json:"count"`
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.api.Do(ctx, "GET", "/api/v1/certificates?status=issued&profile=web", nil, &list)
		cancel()
		if err != nil {
			t.Fatalf("%s: listing: %v", r.name, err)
		}
		if list.Count != want {
			t.Errorf("%s lists %d issued certificates, want %d", r.name, list.Count, want)
		}
		if out := r.mustCLI("audit", "verify"); !strings.Contains(out, "OK") {
			t.Errorf("%s: audit verify: %s", r.name, out)
		}
	}
}

// TestReplicaRevocationPropagates: a revocation on replica A shows at once
// in replica B's OCSP answers and, within 5 s, on the CRL B serves.
func TestReplicaRevocationPropagates(t *testing.T) {
	_, rs := startReplicas(t, 2)
	a, b := rs[0], rs[1]
	issued, err := b.issue(t, "revoke-me.test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.api.Do(ctx, "POST", "/api/v1/certificates/"+string(issued.Serial)+"/revoke", api.RevokeRequest{Reason: "keyCompromise"}, nil); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	work := t.TempDir()
	crt := writeFile(t, work, "crt.pem", []byte(issued.PEM))
	intFile := writeFile(t, work, "int.pem", []byte(issued.Chain))
	out, _ := openssl(t, "ocsp", "-issuer", intFile, "-cert", crt, "-url", b.publicURL+"/ocsp", "-CAfile", filepath.Join(b.dir, "root.pem"))
	if !strings.Contains(out, crt+": revoked") || !strings.Contains(out, "Response verify OK") {
		t.Fatalf("OCSP on replica B right after revocation on A:\n%s", out)
	}
	want := issued.Certificate.Serial
	for {
		if crlLists(t, b.publicURL+"/crl/"+issued.IssuerID+".crl", want) {
			t.Logf("B's CRL lists the revocation %s after it", time.Since(revokedAt).Round(time.Millisecond))
			break
		}
		if time.Since(revokedAt) > 5*time.Second {
			t.Fatal("replica B's CRL does not list the certificate revoked on A after 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func crlLists(t *testing.T, url string, serial identity.Serial) bool {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	der, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, der)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range crl.RevokedCertificateEntries {
		if identity.SerialFromBig(e.SerialNumber) == serial {
			return true
		}
	}
	return false
}

// TestReplicaConnectionLoss: when PostgreSQL ends every session of a
// replica, it recovers by itself within seconds (ready, issuing, leading
// again) and no request hangs meanwhile.
func TestReplicaConnectionLoss(t *testing.T) {
	dsn, rs := startReplicas(t, 1)
	r := rs[0]
	if _, err := r.issue(t, "before.test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "leader before", func() bool { return r.leader() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var killed int
	err = conn.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()").Scan(&killed)
	conn.Close(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no session of the replica to terminate")
	}
	cut := time.Now()
	// Every request answers within its timeout (no hang); the replica is
	// ready and issuing again within 10 s.
	saw503 := false
	waitFor(t, 10*time.Second, "ready again", func() bool {
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(r.publicURL + "/readyz")
		if err != nil {
			t.Fatalf("/readyz after the connections were cut: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			saw503 = true
		}
		return resp.StatusCode == 200
	})
	waitFor(t, 10*time.Second, "issuing again", func() bool {
		_, err := r.issue(t, "after.test")
		return err == nil
	})
	t.Logf("%d sessions terminated; ready and issuing after %s (saw 503: %v)", killed, time.Since(cut).Round(time.Millisecond), saw503)
	// The lease's own session was cut too: the replica notices, logs the
	// loss and leads again.
	waitFor(t, 10*time.Second, "leadership lost and regained", func() bool {
		b, _ := os.ReadFile(r.logFile)
		log := string(b)
		i := strings.Index(log, "lost background-job leadership")
		return i >= 0 && strings.Contains(log[i:], "became background-job leader") && r.leader() == 1
	})
	t.Logf("leader again after %s", time.Since(cut).Round(time.Millisecond))
	if out := r.mustCLI("audit", "verify"); !strings.Contains(out, "OK") {
		t.Fatalf("audit verify: %s", out)
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
