package discovery

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/store"
)

// testCert makes a certificate for cn signed by parent (self-signed when nil).
func testCert(t testing.TB, cn string, parent *tls.Certificate, isCA bool, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	c, err := makeTestCert(cn, parent, isCA, notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func makeTestCert(cn string, parent *tls.Certificate, isCA bool, notBefore, notAfter time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		DNSNames: []string{cn}, IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	signerCert, signerKey := tmpl, crypto.Signer(key)
	var chain [][]byte
	if parent != nil {
		signerCert, signerKey = parent.Leaf, parent.PrivateKey.(crypto.Signer)
		chain = parent.Certificate
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: append([][]byte{der}, chain...), PrivateKey: key, Leaf: leaf}, nil
}

// listen starts a listener on addr:0 (skipping the test if the loopback
// alias is unavailable) and serves each connection with fn until cleanup.
func listen(t testing.TB, addr string, fn func(net.Conn)) int {
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
	return ln.Addr().(*net.TCPAddr).Port
}

func tlsServer(cert tls.Certificate, minV, maxV uint16) func(net.Conn) {
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minV, MaxVersion: maxV}
	return func(c net.Conn) {
		defer c.Close()
		tc := tls.Server(c, cfg)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		_ = tc.Handshake()
	}
}

type netFixture struct {
	targets  []string
	want     map[string][]string // fingerprint → sorted "host:port#chainIndex"
	wantErrs []string            // endpoints that must be scan errors
}

func startNetFixture(t *testing.T) *netFixture {
	now := time.Now()
	f := &netFixture{want: map[string][]string{}}
	add := func(host string, port int, chain [][]byte) {
		f.targets = append(f.targets, fmt.Sprintf("%s:%d", host, port))
		for i, der := range chain {
			fp := inventory.SHA256Hex(der)
			f.want[fp] = append(f.want[fp], fmt.Sprintf("%s:%d#%d", host, port, i))
		}
	}
	self := testCert(t, "self.test", nil, false, now.Add(-time.Hour), now.Add(30*24*time.Hour))
	add("127.0.0.1", listen(t, "127.0.0.1", tlsServer(self, tls.VersionTLS12, 0)), self.Certificate)

	expired := testCert(t, "expired.test", nil, false, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	add("127.0.0.2", listen(t, "127.0.0.2", tlsServer(expired, tls.VersionTLS12, 0)), expired.Certificate)

	root := testCert(t, "Test Root", nil, true, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	inter := testCert(t, "Test Intermediate", &root, true, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	inter.Certificate = inter.Certificate[:1] // servers send leaf + intermediate, not the root
	leaf := testCert(t, "chain.test", &inter, false, now.Add(-time.Hour), now.Add(90*24*time.Hour))
	add("127.0.0.3", listen(t, "127.0.0.3", tlsServer(leaf, tls.VersionTLS12, 0)), leaf.Certificate)

	// A legacy server: TLS 1.0 only.
	old := testCert(t, "tls10.test", nil, false, now.Add(-time.Hour), now.Add(24*time.Hour))
	add("127.0.0.4", listen(t, "127.0.0.4", tlsServer(old, tls.VersionTLS10, tls.VersionTLS10)), old.Certificate)

	// STARTTLS SMTP on a non-standard port, asked for explicitly below? No:
	// the fixture stays in "auto" mode, so STARTTLS is covered in its own test.

	garbage := listen(t, "127.0.0.5", func(c net.Conn) {
		defer c.Close()
		_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\nthis is not TLS at all\x00\xff\xfe"))
		time.Sleep(100 * time.Millisecond)
	})
	silent := listen(t, "127.0.0.6", func(c net.Conn) {
		defer c.Close()
		time.Sleep(20 * time.Second) // a tarpit: accepts, never answers
	})
	slowloris := listen(t, "127.0.0.7", func(c net.Conn) {
		defer c.Close()
		// A TLS record header, then one byte per 500ms forever.
		_, _ = c.Write([]byte{0x16, 0x03, 0x03, 0x40, 0x00})
		for range 40 {
			time.Sleep(500 * time.Millisecond)
			if _, err := c.Write([]byte{0x02}); err != nil {
				return
			}
		}
	})
	for _, ep := range []string{fmt.Sprintf("127.0.0.5:%d", garbage), fmt.Sprintf("127.0.0.6:%d", silent),
		fmt.Sprintf("127.0.0.7:%d", slowloris)} {
		f.targets = append(f.targets, ep)
		f.wantErrs = append(f.wantErrs, ep)
	}
	// A closed port.
	ln, _ := net.Listen("tcp", "127.0.0.8:0")
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	f.targets = append(f.targets, fmt.Sprintf("127.0.0.8:%d", closed)) // counted as unreachable, not an error
	for k := range f.want {
		slices.Sort(f.want[k])
	}
	return f
}

func TestScanNet(t *testing.T) {
	f := startNetFixture(t)
	targets, err := ParseTargets(f.targets, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	col := inventory.NewCollector()
	timeout := time.Second
	start := time.Now()
	if err := ScanNet(t.Context(), targets, NetOptions{Concurrency: 4, Timeout: timeout}, col); err != nil {
		t.Fatalf("ScanNet: %v", err)
	}
	// Not a speed assertion: a hang guard. Every endpoint is bounded by the
	// timeout; 4 workers over 9 endpoints need at most 3 rounds.
	if el := time.Since(start); el > 3*timeout+5*time.Second {
		t.Errorf("scan took %v, beyond its timeout budget", el)
	}
	rep := col.Report("net", "")
	got := map[string][]string{}
	for _, l := range rep.Locations {
		got[l.Fingerprint] = append(got[l.Fingerprint], fmt.Sprintf("%s:%d#%d", l.Host, l.Port, l.ChainIndex))
		if l.TLSVersion == "" || l.CipherSuite == "" || l.Kind != store.LocationNet {
			t.Errorf("location without TLS details: %+v", l)
		}
		if strings.HasPrefix(l.Host, "127.0.0.4") && l.TLSVersion != "TLS 1.0" {
			t.Errorf("TLS 1.0 server recorded as %s", l.TLSVersion)
		}
	}
	for k := range got {
		slices.Sort(got[k])
	}
	if fmt.Sprint(got) != fmt.Sprint(f.want) {
		t.Errorf("locations:\n got %v\nwant %v", got, f.want)
	}
	if len(rep.Identities) != len(f.want) {
		t.Errorf("got %d identities, want %d", len(rep.Identities), len(f.want))
	}
	var errTargets []string
	for _, e := range rep.Errors {
		errTargets = append(errTargets, e.Target)
	}
	slices.Sort(errTargets)
	slices.Sort(f.wantErrs)
	if !slices.Equal(errTargets, f.wantErrs) {
		t.Errorf("scan errors = %v, want %v (%+v)", errTargets, f.wantErrs, rep.Errors)
	}
	if rep.Scanned != len(f.targets) || rep.Unreachable != 1 {
		t.Errorf("scanned %d (unreachable %d), want %d (1)", rep.Scanned, rep.Unreachable, len(f.targets))
	}
	for _, id := range rep.Identities {
		if id.Subject == "" || id.NotAfter.IsZero() || id.SPKISHA256 == "" || id.KeyAlgorithm != "ECDSA" || len(id.DER) == 0 {
			t.Errorf("identity missing fields: %+v", id)
		}
	}
}

func TestScanNetCancel(t *testing.T) {
	// Ten tarpits and a one-minute timeout: cancelling must end the scan at
	// once and keep what was found before.
	var targets []string
	for range 10 {
		targets = append(targets, fmt.Sprintf("127.0.0.1:%d", listen(t, "127.0.0.1", func(c net.Conn) {
			defer c.Close()
			time.Sleep(30 * time.Second)
		})))
	}
	cert := testCert(t, "ok.test", nil, false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	targets = append([]string{fmt.Sprintf("127.0.0.1:%d", listen(t, "127.0.0.1", tlsServer(cert, 0, 0)))}, targets...)
	ts, _ := ParseTargets(targets, nil, nil)
	col := inventory.NewCollector()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ScanNet(ctx, ts, NetOptions{Concurrency: 2, Timeout: time.Minute}, col) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if n, _, _ := col.Counts(); n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("cancelled scan returned nil")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("scan did not stop after cancel")
	}
	if n, _, _ := col.Counts(); n != 1 {
		t.Errorf("partial results: %d identities, want 1", n)
	}
}

// smtpServer speaks just enough SMTP for STARTTLS, then TLS.
func smtpServer(cert tls.Certificate) func(net.Conn) {
	return func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		fmt.Fprint(c, "220 mx.test ESMTP\r\n")
		if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "EHLO") {
			return
		}
		fmt.Fprint(c, "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
		if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "STARTTLS") {
			return
		}
		fmt.Fprint(c, "220 go ahead\r\n")
		_ = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
	}
}

func imapServer(cert tls.Certificate) func(net.Conn) {
	return func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		fmt.Fprint(c, "* OK IMAP4rev1 ready\r\n")
		l, _ := r.ReadString('\n')
		tag, _, _ := strings.Cut(l, " ")
		fmt.Fprintf(c, "%s OK begin TLS\r\n", tag)
		_ = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
	}
}

func pop3Server(cert tls.Certificate) func(net.Conn) {
	return func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		fmt.Fprint(c, "+OK POP3 ready\r\n")
		_, _ = r.ReadString('\n')
		fmt.Fprint(c, "+OK begin TLS\r\n")
		_ = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
	}
}

// ldapServer answers an LDAP StartTLS extended request with success.
func ldapServer(cert tls.Certificate) func(net.Conn) {
	return func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		req := make([]byte, 31) // the scanner's fixed 31-byte request
		if _, err := io.ReadFull(c, req); err != nil || req[0] != 0x30 || req[5] != 0x77 {
			return
		}
		// ExtendedResponse, messageID 1, resultCode success, empty DN and message.
		_, _ = c.Write([]byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00})
		_ = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
	}
}

func TestScanNetStartTLS(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		proto  string
		server func(tls.Certificate) func(net.Conn)
	}{{"smtp", smtpServer}, {"imap", imapServer}, {"pop3", pop3Server}, {"ldap", ldapServer}} {
		t.Run(tc.proto, func(t *testing.T) {
			cert := testCert(t, tc.proto+".test", nil, false, now.Add(-time.Hour), now.Add(time.Hour))
			port := listen(t, "127.0.0.1", tc.server(cert))
			ts, _ := ParseTargets([]string{fmt.Sprintf("127.0.0.1:%d", port)}, nil, nil)
			col := inventory.NewCollector()
			if err := ScanNet(t.Context(), ts, NetOptions{Timeout: 3 * time.Second, StartTLS: tc.proto}, col); err != nil {
				t.Fatal(err)
			}
			rep := col.Report("net", "")
			if len(rep.Identities) != 1 || rep.Identities[0].Fingerprint != inventory.SHA256Hex(cert.Certificate[0]) {
				t.Errorf("identities = %+v, errors = %+v", rep.Identities, rep.Errors)
			}
		})
	}
}

func TestScanNetSNI(t *testing.T) {
	now := time.Now()
	a := testCert(t, "a.test", nil, false, now.Add(-time.Hour), now.Add(time.Hour))
	b := testCert(t, "b.test", nil, false, now.Add(-time.Hour), now.Add(time.Hour))
	cfg := &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if h.ServerName == "b.test" {
			return &b, nil
		}
		return &a, nil
	}}
	port := listen(t, "127.0.0.1", func(c net.Conn) { defer c.Close(); _ = tls.Server(c, cfg).Handshake() })
	ts, err := ParseTargets([]string{"127.0.0.1"}, []int{port}, []string{"b.test"})
	if err != nil {
		t.Fatal(err)
	}
	col := inventory.NewCollector()
	if err := ScanNet(t.Context(), ts, NetOptions{Timeout: 3 * time.Second}, col); err != nil {
		t.Fatal(err)
	}
	rep := col.Report("net", "")
	got := map[string]string{}
	for _, l := range rep.Locations {
		got[l.SNI] = l.Fingerprint
	}
	want := map[string]string{"": inventory.SHA256Hex(a.Certificate[0]), "b.test": inventory.SHA256Hex(b.Certificate[0])}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("by SNI: got %v, want %v", got, want)
	}
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		specs []string
		ports []int
		sni   []string
		count int64
		first []string
	}{
		{[]string{"10.0.0.0/30"}, []int{443, 8443}, nil, 8, []string{"10.0.0.0:443", "10.0.0.0:8443", "10.0.0.1:443"}},
		{[]string{"web.test:8443"}, []int{443}, nil, 1, []string{"web.test:8443"}},
		{[]string{"web.test"}, nil, []string{"web.test", "x.test"}, 2, []string{"web.test:443", "web.test:443 (sni x.test)"}},
		{[]string{"[::1]:8443", "127.0.0.1"}, nil, nil, 2, []string{"[::1]:8443", "127.0.0.1:443"}},
		{[]string{"10.0.0.0/8"}, nil, nil, 1 << 24, []string{"10.0.0.0:443", "10.0.0.1:443"}},
		{[]string{"fd00::/16"}, nil, nil, 1<<63 - 1, []string{"[fd00::]:443"}},
	} {
		ts, err := ParseTargets(tc.specs, tc.ports, tc.sni)
		if err != nil {
			t.Fatalf("%v: %v", tc.specs, err)
		}
		if ts.Count() != tc.count {
			t.Errorf("%v: count %d, want %d", tc.specs, ts.Count(), tc.count)
		}
		var got []string
		for ep := range ts.All() {
			got = append(got, ep.String())
			if len(got) == len(tc.first) {
				break
			}
		}
		if !slices.Equal(got, tc.first) {
			t.Errorf("%v: first endpoints %v, want %v", tc.specs, got, tc.first)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "host:0", "host:99999", "a b", "exa mple.com", "x/y"} {
		if _, err := ParseTargets([]string{bad}, nil, nil); err == nil {
			t.Errorf("ParseTargets(%q) accepted", bad)
		}
	}
	if _, err := ParseTargets([]string{"h"}, []int{0}, nil); err == nil {
		t.Error("port 0 accepted")
	}
}

// TestScanNetLegacy: a TLS 1.0 server offering only RSA key exchange with
// 3DES, which Go's defaults no longer offer: the scanner still records it.
func TestScanNetLegacy(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "legacy.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	for _, suite := range []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA} {
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10,
			CipherSuites: []uint16{suite}}
		port := listen(t, "127.0.0.1", func(c net.Conn) { defer c.Close(); _ = tls.Server(c, cfg).Handshake() })
		ts, _ := ParseTargets([]string{fmt.Sprintf("127.0.0.1:%d", port)}, nil, nil)
		col := inventory.NewCollector()
		if err := ScanNet(t.Context(), ts, NetOptions{Timeout: 3 * time.Second}, col); err != nil {
			t.Fatal(err)
		}
		rep := col.Report("net", "")
		if len(rep.Locations) != 1 || rep.Locations[0].CipherSuite != tls.CipherSuiteName(suite) || rep.Locations[0].TLSVersion != "TLS 1.0" {
			t.Errorf("%s: locations %+v errors %+v", tls.CipherSuiteName(suite), rep.Locations, rep.Errors)
		}
	}
}

// TestScanNetHostile: a server presenting a 100-certificate chain and a
// certificate with absurd fields is recorded within bounds.
func TestScanNetHostile(t *testing.T) {
	now := time.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var names []string
	for i := range 3000 {
		names = append(names, fmt.Sprintf("n%d.%s.test", i, strings.Repeat("x", 50)))
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: strings.Repeat("A", 5000),
		Organization: []string{strings.Repeat("O", 5000)}}, NotBefore: now, NotAfter: now.Add(time.Hour), DNSNames: names}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	absurd := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	long := testCert(t, "long.test", nil, false, now, now.Add(time.Hour))
	// 99 distinct "intermediates", so each chain position is its own identity.
	for i := range 99 {
		c := testCert(t, fmt.Sprintf("junk-%d", i), nil, true, now, now.Add(time.Hour))
		long.Certificate = append(long.Certificate, c.Certificate[0])
	}
	var targets []string
	for _, c := range []tls.Certificate{absurd, long} {
		targets = append(targets, fmt.Sprintf("127.0.0.1:%d", listen(t, "127.0.0.1", tlsServer(c, 0, 0))))
	}
	ts, _ := ParseTargets(targets, nil, nil)
	col := inventory.NewCollector()
	if err := ScanNet(t.Context(), ts, NetOptions{Timeout: 5 * time.Second}, col); err != nil {
		t.Fatal(err)
	}
	rep := col.Report("net", "")
	if len(rep.Identities) != 1+16 {
		t.Errorf("got %d identities, want 17 (the absurd one and 16 of the long chain); errors %v", len(rep.Identities), rep.Errors)
	}
	if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Error, "recorded the first 16") {
		t.Errorf("errors = %v", rep.Errors)
	}
	for _, id := range rep.Identities {
		if len(id.Subject) > 2000 || len(id.SANs) > 256 {
			t.Errorf("unbounded fields: subject %d bytes, %d SANs", len(id.Subject), len(id.SANs))
		}
	}
}

// TestScanNetRate: --rate spaces connections (a lower bound only: a loaded
// machine can only make the scan slower).
func TestScanNetRate(t *testing.T) {
	ts, _ := ParseTargets([]string{"127.0.0.0/28"}, []int{1}, nil)
	start := time.Now()
	col := inventory.NewCollector()
	if err := ScanNet(t.Context(), ts, NetOptions{Rate: 20, Timeout: time.Second}, col); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 700*time.Millisecond {
		t.Errorf("16 connections at 20/s took %v, want ≥ 750ms", el)
	}
	if r := col.Report("net", ""); r.Scanned != 16 {
		t.Errorf("scanned %d", r.Scanned)
	}
}
