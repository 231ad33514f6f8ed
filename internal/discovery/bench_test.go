package discovery

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/inventory"
)

// The benchmarks' TLS servers run in a child process (this test binary
// re-executed with SIGIL_BENCH_TLS_SERVERS=N) so that the benchmark
// process's CPU time is the scanner's alone.
func TestMain(m *testing.M) {
	if n, err := strconv.Atoi(os.Getenv("SIGIL_BENCH_TLS_SERVERS")); err == nil && n > 0 {
		serveBenchListeners(n)
		return
	}
	os.Exit(m.Run())
}

// serveBenchListeners opens n TLS listeners on 127.0.0.1 presenting a leaf
// and an intermediate (ECDSA P-256), prints their ports, and serves until stdin closes.
func serveBenchListeners(n int) {
	now := time.Now()
	root, _ := makeTestCert("Bench Root", nil, true, now.Add(-time.Hour), now.Add(24*time.Hour))
	inter, _ := makeTestCert("Bench Intermediate", &root, true, now.Add(-time.Hour), now.Add(24*time.Hour))
	inter.Certificate = inter.Certificate[:1]
	leaf, err := makeTestCert("bench.test", &inter, false, now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{leaf}}
	var ports []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					tc := tls.Server(c, cfg)
					_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
					if tc.Handshake() == nil {
						_, _ = tc.Read(make([]byte, 1)) // until the client closes
					}
				}()
			}
		}()
	}
	fmt.Println(strings.Join(ports, " "))
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

func startBenchServers(b *testing.B, n int) []string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SIGIL_BENCH_TLS_SERVERS="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	var eps []string
	for _, p := range strings.Fields(line) {
		eps = append(eps, "127.0.0.1:"+p)
	}
	return eps
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const benchEndpoints = 1000

// BenchmarkScanNet scans 1,000 loopback TLS listeners per iteration with
// the scanner (ScanNet: dial, handshake accepting TLS 1.0–1.3, chain
// recorded into a Collector) and, for reference, with a bare Go TLS 1.3
// client (dial, handshake, which parses the chain). Reported per endpoint:
// scanner CPU, bare CPU, their ratio (target ≤ 1.3) and endpoints/s.
func BenchmarkScanNet(b *testing.B) {
	eps := startBenchServers(b, benchEndpoints)
	targets, err := ParseTargets(eps, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	const conc = 64
	bare := func() {
		work := make(chan string)
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}}
				for ep := range work {
					c, err := d.DialContext(context.Background(), "tcp", ep)
					if err != nil {
						b.Error(err)
						continue
					}
					if len(c.(*tls.Conn).ConnectionState().PeerCertificates) != 2 {
						b.Error("short chain")
					}
					c.Close()
				}
			})
		}
		for _, ep := range eps {
			work <- ep
		}
		close(work)
		wg.Wait()
	}
	scan := func() {
		col := inventory.NewCollector()
		if err := ScanNet(context.Background(), targets, NetOptions{Concurrency: conc, Timeout: 10 * time.Second}, col); err != nil {
			b.Fatal(err)
		}
		if n, _, e := col.Counts(); n != 2 || e != 0 {
			b.Fatalf("scan found %d identities, %d errors", n, e)
		}
	}
	bare() // warm up both sides
	var scanCPU, bareCPU, scanWall time.Duration
	for b.Loop() {
		c0, t0 := cpuTime(), time.Now()
		scan()
		c1, t1 := cpuTime(), time.Now()
		bare()
		c2 := cpuTime()
		scanCPU += c1 - c0
		bareCPU += c2 - c1
		scanWall += t1.Sub(t0)
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N*benchEndpoints) }
	b.ReportMetric(per(scanCPU), "scan-cpu-µs/endpoint")
	b.ReportMetric(per(bareCPU), "bare-cpu-µs/endpoint")
	b.ReportMetric(float64(scanCPU)/float64(bareCPU), "cpu-ratio")
	b.ReportMetric(float64(b.N*benchEndpoints)/scanWall.Seconds(), "endpoints/s")
}

// BenchmarkScanFS scans a generated tree of 2,000 files (a third PEM
// certificates, a third PEM private keys, a third plain configuration files
// with no identity) and reports files/s.
func BenchmarkScanFS(b *testing.B) {
	dir := filepath.Join(os.TempDir(), "sigil-bench-fs-v1")
	const files = 2000
	if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
		os.RemoveAll(dir)
		now := time.Now()
		for i := range files {
			sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%50))
			os.MkdirAll(sub, 0o755)
			var data []byte
			switch i % 3 {
			case 0:
				c := testCert(b, fmt.Sprintf("f%d.test", i), nil, false, now, now.Add(time.Hour))
				data = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
			case 1:
				c := testCert(b, "k", nil, false, now, now.Add(time.Hour))
				der, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
				data = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
			default:
				data = []byte(strings.Repeat(fmt.Sprintf("setting_%d = value %d # comment\n", i, i), 60))
			}
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d", i)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		os.WriteFile(filepath.Join(dir, "done"), nil, 0o644)
	}
	for b.Loop() {
		col := inventory.NewCollector()
		if err := ScanFS(context.Background(), []string{dir}, FSOptions{ParseOptions: ParseOptions{SSH: true, Secrets: true}, Host: "h"}, col); err != nil {
			b.Fatal(err)
		}
		if ids, _, _ := col.Counts(); ids < files/3 {
			b.Fatalf("found %d identities", ids)
		}
	}
	b.ReportMetric(float64(b.N*(files+1))/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkScanNetStream scans a whole /16 of loopback addresses on a
// closed port (every connection refused at once) and reports the peak heap:
// targets are streamed, so it stays flat however large the range.
func BenchmarkScanNetStream(b *testing.B) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	targets, err := ParseTargets([]string{"127.1.0.0/16"}, []int{port}, nil)
	if err != nil {
		b.Fatal(err)
	}
	var peak uint64
	for b.Loop() {
		runtime.GC()
		stop := make(chan struct{})
		sampled := make(chan uint64)
		go func() {
			var max uint64
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				max = maxU(max, ms.HeapInuse)
				select {
				case <-stop:
					sampled <- max
					return
				case <-t.C:
				}
			}
		}()
		col := inventory.NewCollector()
		if err := ScanNet(context.Background(), targets, NetOptions{Concurrency: 256, Timeout: 2 * time.Second}, col); err != nil {
			b.Fatal(err)
		}
		close(stop)
		peak = maxU(peak, <-sampled)
		if r := col.Report("net", ""); r.Unreachable != 65536 {
			b.Fatalf("unreachable %d, errors %d", r.Unreachable, len(r.Errors))
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(b.N*65536)/b.Elapsed().Seconds(), "endpoints/s")
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
