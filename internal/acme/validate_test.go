package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net"
	"net/http"
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
