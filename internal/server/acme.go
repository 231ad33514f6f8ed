package server

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/acme"
	"github.com/sigil-pki/sigil/internal/keys"
)

// ACMEConfig configures the ACME server's validation network and limits.
type ACMEConfig struct {
	// Resolve maps names to addresses for validation (NAME=ADDR), like
	// Pebble's -resolve: labs, air-gapped setups and tests.
	Resolve     []string
	DNSResolver string // host[:port] of the DNS server for lookups and dns-01
	HTTPPort    int    // port http-01 is validated on (default 80)
	TLSPort     int    // port tls-alpn-01 is validated on (default 443)
	// Rate limits on new orders within RateWindow; 0 disables.
	OrdersPerAccount int
	OrdersPerName    int
	RateWindow       time.Duration
}

// ParseResolve parses NAME=ADDR mappings.
func ParseResolve(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, m := range list {
		name, addr, ok := strings.Cut(m, "=")
		if !ok || name == "" || net.ParseIP(addr) == nil {
			return nil, fmt.Errorf("--acme-resolve %q: want NAME=IP", m)
		}
		out[strings.ToLower(name)] = addr
	}
	return out, nil
}

// setupACME builds the ACME server; the KEK seals its nonce key and EAB keys.
func (s *Server) setupACME(kek *keys.KEK) error {
	res, err := ParseResolve(s.cfg.ACME.Resolve)
	if err != nil {
		return err
	}
	s.ra.SetSealer(kek)
	s.acme = acme.New(acme.Config{
		RA: s.ra, KEK: kek, Log: s.log, Now: time.Now,
		Resolve: res, DNSResolver: s.cfg.ACME.DNSResolver,
		HTTPPort: s.cfg.ACME.HTTPPort, TLSPort: s.cfg.ACME.TLSPort,
		OrdersPerAccount: s.cfg.ACME.OrdersPerAccount, OrdersPerName: s.cfg.ACME.OrdersPerName, RateWindow: s.cfg.ACME.RateWindow,
	})
	return nil
}

// withACME serves /acme/ from the ACME server and everything else from h.
func (s *Server) withACME(h http.Handler) http.Handler {
	if s.acme == nil {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("/acme/", s.acme.Handler())
	mux.Handle("/", h)
	return mux
}
