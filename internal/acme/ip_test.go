package acme_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net"
	"testing"

	"github.com/go-acme/lego/v4/certificate"

	"github.com/sigil-pki/sigil/internal/identity"
)

// TestLegoIP obtains certificates for an IP address (RFC 8738) with lego,
// over http-01 and over tls-alpn-01 (where the validator's SNI is the
// address's in-addr.arpa name), and checks the certificate names exactly
// the address and chains to Sigil's root.
func TestLegoIP(t *testing.T) {
	for _, tc := range legoChallenges {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			e := newEnv(t, tc.opts(port))
			cl, _ := newLego(t, e)
			tc.set(t, cl, port)
			res, err := cl.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"127.0.0.1"}, Bundle: true})
			if err != nil {
				t.Fatalf("lego obtain for 127.0.0.1: %v", err)
			}
			chain := parseChain(t, res.Certificate)
			leaf := chain[0]
			if len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
				t.Fatalf("certificate names DNS %v IP %v, want only 127.0.0.1", leaf.DNSNames, leaf.IPAddresses)
			}
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: e.roots, Intermediates: inter, DNSName: "127.0.0.1"}); err != nil {
				t.Fatalf("does not verify for 127.0.0.1 up to Sigil's root: %v", err)
			}
			if _, err := e.srv.Store().GetCertificate(t.Context(), identity.SerialFromBig(leaf.SerialNumber)); err != nil {
				t.Fatalf("not in the inventory: %v", err)
			}
		})
	}
}

// TestIPOrderMixed: an order with a DNS name and an address, answered over
// http-01 by the in-package client; the CSR's IP SAN must be the order's
// address, and the certificate carries both names.
func TestIPOrderMixed(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := newClient(t, e)
	c.register(nil)
	_, o := c.newOrderIdents(map[string]string{"type": "dns", "value": "mixed.test"}, map[string]string{"type": "ip", "value": "::ffff:127.0.0.1"})
	var a authzResp
	resp, body := c.post(o.Authorizations[1], nil)
	c.mustOK("authz", resp, body, &a)
	if a.Identifier.Value != "127.0.0.1" {
		t.Fatalf("ip authorization identifier %q, want the canonical 127.0.0.1", a.Identifier.Value)
	}
	for _, ch := range a.Challenges {
		if ch.Type == "dns-01" {
			t.Fatalf("an ip authorization offers dns-01: %s", body)
		}
	}
	c.solve(o, "")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"mixed.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}, key)
	if err != nil {
		t.Fatal(err)
	}
	resp, body = c.post(o.Finalize, map[string]any{"csr": b64(der)})
	c.mustOK("finalize", resp, body, &o)
	resp, body = c.post(o.Certificate, nil)
	c.mustOK("certificate", resp, body, nil)
	leaf := parseChain(t, body)[0]
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "mixed.test" || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("certificate names DNS %v IP %v", leaf.DNSNames, leaf.IPAddresses)
	}
}
