package bench

import (
	"bufio"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sigil-pki/sigil/internal/agent"
	"github.com/sigil-pki/sigil/internal/client"
	"github.com/sigil-pki/sigil/internal/keys"
)

// AgentsOptions configure the fleet benchmark: one process simulating N
// agents against one real server it starts (and stops, for the outage).
type AgentsOptions struct {
	N           int
	Concurrency int           // parallel requests
	TTL         time.Duration // certificate lifetime (the profile's)
	Outage      time.Duration // server down from the first renewal due; default TTL/3
	RenewAt     float64       // fraction of the lifetime
	Jitter      float64
	Burst       bool // after the outage phase, renew all N at once to measure peak renewals/s
	KeyType     string
	// Server is the command that runs `sigil server` (binary + "server");
	// the benchmark adds --dev, --data and the listen addresses.
	Server      []string
	ServerFlags []string  // extra flags for the server, e.g. --pprof-listen
	DataDir     string    // empty: a temporary directory
	Log         io.Writer // progress lines
}

// AgentsResult is what the fleet benchmark measured.
type AgentsResult struct {
	N               int     `json:"agents"`
	Enrolled        int     `json:"enrolled"`
	EnrollSeconds   float64 `json:"enroll_seconds"`
	EnrollPerSecond float64 `json:"enrolments_per_second"`
	TTLSeconds      float64 `json:"ttl_seconds"`
	OutageSeconds   float64 `json:"outage_seconds"`
	Renewed         int     `json:"renewed"`
	Expired         int     `json:"expired"`
	FailedAttempts  int     `json:"failed_attempts"` // during and right after the outage
	FirstError      string  `json:"first_error,omitempty"`
	// After the server returned: how the renewals spread (no thundering herd).
	RenewalSpanSeconds    float64 `json:"renewal_span_seconds"`     // first to last renewal after the outage
	Renewal90SpanSeconds  float64 `json:"renewal_p90_span_seconds"` // the shortest window holding 90% of them
	PeakRenewalsPerSecond int     `json:"peak_renewals_per_second"` // busiest 1-second bucket
	PerSecondAfterOutage  []int   `json:"renewals_per_second_after_outage"`
	RenewalP50ms          float64 `json:"renewal_p50_ms"`
	RenewalP99ms          float64 `json:"renewal_p99_ms"`
	MinMarginSeconds      float64 `json:"min_margin_seconds"` // least time left on a certificate when it was renewed
	// Burst: every agent renews at once with Concurrency parallel requests.
	BurstRenewals  int     `json:"burst_renewals"`
	BurstErrors    int     `json:"burst_errors"`
	BurstSeconds   float64 `json:"burst_seconds"`
	BurstPerSecond float64 `json:"burst_renewals_per_second"`
	// The server's CPU time during the burst (utime+stime from /proc), and
	// renewals per second of one server core: the figure that does not
	// depend on what else the machine runs (the load generator included).
	BurstServerCPUSeconds float64 `json:"burst_server_cpu_seconds"`
	BurstPerServerCore    float64 `json:"burst_renewals_per_server_core_second"`
	// Server resident memory (VmHWM, the peak, of each server process).
	ServerPeakRSSMB float64 `json:"server_peak_rss_mb"`
	ServerRSSMB     float64 `json:"server_rss_mb_at_end"`
}

type simAgent struct {
	name    string
	key     crypto.Signer
	cert    *tls.Certificate
	leaf    *x509.Certificate
	renewAt time.Time
}

func (a *simAgent) set(key crypto.Signer, leaf *x509.Certificate) {
	a.key, a.leaf = key, leaf
	a.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

// benchServer is a `sigil server` child process.
type benchServer struct {
	cmd      *exec.Cmd
	peakRSS  float64
	lastRSS  float64
	args     []string
	stderr   *os.File
	data     string
	listen   string
	httpAddr string
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (s *benchServer) start(ctx context.Context) error {
	args := append(slices.Clone(s.args[1:]), "--dev", "--data", s.data, "--listen", s.listen, "--http-listen", s.httpAddr, "--log-level", "error")
	var err error
	for i := 0; i < 50; i++ {
		s.cmd = exec.Command(s.args[0], args...)
		s.cmd.Stdout, s.cmd.Stderr = io.Discard, s.stderr
		if err = s.cmd.Start(); err != nil {
			return err
		}
		if err = s.waitReady(ctx); err == nil {
			return nil
		}
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		time.Sleep(200 * time.Millisecond) // the port may still be held by the previous server
	}
	return fmt.Errorf("the server did not start: %w", err)
}

func (s *benchServer) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(s.data, "root.pem")); err == nil {
			if c, err := client.New("https://"+s.listen, "", filepath.Join(s.data, "root.pem")); err == nil {
				if err := c.Do(ctx, "GET", "/healthz", nil, nil); err == nil {
					return nil
				}
			}
		}
		if s.cmd.ProcessState != nil {
			return errors.New("exited")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("not healthy after 20s")
}

// readRSS reads VmHWM and VmRSS (MB) of the running server.
func (s *benchServer) readRSS() {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[0], 64)
		switch k {
		case "VmHWM":
			s.peakRSS = max(s.peakRSS, kb/1024)
		case "VmRSS":
			s.lastRSS = kb / 1024
		}
	}
}

// cpuSeconds is the server's user+system CPU time so far, -1 if unknown.
func (s *benchServer) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

func (s *benchServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.readRSS()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

const benchProfile = `profiles:
  - name: bench-agents
    key_types: [ecdsa-p256, ed25519]
    default_ttl: %s
    max_ttl: %s
    dns: ["*.fleet.bench"]
    ext_key_usage: [server_auth, client_auth]
`

// Agents runs the fleet benchmark.
func Agents(ctx context.Context, o AgentsOptions) (*AgentsResult, error) {
	if o.N <= 0 || o.Concurrency <= 0 || len(o.Server) == 0 {
		return nil, errors.New("n, concurrency and the server command are required")
	}
	if o.Outage == 0 {
		o.Outage = o.TTL / 3
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
		}
	}
	if o.DataDir == "" {
		d, err := os.MkdirTemp("", "sigil-bench-agents")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		o.DataDir = d
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	errLog, err := os.Create(filepath.Join(o.DataDir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer errLog.Close()
	srv := &benchServer{args: append(slices.Clone(o.Server), o.ServerFlags...), data: o.DataDir, listen: listen, httpAddr: httpAddr, stderr: errLog}
	if err := srv.start(ctx); err != nil {
		return nil, err
	}
	defer srv.stop()
	server := "https://" + listen
	tok, err := os.ReadFile(filepath.Join(o.DataDir, "admin.token"))
	if err != nil {
		return nil, err
	}
	admin, err := client.New(server, strings.TrimSpace(string(tok)), filepath.Join(o.DataDir, "root.pem"))
	if err != nil {
		return nil, err
	}
	ttl := fmt.Sprintf("%ds", int(o.TTL.Seconds()))
	if err := admin.Do(ctx, "POST", "/api/v1/profiles", []byte(fmt.Sprintf(benchProfile, ttl, ttl)), nil); err != nil {
		return nil, fmt.Errorf("applying the benchmark profile: %w", err)
	}
	rootPEM, err := os.ReadFile(filepath.Join(o.DataDir, "root.pem"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	ac := &agent.Client{Server: server, Roots: roots, Timeout: 60 * time.Second}
	res := &AgentsResult{N: o.N, TTLSeconds: o.TTL.Seconds(), OutageSeconds: o.Outage.Seconds()}

	// Join tokens, as an operator would create them (not timed).
	logf("creating %d join tokens", o.N)
	agents := make([]*simAgent, o.N)
	tokens := make([]string, o.N)
	if err := parallel(ctx, o.N, o.Concurrency, func(i int) error {
		agents[i] = &simAgent{name: fmt.Sprintf("agent-%d.fleet.bench", i)}
		var resp struct {
			Token string `json:"token"`
		}
		err := admin.Do(ctx, "POST", "/api/v1/join-tokens", map[string]any{"profile": "bench-agents", "names": []string{agents[i].name}, "ttl": "1h"}, &resp)
		tokens[i] = resp.Token
		return err
	}); err != nil {
		return nil, fmt.Errorf("creating join tokens: %w", err)
	}

	// Enrolment: each agent generates its key and enrols.
	logf("enrolling %d agents", o.N)
	start := time.Now()
	var enrolled atomic.Int64
	if err := parallel(ctx, o.N, o.Concurrency, func(i int) error {
		a := agents[i]
		key, err := keys.GenerateKey(o.KeyType)
		if err != nil {
			return err
		}
		csr, err := agent.NewCSR(key, []string{a.name})
		if err != nil {
			return err
		}
		out, err := ac.Enroll(ctx, tokens[i], csr)
		if err != nil {
			return err
		}
		leaf, err := agent.CheckIssued(out, key, roots)
		if err != nil {
			return err
		}
		a.set(key, leaf)
		a.renewAt = agent.RenewAt(leaf.NotBefore, leaf.NotAfter, o.RenewAt, o.Jitter, rand.Float64())
		enrolled.Add(1)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("enrolment: %w", err)
	}
	res.Enrolled = int(enrolled.Load())
	res.EnrollSeconds = time.Since(start).Seconds()
	res.EnrollPerSecond = float64(res.Enrolled) / res.EnrollSeconds
	logf("enrolled %d in %.1fs (%.0f/s)", res.Enrolled, res.EnrollSeconds, res.EnrollPerSecond)

	// The outage starts when the first renewal is due.
	first := agents[0].renewAt
	for _, a := range agents {
		if a.renewAt.Before(first) {
			first = a.renewAt
		}
	}
	var serverBack atomic.Pointer[time.Time]
	outageDone := make(chan error, 1)
	go func() {
		time.Sleep(time.Until(first))
		logf("stopping the server for %s", o.Outage)
		srv.stop()
		time.Sleep(o.Outage)
		err := srv.start(ctx)
		now := time.Now()
		serverBack.Store(&now)
		logf("server back")
		outageDone <- err
	}()

	// Renewal: every agent renews when due, retrying with backoff.
	var (
		mu        sync.Mutex
		doneAt    []time.Time
		latencies []time.Duration
		failures  atomic.Int64
		expired   atomic.Int64
		firstErr  atomic.Value
		minMargin = o.TTL
	)
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(func() {
			time.Sleep(time.Until(a.renewAt))
			for n := 0; ; n++ {
				key, err := keys.GenerateKey(o.KeyType)
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				csr, _ := agent.NewCSR(key, []string{a.name})
				sem <- struct{}{}
				t0 := time.Now()
				out, err := ac.Renew(ctx, a.cert, csr)
				lat := time.Since(t0)
				<-sem
				if err == nil {
					var leaf *x509.Certificate
					if leaf, err = agent.CheckIssued(out, key, roots); err == nil {
						now := time.Now()
						mu.Lock()
						doneAt, latencies = append(doneAt, now), append(latencies, lat)
						minMargin = min(minMargin, a.leaf.NotAfter.Sub(now))
						mu.Unlock()
						a.set(key, leaf)
						return
					}
				}
				failures.Add(1)
				if serverBack.Load() != nil {
					firstErr.CompareAndSwap(nil, err.Error())
				}
				if !time.Now().Before(a.leaf.NotAfter) || ctx.Err() != nil {
					expired.Add(1)
					return
				}
				time.Sleep(agent.Backoff(n, o.TTL, rand.Float64()))
			}
		})
	}
	wg.Wait()
	if err := <-outageDone; err != nil {
		return nil, fmt.Errorf("restarting the server: %w", err)
	}
	res.Renewed, res.Expired, res.FailedAttempts = len(doneAt), int(expired.Load()), int(failures.Load())
	if v, ok := firstErr.Load().(string); ok {
		res.FirstError = v
	}
	res.MinMarginSeconds = minMargin.Seconds()
	back := *serverBack.Load()
	var after []time.Time
	for _, t := range doneAt {
		if !t.Before(back) {
			after = append(after, t)
		}
	}
	slices.SortFunc(after, func(a, b time.Time) int { return a.Compare(b) })
	if len(after) > 0 {
		res.RenewalSpanSeconds = after[len(after)-1].Sub(after[0]).Seconds()
		k := max(1, len(after)*9/10)
		best := after[len(after)-1].Sub(after[0])
		for i := 0; i+k-1 < len(after); i++ {
			best = min(best, after[i+k-1].Sub(after[i]))
		}
		res.Renewal90SpanSeconds = best.Seconds()
		buckets := make([]int, int(after[len(after)-1].Sub(back).Seconds())+1)
		for _, t := range after {
			buckets[int(t.Sub(back).Seconds())]++
		}
		res.PerSecondAfterOutage = buckets
		res.PeakRenewalsPerSecond = slices.Max(buckets)
	}
	slices.Sort(latencies)
	if len(latencies) > 0 {
		res.RenewalP50ms = float64(latencies[len(latencies)/2].Microseconds()) / 1000
		res.RenewalP99ms = float64(latencies[len(latencies)*99/100].Microseconds()) / 1000
	}
	logf("renewed %d, expired %d, %d failed attempts; after the outage: peak %d/s, 90%% within %.1fs",
		res.Renewed, res.Expired, res.FailedAttempts, res.PeakRenewalsPerSecond, res.Renewal90SpanSeconds)

	if o.Burst {
		logf("burst: %d renewals at concurrency %d", o.N, o.Concurrency)
		// Keys and CSRs first: the burst measures the server, not key generation.
		csrs := make([][]byte, o.N)
		newKeys := make([]crypto.Signer, o.N)
		for i, a := range agents {
			if newKeys[i], err = keys.GenerateKey(o.KeyType); err != nil {
				return nil, err
			}
			if csrs[i], err = agent.NewCSR(newKeys[i], []string{a.name}); err != nil {
				return nil, err
			}
		}
		var ok, bad atomic.Int64
		cpu0 := srv.cpuSeconds()
		t0 := time.Now()
		_ = parallel(ctx, o.N, o.Concurrency, func(i int) error {
			if _, err := ac.Renew(ctx, agents[i].cert, csrs[i]); err != nil {
				bad.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			} else {
				ok.Add(1)
			}
			return nil
		})
		res.BurstSeconds = time.Since(t0).Seconds()
		res.BurstRenewals, res.BurstErrors = int(ok.Load()), int(bad.Load())
		res.BurstPerSecond = float64(res.BurstRenewals) / res.BurstSeconds
		if cpu0 >= 0 {
			res.BurstServerCPUSeconds = srv.cpuSeconds() - cpu0
			if res.BurstServerCPUSeconds > 0 {
				res.BurstPerServerCore = float64(res.BurstRenewals) / res.BurstServerCPUSeconds
			}
		}
		logf("burst: %d renewals in %.1fs (%.0f/s)", res.BurstRenewals, res.BurstSeconds, res.BurstPerSecond)
	}
	srv.readRSS()
	res.ServerRSSMB = srv.lastRSS
	srv.stop()
	res.ServerPeakRSSMB = srv.peakRSS
	return res, nil
}

// parallel runs fn(0..n-1) on c workers and returns the first error.
func parallel(ctx context.Context, n, c int, fn func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(c, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("item %d: %w", i, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}
