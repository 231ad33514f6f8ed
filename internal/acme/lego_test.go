package acme_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge/http01"
	"github.com/go-acme/lego/v4/challenge/tlsalpn01"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"
	"golang.org/x/crypto/ocsp"

	"github.com/sigil-pki/sigil/internal/identity"
)

type legoUser struct {
	key crypto.PrivateKey
	reg *registration.Resource
}

func (u *legoUser) GetEmail() string                        { return "" }
func (u *legoUser) GetRegistration() *registration.Resource { return u.reg }
func (u *legoUser) GetPrivateKey() crypto.PrivateKey        { return u.key }

func newLego(t *testing.T, e *env) (*lego.Client, *legoUser) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u := &legoUser{key: key}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = e.dirURL()
	cfg.HTTPClient = e.http
	cl, err := lego.NewClient(cfg)
	if err != nil {
		t.Fatalf("lego.NewClient: %v", err)
	}
	if u.reg, err = cl.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true}); err != nil {
		t.Fatalf("lego register: %v", err)
	}
	return cl, u
}

// legoChallenges are the challenge types lego answers from loopback: each
// sets its provider on a client and says where the server validates it.
var legoChallenges = []struct {
	name string
	set  func(t *testing.T, cl *lego.Client, port int)
	opts func(port int) envOpts
}{
	{"http-01", func(t *testing.T, cl *lego.Client, port int) {
		if err := cl.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", itoa(port))); err != nil {
			t.Fatal(err)
		}
	}, func(port int) envOpts { return envOpts{httpPort: port} }},
	{"tls-alpn-01", func(t *testing.T, cl *lego.Client, port int) {
		if err := cl.Challenge.SetTLSALPN01Provider(tlsalpn01.NewProviderServer("127.0.0.1", itoa(port))); err != nil {
			t.Fatal(err)
		}
	}, func(port int) envOpts { return envOpts{httpPort: 1, tlsPort: port} }},
}

// TestLego obtains certificates with lego (the library behind Traefik and
// Caddy's predecessor) over http-01 and tls-alpn-01 against loopback,
// checks them, reads ARI, revokes and sees the revocation in OCSP and ARI.
func TestLego(t *testing.T) {
	for _, tc := range legoChallenges {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			e := newEnv(t, tc.opts(port))
			cl, _ := newLego(t, e)
			tc.set(t, cl, port)
			res, err := cl.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{"app.test", "api.app.test"}, Bundle: true})
			if err != nil {
				t.Fatalf("lego obtain: %v", err)
			}
			chain := parseChain(t, res.Certificate)
			leaf := chain[0]
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: e.roots, Intermediates: inter, DNSName: "api.app.test"}); err != nil {
				t.Fatalf("does not chain to Sigil's root: %v", err)
			}
			rec, err := e.srv.Store().GetCertificate(t.Context(), identity.SerialFromBig(leaf.SerialNumber))
			if err != nil || rec.Status != identity.StatusIssued {
				t.Fatalf("not in the inventory: %v", err)
			}

			ri, err := cl.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf})
			if err != nil {
				t.Fatalf("ARI: %v", err)
			}
			if !ri.SuggestedWindow.Start.After(time.Now()) {
				t.Errorf("a fresh certificate's window starts %v, want in the future", ri.SuggestedWindow.Start)
			}

			if err := cl.Certificate.Revoke(res.Certificate); err != nil {
				t.Fatalf("lego revoke: %v", err)
			}
			if st := ocspStatus(t, e, leaf, chain[1]); st != ocsp.Revoked {
				t.Errorf("OCSP status %d after revocation, want revoked", st)
			}
			ri, err = cl.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf})
			if err != nil {
				t.Fatalf("ARI after revocation: %v", err)
			}
			if ri.SuggestedWindow.End.After(time.Now().Add(time.Minute)) {
				t.Errorf("a revoked certificate's window ends %v, want now", ri.SuggestedWindow.End)
			}
		})
	}
}

func ocspStatus(t *testing.T, e *env, leaf, issuer *x509.Certificate) int {
	t.Helper()
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.OCSPServer) == 0 {
		t.Fatal("no OCSP URL in the certificate")
	}
	resp, err := http.Post(leaf.OCSPServer[0], "application/ocsp-request", bytesReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := readAll(resp.Body)
	r, err := ocsp.ParseResponseForCert(b, leaf, issuer)
	if err != nil {
		t.Fatalf("OCSP: %v", err)
	}
	return r.Status
}
