package acme_test

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

func parseChain(t testing.TB, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) < 2 {
		t.Fatalf("chain has %d certificates", len(out))
	}
	return out
}

func TestOrderHTTP01(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := newClient(t, e)
	c.register(map[string]any{"contact": []string{"mailto:ops@example.org"}})
	chain := parseChain(t, c.obtain("app.test", "www.app.test"))
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: e.roots, Intermediates: inter, DNSName: "www.app.test"}); err != nil {
		t.Fatalf("chain does not verify to Sigil's root: %v", err)
	}
	rec, err := e.srv.Store().GetCertificate(t.Context(), identity.SerialFromBig(chain[0].SerialNumber))
	if err != nil || rec.Status != identity.StatusIssued || rec.Profile != "web" {
		t.Fatalf("certificate not in the store as issued: %+v %v", rec, err)
	}
	evs, err := e.srv.Store().ListAudit(t.Context(), store.AuditFilter{Action: "acme."})
	if err != nil || len(evs) < 4 {
		t.Fatalf("ACME audit events: %d %v", len(evs), err)
	}
}

func serialOf(c *x509.Certificate) identity.Serial { return identity.SerialFromBig(c.SerialNumber) }
