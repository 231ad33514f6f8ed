package acme

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Validation limits.
const (
	maxRedirects  = 10
	maxChallBody  = 8 << 10
	tlsALPNProto  = "acme-tls/1"
	dialTimeout   = 5 * time.Second
	maxTXTRecords = 50
)

// idPeACMEIdentifier is the tls-alpn-01 extension (RFC 8737 §3).
var idPeACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// validator performs challenge validations from a configurable network
// view: --acme-resolve mappings first, then the configured DNS server (or
// the system resolver).
type validator struct {
	resolve  map[string]string
	resolver *net.Resolver
	httpPort int
	tlsPort  int
}

func newValidator(cfg Config) *validator {
	v := &validator{resolve: map[string]string{}, resolver: net.DefaultResolver, httpPort: cfg.HTTPPort, tlsPort: cfg.TLSPort}
	for k, a := range cfg.Resolve {
		v.resolve[strings.ToLower(strings.TrimSuffix(k, "."))] = a
	}
	if cfg.DNSResolver != "" {
		addr := cfg.DNSResolver
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, "53")
		}
		d := &net.Dialer{Timeout: dialTimeout}
		v.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}
	}
	return v
}

// dial connects to host:port through the mappings.
func (v *validator) dial(ctx context.Context, network, hostport string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: dialTimeout}
	if a, ok := v.lookupMapped(host); ok {
		return d.DialContext(ctx, network, net.JoinHostPort(a, port))
	}
	if ip := net.ParseIP(host); ip != nil {
		return d.DialContext(ctx, network, hostport)
	}
	ips, err := v.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("no address for %s", host)
	}
	return d.DialContext(ctx, network, net.JoinHostPort(ips[0].IP.String(), port))
}

func connProblem(format string, args ...any) *Problem {
	return prob("connection", http.StatusBadRequest, format, args...)
}

func (v *validator) validate(ctx context.Context, typ string, id Ident, token, keyAuth string) *Problem {
	switch {
	case typ == chHTTP01:
		return v.http01(ctx, id.Value, token, keyAuth)
	case typ == chDNS01 && id.Type == "dns":
		return v.dns01(ctx, id.Value, keyAuth)
	case typ == chTLSALPN1 && id.Type == "ip":
		a, err := netip.ParseAddr(id.Value)
		if err != nil {
			return malformed("stored ip identifier %q: %v", id.Value, err)
		}
		return v.tlsALPN01(ctx, id.Value, reverseName(a), keyAuth)
	case typ == chTLSALPN1:
		return v.tlsALPN01(ctx, id.Value, id.Value, keyAuth)
	}
	return malformed("unknown challenge type %q", typ)
}

func (v *validator) http01(ctx context.Context, name, token, keyAuth string) *Problem {
	tr := &http.Transport{
		DialContext:           v.dial,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: true}, // RFC 8555 §8.3: redirects to HTTPS need not present a valid certificate
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 5 * time.Second,
		Proxy:                 nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("more than %d redirects", maxRedirects)
		}
		p := req.URL.Port()
		if (req.URL.Scheme == "http" && p != "" && p != strconv.Itoa(v.httpPort)) || (req.URL.Scheme == "https" && p != "" && p != strconv.Itoa(v.tlsPort)) || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
			return fmt.Errorf("redirect to %s is not allowed (only the validation ports)", req.URL.Redacted())
		}
		return nil
	}}
	u := "http://" + net.JoinHostPort(name, strconv.Itoa(v.httpPort)) + "/.well-known/acme-challenge/" + token
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return malformed("%v", err)
	}
	req.Header.Set("User-Agent", "sigil-acme-validator")
	resp, err := client.Do(req)
	if err != nil {
		return connProblem("fetching %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return unauthorized("fetching %s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxChallBody+1))
	if err != nil {
		return connProblem("reading %s: %v", u, err)
	}
	if len(body) > maxChallBody {
		return unauthorized("the response from %s is over %d bytes", u, maxChallBody)
	}
	if got := bytes.TrimRight(body, " \t\r\n"); subtle.ConstantTimeCompare(got, []byte(keyAuth)) != 1 {
		return unauthorized("the key authorization at %s is wrong", u)
	}
	return nil
}

func digest(keyAuth string) string {
	d := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(d[:])
}

func (v *validator) dns01(ctx context.Context, name, keyAuth string) *Problem {
	q := "_acme-challenge." + name
	txts, err := v.resolver.LookupTXT(ctx, q)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return unauthorized("no TXT record at %s", q)
		}
		return prob("dns", http.StatusBadRequest, "looking up TXT %s: %v", q, err)
	}
	want := digest(keyAuth)
	for i, t := range txts {
		if i >= maxTXTRecords {
			break
		}
		if subtle.ConstantTimeCompare([]byte(t), []byte(want)) == 1 {
			return nil
		}
	}
	return unauthorized("no TXT record at %s holds the expected digest", q)
}

// reverseName is the in-addr.arpa / ip6.arpa name of an address, without
// the trailing dot: the SNI of a tls-alpn-01 validation of an IP address
// (RFC 8738 §6), as SNI cannot carry an address.
func reverseName(a netip.Addr) string {
	var b strings.Builder
	if a.Is4() {
		o := a.As4()
		for i := 3; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(o[i])))
			b.WriteByte('.')
		}
		b.WriteString("in-addr.arpa")
		return b.String()
	}
	const hex = "0123456789abcdef"
	o := a.As16()
	for i := 15; i >= 0; i-- {
		b.WriteByte(hex[o[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[o[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa")
	return b.String()
}

// tlsALPN01 connects to name (a DNS name or an IP address) with SNI sni.
func (v *validator) tlsALPN01(ctx context.Context, name, sni, keyAuth string) *Problem {
	raw, err := v.dial(ctx, "tcp", net.JoinHostPort(name, strconv.Itoa(v.tlsPort)))
	if err != nil {
		return connProblem("connecting to %s: %v", name, err)
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	conn := tls.Client(raw, &tls.Config{ServerName: sni, NextProtos: []string{tlsALPNProto}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err := conn.HandshakeContext(ctx); err != nil {
		return prob("tls", http.StatusBadRequest, "TLS handshake with %s: %v", name, err)
	}
	st := conn.ConnectionState()
	if st.NegotiatedProtocol != tlsALPNProto {
		return unauthorized("%s did not negotiate ALPN %s", name, tlsALPNProto)
	}
	if len(st.PeerCertificates) != 1 {
		return unauthorized("%s must present exactly one self-signed certificate", name)
	}
	return checkALPNCert(st.PeerCertificates[0], name, keyAuth)
}

// checkALPNCert checks the tls-alpn-01 certificate: exactly one SAN, the
// DNS name or (RFC 8738 §6) the IP address validated, and the digest.
func checkALPNCert(c *x509.Certificate, name, keyAuth string) *Problem {
	if a, err := netip.ParseAddr(name); err == nil {
		var got netip.Addr
		if len(c.IPAddresses) == 1 {
			got, _ = netip.AddrFromSlice(c.IPAddresses[0])
		}
		if len(c.DNSNames) > 0 || len(c.IPAddresses) != 1 || got.Unmap() != a.Unmap() {
			return unauthorized("the tls-alpn-01 certificate must name exactly the address %s", name)
		}
	} else if len(c.DNSNames) != 1 || !strings.EqualFold(c.DNSNames[0], name) || len(c.IPAddresses) > 0 {
		return unauthorized("the tls-alpn-01 certificate must name exactly %s", name)
	}
	if len(c.URIs) > 0 || len(c.EmailAddresses) > 0 {
		return unauthorized("the tls-alpn-01 certificate must carry one name only")
	}
	want := sha256.Sum256([]byte(keyAuth))
	for _, e := range c.Extensions {
		if !e.Id.Equal(idPeACMEIdentifier) {
			continue
		}
		if !e.Critical {
			return unauthorized("the acmeIdentifier extension must be critical")
		}
		var got []byte
		if rest, err := asn1.Unmarshal(e.Value, &got); err != nil || len(rest) > 0 {
			return unauthorized("the acmeIdentifier extension is malformed")
		}
		if subtle.ConstantTimeCompare(got, want[:]) != 1 {
			return unauthorized("the acmeIdentifier digest is wrong")
		}
		return nil
	}
	return unauthorized("the certificate has no acmeIdentifier extension")
}

// lookupMapped finds a --acme-resolve mapping: the exact name, or a
// "*.suffix" entry for any name under suffix.
func (v *validator) lookupMapped(host string) (string, bool) {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if a, ok := v.resolve[h]; ok {
		return a, true
	}
	for i := strings.IndexByte(h, '.'); i >= 0; i = strings.IndexByte(h, '.') {
		h = h[i+1:]
		if a, ok := v.resolve["*."+h]; ok {
			return a, true
		}
	}
	return "", false
}
