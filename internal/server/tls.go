package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

// serverCertTTL is the lifetime of the server's own TLS certificate; it is
// renewed at two thirds of it. Its key lives only in memory, so no TLS key
// sits unencrypted on disk: a restart simply gets a new certificate.
const serverCertTTL = 30 * 24 * time.Hour

func (s *Server) ensureTLSCert(ctx context.Context) error {
	key, err := keys.GenerateKey(identity.KeyECDSAP256)
	if err != nil {
		return err
	}
	dns, ips := s.tlsNames()
	out, err := s.ra.IssueInternal(ctx, key.Public(), dns, ips, serverCertTTL)
	if err != nil {
		return fmt.Errorf("issuing the server's TLS certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(out.Record.DER)
	if err != nil {
		return err
	}
	chain := [][]byte{out.Record.DER}
	iss, err := s.ra.CA().Issuer(out.Record.IssuerID)
	if err != nil {
		return err
	}
	chain = append(chain, iss.Cert.Raw)
	for _, c := range iss.Chain {
		if len(c.RawIssuer) > 0 && string(c.RawIssuer) != string(c.RawSubject) {
			chain = append(chain, c.Raw)
		}
	}
	old := s.tlsCert.Swap(&tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf})
	renewAt := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
	s.tlsNotAfter.Store(renewAt.Unix())
	if old != nil && old.Leaf != nil {
		// The replaced certificate's key is gone from memory: nothing should
		// accept it any more.
		serial := identity.SerialFromBig(old.Leaf.SerialNumber)
		if _, err := s.ra.Revoke(ctx, ra.Caller{}, serial, identity.ReasonSuperseded); err != nil {
			s.log.Warn("revoking the replaced server certificate", "serial", serial, "err", err)
		}
	}
	return nil
}

// tlsNames are the names the server's certificate covers: loopback, the
// host name, the listen address when it is specific, and configured names.
func (s *Server) tlsNames() ([]string, []net.IP) {
	dns := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" && !strings.ContainsAny(h, " _") {
		dns = append(dns, strings.ToLower(h))
	}
	extra := slices.Clone(s.cfg.TLSNames)
	if host, _, err := net.SplitHostPort(s.apiLn.Addr().String()); err == nil {
		extra = append(extra, host)
	}
	for _, n := range extra {
		if ip := net.ParseIP(n); ip != nil {
			if !ip.IsUnspecified() && !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if n != "" && !slices.Contains(dns, strings.ToLower(n)) {
			dns = append(dns, strings.ToLower(n))
		}
	}
	return dns, ips
}

// ensureAdminToken creates the first admin token on first start and writes
// it to admin.token (0600). Later starts leave tokens alone.
func ensureAdminToken(ctx context.Context, dir string, st store.Reader, r *ra.RA) error {
	ts, err := st.ListTokens(ctx)
	if err != nil {
		return fmt.Errorf("listing tokens: %w", err)
	}
	if len(ts) > 0 {
		return nil
	}
	plain, _, err := r.CreateToken(ctx, ra.Caller{}, ra.TokenRequest{Role: identity.RoleAdmin, Name: "initial-admin"})
	if err != nil {
		return fmt.Errorf("creating the admin token: %w", err)
	}
	return keys.WriteFileAtomic(filepath.Join(dir, "admin.token"), []byte(plain+"\n"), 0o600)
}
