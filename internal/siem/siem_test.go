package siem

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/siem/siemtest"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/sqlite"
)

var t0 = time.Date(2026, 11, 23, 4, 5, 6, 123456000, time.UTC)

func event(seq int64, action, object, result, detail string) *audit.Event {
	return &audit.Event{Seq: seq, Time: t0, Actor: "token:0123456789abcdef(ci)", Action: action, Object: object, Result: result, Detail: detail, PrevHash: audit.GenesisHash, Hash: strings.Repeat("ab", 32)}
}

func parse5424(t testing.TB, msg []byte) *rfc5424.SyslogMessage {
	t.Helper()
	m, err := rfc5424.NewParser().Parse(msg)
	if err != nil {
		t.Fatalf("RFC 5424 parser refused %q: %v", msg, err)
	}
	return m.(*rfc5424.SyslogMessage)
}

func TestSyslogFormat(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ev       *audit.Event
		severity uint8
	}{
		{"success", event(1, "cert.issue", "1f2e", audit.ResultSuccess, `{"profile":"web"}`), 6},
		{"refused", event(2, "cert.issue", "web", audit.ResultRefused, `{"error":"name \"x]\" not allowed\\"}`), 4},
		{"error", event(3, "crl.publish", "", audit.ResultError, ""), 3},
		{"hostile", event(4, "auth", "GET /api/v1/x y]\"\\\n", audit.ResultRefused, "line1\nline2"), 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := parse5424(t, Syslog(tc.ev, "ca-1.example"))
			if *m.Facility != 13 || *m.Severity != tc.severity || m.Version != 1 {
				t.Errorf("facility/severity/version = %d/%d/%d", *m.Facility, *m.Severity, m.Version)
			}
			if !m.Timestamp.Equal(t0) || *m.Hostname != "ca-1.example" || *m.Appname != "sigil" || *m.MsgID != tc.ev.Action {
				t.Errorf("header: %v %s %s %s", m.Timestamp, *m.Hostname, *m.Appname, *m.MsgID)
			}
			sd := (*m.StructuredData)[sdID]
			if sd["actor"] != tc.ev.Actor || sd["action"] != tc.ev.Action || sd["object"] != tc.ev.Object || sd["result"] != tc.ev.Result || sd["seq"] != itoa(tc.ev.Seq) || sd["hash"] != tc.ev.Hash {
				t.Errorf("structured data = %v", sd)
			}
			var back audit.Event
			if err := json.Unmarshal([]byte(*m.Message), &back); err != nil {
				t.Fatalf("MSG is not the event as JSON: %v", err)
			}
			if back.ComputeHash(back.PrevHash) != tc.ev.ComputeHash(tc.ev.PrevHash) {
				t.Errorf("MSG round trip changed the event: %+v", back)
			}
		})
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// parseCEF splits a CEF line into its 7 header fields and extension map,
// undoing the escapes, as a SIEM would.
func parseCEF(t *testing.T, line string) ([]string, map[string]string) {
	t.Helper()
	var hdr []string
	var cur strings.Builder
	i := 0
	for ; i < len(line) && len(hdr) < 7; i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '|':
			hdr = append(hdr, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if len(hdr) != 7 {
		t.Fatalf("CEF header has %d fields: %q", len(hdr), line)
	}
	ext := map[string]string{}
	rest := line[i:]
	// Keys are [A-Za-z0-9]+ followed by an unescaped '='; a value runs to
	// the next " key=".
	var key string
	var val strings.Builder
	flush := func() {
		if key != "" {
			ext[key] = val.String()
		}
		val.Reset()
	}
	for j := 0; j < len(rest); j++ {
		if j == 0 || rest[j] == ' ' {
			k := j
			if rest[j] == ' ' {
				k++
			}
			e := k
			for e < len(rest) && (rest[e] >= 'a' && rest[e] <= 'z' || rest[e] >= 'A' && rest[e] <= 'Z' || rest[e] >= '0' && rest[e] <= '9') {
				e++
			}
			if e > k && e < len(rest) && rest[e] == '=' {
				flush()
				key = rest[k:e]
				j = e
				continue
			}
		}
		c := rest[j]
		if c == '\\' && j+1 < len(rest) {
			j++
			switch rest[j] {
			case 'n':
				val.WriteByte('\n')
			case 'r':
				val.WriteByte('\r')
			default:
				val.WriteByte(rest[j])
			}
			continue
		}
		val.WriteByte(c)
	}
	flush()
	return hdr, ext
}

func TestCEFFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   *audit.Event
		sev  string
	}{
		{"plain", event(7, "cert.revoke", "abc", audit.ResultSuccess, `{"reason":"keyCompromise"}`), "3"},
		{"escapes", event(8, "cert|issue\\x", "a=b c", audit.ResultRefused, "x=1\\2\nnext | pipe"), "6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := CEF(tc.ev)
			if strings.ContainsAny(line, "\r\n") {
				t.Fatalf("CEF line contains a line break: %q", line)
			}
			hdr, ext := parseCEF(t, line)
			if hdr[0] != "CEF:0" || hdr[1] != "Sigil" || hdr[4] != tc.ev.Action || hdr[6] != tc.sev {
				t.Errorf("header = %q", hdr)
			}
			want := map[string]string{"suser": tc.ev.Actor, "act": tc.ev.Action, "outcome": tc.ev.Result, "cs1": tc.ev.Object, "cs2": tc.ev.Hash, "msg": tc.ev.Detail, "cn1": itoa(tc.ev.Seq), "rt": itoa(t0.UnixMilli())}
			for k, v := range want {
				if ext[k] != v {
					t.Errorf("extension %s = %q, want %q", k, ext[k], v)
				}
			}
		})
	}
}

func FuzzSyslog(f *testing.F) {
	f.Add("token:x", "cert.issue", "1f", "success", `{"a":"b"}`, "host")
	f.Add("a\"]\\", "x y\x00", "]", "refused", "\xff\xfe", "")
	f.Add("", "", "", "", "", "h o s t")
	f.Fuzz(func(t *testing.T, actor, action, object, result, detail, host string) {
		e := &audit.Event{Seq: 42, Time: t0, Actor: actor, Action: action, Object: object, Result: result, Detail: detail, Hash: "h"}
		m := parse5424(t, Syslog(e, host))
		sd := (*m.StructuredData)[sdID]
		if sd["actor"] != strings.ToValidUTF8(actor, "\uFFFD") || sd["result"] != strings.ToValidUTF8(result, "\uFFFD") {
			t.Fatalf("structured data did not round-trip: %q", sd)
		}
		if strings.ContainsAny(CEF(e), "\r\n") {
			t.Fatal("CEF line break")
		}
	})
}

func TestParseSink(t *testing.T) {
	for _, tc := range []struct {
		in, name, err string
	}{
		{"syslog://127.0.0.1", "udp://127.0.0.1:514", ""},
		{"udp://[::1]:5514", "udp://[::1]:5514", ""},
		{"tcp://collector.test", "tcp://collector.test:601", ""},
		{"syslog+tls://collector.test", "tls://collector.test:6514", ""},
		{"tcp://c.test:1?format=cef", "tcp://c.test:1?format=cef", ""},
		{"http://c.test", "", "unknown scheme"},
		{"tcp://", "", "host is required"},
		{"tcp://c.test?ca=x.pem", "", "tls:// only"},
		{"tcp://c.test?format=xml", "", "unknown format"},
		{"tcp://c.test?retries=3", "", "unknown option"},
		{"tls://c.test?ca=/nonexistent.pem", "", "no such file"},
	} {
		s, err := ParseSink(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSink(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || s.Name() != tc.name {
			t.Errorf("ParseSink(%q) = %v, %v; want %s", tc.in, s, err, tc.name)
		}
	}
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func appendEvents(t *testing.T, st store.Store, actions ...string) {
	t.Helper()
	for _, a := range actions {
		err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			return tx.AppendAudit(ctx, &audit.Event{Time: time.Now(), Actor: "system", Action: a, Object: "obj " + a, Result: audit.ResultSuccess})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestShipperUDPAndTCP(t *testing.T) {
	st := openStore(t)
	appendEvents(t, st, "before.start") // history is not replayed
	uc := siemtest.ListenUDP(t)
	tc := siemtest.ListenTCP(t, "127.0.0.1:0")
	us, err := ParseSink("syslog://" + uc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ParseSink("tcp://" + tc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	sh := &Shipper{Store: st, Sinks: []*Sink{us, ts}, Log: quietLog(), Poll: 20 * time.Millisecond}
	go func() { done <- sh.Run(ctx) }()
	gate := &Gate{Store: st, Required: []string{ts.Name()}}
	waitGate(t, gate, true)

	appendEvents(t, st, "cert.issue", "cert.revoke", "token.create")
	want := []string{"cert.issue", "cert.revoke", "token.create"}
	uc.WaitFor(t, want)
	tc.WaitFor(t, want)
	for _, m := range tc.Messages() {
		if sd := (*m.StructuredData)[sdID]; sd["object"] != "obj "+*m.MsgID {
			t.Errorf("TCP message lost its structured data: %v", sd)
		}
	}

	// The TCP collector goes away: the sink reports the failure, the gate
	// closes, and nothing is lost once a collector listens again.
	addr := tc.Addr
	tc.Stop()
	appendEvents(t, st, "while.down.1")
	// The shipper notices the closed connection (idle probe or failed
	// write); more events make sure a write is attempted too.
	deadline := time.Now().Add(10 * time.Second)
	for gate.Check(t.Context()) == nil && time.Now().Before(deadline) {
		appendEvents(t, st, "while.down")
		time.Sleep(100 * time.Millisecond)
	}
	if gate.Check(t.Context()) == nil {
		t.Fatal("gate stays open while the required TCP sink is down")
	}
	tc2 := siemtest.ListenTCP(t, addr)
	waitGate(t, gate, true)
	appendEvents(t, st, "after.recovery")
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		got := tc2.Actions()
		if len(got) > 0 && got[len(got)-1] == "after.recovery" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := tc2.Actions()
	if len(got) == 0 || got[len(got)-1] != "after.recovery" || !contains(got, "while.down.1") {
		t.Fatalf("after recovery the collector got %v: events written while down must follow", got)
	}
	cancel()
	<-done
	states, _ := st.ListAuditSinkStates(t.Context())
	head, _, _ := st.AuditHead(t.Context())
	for _, s := range states {
		if s.Seq != head {
			t.Errorf("sink %s at seq %d, head %d", s.Sink, s.Seq, head)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func waitGate(t *testing.T, g *Gate, open bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if (g.Check(t.Context()) == nil) == open {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gate open=%v never reached: %v", open, g.Check(t.Context()))
}

func TestGate(t *testing.T) {
	st := openStore(t)
	now := t0
	g := &Gate{Store: st, Required: []string{"tcp://a:1"}, Now: func() time.Time { return now }}
	if err := g.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "not been written") {
		t.Fatalf("no state yet: %v", err)
	}
	put := func(s *store.AuditSinkState) {
		if err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error { return tx.PutAuditSinkState(ctx, s) }); err != nil {
			t.Fatal(err)
		}
	}
	put(&store.AuditSinkState{Sink: "tcp://a:1", Seq: 1, UpdatedAt: now})
	now = now.Add(2 * time.Second)
	if err := g.Check(t.Context()); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	put(&store.AuditSinkState{Sink: "tcp://a:1", Seq: 1, LastError: "connection refused", UpdatedAt: now})
	now = now.Add(2 * time.Second)
	if err := g.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("failing: %v", err)
	}
	put(&store.AuditSinkState{Sink: "tcp://a:1", Seq: 1, UpdatedAt: now})
	now = now.Add(DefaultMaxAge + 2*time.Second)
	if err := g.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "no report") {
		t.Fatalf("stale: %v", err)
	}
	if err := (&Gate{Store: st}).Check(t.Context()); err != nil {
		t.Fatalf("no required sinks: %v", err)
	}
}

// TestShipperTLS ships to a real TLS listener (RFC 5425) trusted through
// ?ca=, and refuses one whose certificate the sink does not trust.
func TestShipperTLS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "collector.test"}, DNSNames: []string{"collector.test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "collector.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	c := siemtest.Serve(t, ln)
	st := openStore(t)
	good, err := ParseSink("tls://" + ln.Addr().String() + "?ca=" + caFile + "&format=cef")
	if err != nil {
		t.Fatal(err)
	}
	untrusted, _ := ParseSink("tls://" + ln.Addr().String())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- (&Shipper{Store: st, Sinks: []*Sink{good, untrusted}, Log: quietLog(), Poll: 20 * time.Millisecond}).Run(ctx)
	}()
	waitGate(t, &Gate{Store: st, Required: []string{good.Name()}}, true)
	appendEvents(t, st, "cert.issue")
	c.WaitFor(t, []string{"cert.issue"})
	msg := *c.Messages()[0].Message
	if !strings.HasPrefix(msg, "CEF:0|Sigil|Sigil|") || !strings.Contains(msg, "act=cert.issue") {
		t.Errorf("CEF over TLS: %q", msg)
	}
	waitGate(t, &Gate{Store: st, Required: []string{untrusted.Name()}}, false)
	if err := (&Gate{Store: st, Required: []string{untrusted.Name()}}).Check(t.Context()); !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted collector: %v", err)
	}
	cancel()
	<-done
}
