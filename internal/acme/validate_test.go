package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestHTTP01Bounds: the validator follows at most 10 redirects, only to
// the validation ports, reads at most 8 KiB, and compares exactly.
func TestHTTP01Bounds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	var hops atomic.Int32
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/")
		switch tok {
		case "ok":
			_, _ = io.WriteString(w, "ok.thumb\n")
		case "loop":
			hops.Add(1)
			http.Redirect(w, r, "/.well-known/acme-challenge/loop", http.StatusFound)
		case "otherport":
			http.Redirect(w, r, "http://a.test:1/x", http.StatusFound)
		case "big":
			_, _ = io.WriteString(w, "ok.thumb"+strings.Repeat(" ", 9<<10))
		case "wrong":
			_, _ = io.WriteString(w, "other.thumb")
		default:
			http.NotFound(w, r)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	v := newValidator(Config{Resolve: map[string]string{"*.test": "127.0.0.1"}, HTTPPort: port, TLSPort: 1})
	for _, tc := range []struct {
		token string
		ok    bool
		want  string
	}{
		{"ok", true, ""},
		{"loop", false, "redirects"},
		{"otherport", false, "not allowed"},
		{"big", false, "over"},
		{"wrong", false, "wrong"},
		{"missing", false, "404"},
	} {
		t.Run(tc.token, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			ka := "ok.thumb"
			p := v.http01(ctx, "a.test", tc.token, ka)
			if (p == nil) != tc.ok || (p != nil && !strings.Contains(p.Detail, tc.want)) {
				t.Fatalf("got %v, want ok=%v containing %q", p, tc.ok, tc.want)
			}
		})
	}
	if n := hops.Load(); n > maxRedirects+1 {
		t.Errorf("followed %d redirects", n)
	}
	// A name with no mapping and no DNS answer fails cleanly.
	v2 := newValidator(Config{HTTPPort: port, TLSPort: 1, DNSResolver: "127.0.0.1:" + strconv.Itoa(port)})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if p := v2.http01(ctx, "unmapped.invalid", "ok", "ok.thumb"); p == nil {
		t.Fatal("validated an unresolvable name")
	}
}

// TestALPNCert checks the RFC 8737 certificate rules.
func TestALPNCert(t *testing.T) {
	ka := "tok.thumb"
	sum := sha256.Sum256([]byte(ka))
	val, _ := asn1.Marshal(sum[:])
	wrong := sha256.Sum256([]byte("other"))
	wrongVal, _ := asn1.Marshal(wrong[:])
	for _, tc := range []struct {
		name  string
		names []string
		ext   []pkix.Extension
		ok    bool
	}{
		{"valid", []string{"a.test"}, []pkix.Extension{{Id: idPeACMEIdentifier, Critical: true, Value: val}}, true},
		{"not critical", []string{"a.test"}, []pkix.Extension{{Id: idPeACMEIdentifier, Value: val}}, false},
		{"wrong digest", []string{"a.test"}, []pkix.Extension{{Id: idPeACMEIdentifier, Critical: true, Value: wrongVal}}, false},
		{"no extension", []string{"a.test"}, nil, false},
		{"extra name", []string{"a.test", "b.test"}, []pkix.Extension{{Id: idPeACMEIdentifier, Critical: true, Value: val}}, false},
		{"other name", []string{"b.test"}, []pkix.Extension{{Id: idPeACMEIdentifier, Critical: true, Value: val}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: tc.names, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), ExtraExtensions: tc.ext}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := x509.ParseCertificate(der)
			if p := checkALPNCert(c, "a.test", ka); (p == nil) != tc.ok {
				t.Fatalf("got %v, want ok=%v", p, tc.ok)
			}
		})
	}
}

// TestALPNCertIP checks the RFC 8738 §6 certificate rules for an address:
// exactly one iPAddress SAN, the validated one, and no DNS name.
func TestALPNCertIP(t *testing.T) {
	ka := "tok.thumb"
	sum := sha256.Sum256([]byte(ka))
	val, _ := asn1.Marshal(sum[:])
	ext := []pkix.Extension{{Id: idPeACMEIdentifier, Critical: true, Value: val}}
	for _, tc := range []struct {
		name   string
		target string
		ips    []string
		dns    []string
		ok     bool
	}{
		{"valid v4", "127.0.0.1", []string{"127.0.0.1"}, nil, true},
		{"valid v6", "2001:db8::1", []string{"2001:db8::1"}, nil, true},
		{"other address", "127.0.0.1", []string{"127.0.0.2"}, nil, false},
		{"two addresses", "127.0.0.1", []string{"127.0.0.1", "127.0.0.2"}, nil, false},
		{"address and DNS name", "127.0.0.1", []string{"127.0.0.1"}, []string{"a.test"}, false},
		{"DNS name for an address", "127.0.0.1", nil, []string{"1.0.0.127.in-addr.arpa"}, false},
		{"address for a DNS name", "a.test", []string{"127.0.0.1"}, []string{"a.test"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: tc.dns, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), ExtraExtensions: ext}
			for _, s := range tc.ips {
				tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(s))
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := x509.ParseCertificate(der)
			if p := checkALPNCert(c, tc.target, ka); (p == nil) != tc.ok {
				t.Fatalf("got %v, want ok=%v", p, tc.ok)
			}
		})
	}
}

// TestReverseName: the SNI of an address's tls-alpn-01 validation.
func TestReverseName(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"127.0.0.1", "1.0.0.127.in-addr.arpa"},
		{"192.0.2.10", "10.2.0.192.in-addr.arpa"},
		{"2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"},
	} {
		if got := reverseName(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("reverseName(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
}

// TestNormalizeIP: accepted forms, canonical output, refusals.
func TestNormalizeIP(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1", "127.0.0.1"},
		{"2001:DB8:0:0::1", "2001:db8::1"},
		{"::ffff:127.0.0.1", "127.0.0.1"},
		{"fe80::1%eth0", ""},
		{"127.1", ""},
		{"", ""},
		{"app.test", ""},
	} {
		a, err := normalizeIP(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("normalizeIP(%q) = %v, want an error", tc.in, a)
			}
			continue
		}
		if err != nil || a.String() != tc.want {
			t.Errorf("normalizeIP(%q) = %v %v, want %s", tc.in, a, err, tc.want)
		}
	}
}

// TestTLSALPN01IPSNI: validating an address over tls-alpn-01 sends its
// in-addr.arpa name as SNI (RFC 8738 §6) and accepts the address's
// certificate; a DNS-name certificate for the same address is refused.
func TestTLSALPN01IPSNI(t *testing.T) {
	ka := "tok.thumb"
	sum := sha256.Sum256([]byte(ka))
	val, _ := asn1.Marshal(sum[:])
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mk := func(tmpl *x509.Certificate) tls.Certificate {
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(1), time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
		tmpl.ExtraExtensions = []pkix.Extension{{Id: idPeACMEIdentifier, Critical: true, Value: val}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	good := mk(&x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	bad := mk(&x509.Certificate{DNSNames: []string{"1.0.0.127.in-addr.arpa"}})
	var sni atomic.Value
	var serveBad atomic.Bool
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{NextProtos: []string{tlsALPNProto}, GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		sni.Store(h.ServerName)
		if serveBad.Load() {
			return &bad, nil
		}
		return &good, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	v := newValidator(Config{HTTPPort: 1, TLSPort: ln.Addr().(*net.TCPAddr).Port})
	id := Ident{Type: "ip", Value: "127.0.0.1"}
	if p := v.validate(t.Context(), chTLSALPN1, id, "tok", ka); p != nil {
		t.Fatalf("valid address certificate refused: %v", p)
	}
	if got, _ := sni.Load().(string); got != "1.0.0.127.in-addr.arpa" {
		t.Fatalf("SNI %q, want 1.0.0.127.in-addr.arpa", got)
	}
	serveBad.Store(true)
	if p := v.validate(t.Context(), chTLSALPN1, id, "tok", ka); p == nil {
		t.Fatal("a certificate naming the reverse DNS name instead of the address was accepted")
	}
	if p := v.validate(t.Context(), chDNS01, id, "tok", ka); p == nil {
		t.Fatal("dns-01 for an address was attempted")
	}
}
