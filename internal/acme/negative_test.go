package acme_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

func certCount(t *testing.T, e *env) int {
	t.Helper()
	cs, err := e.srv.Store().ListCertificates(t.Context(), store.CertFilter{Profile: "web"})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

// TestRefusals sends wrong requests; each must get the right ACME problem,
// with a nonce, and issue nothing.
func TestRefusals(t *testing.T) {
	e := newEnv(t, envOpts{})
	a := newClient(t, e)
	a.register(nil)
	b := newClient(t, e)
	b.register(nil)
	_, bOrder := b.newOrder("b.test")
	hs := func(in string) []byte {
		h := hmac.New(sha256.New, []byte("secret"))
		h.Write([]byte(in))
		return h.Sum(nil)
	}
	sign := func(c *client) func(string) []byte { return func(in string) []byte { return signES256(c.key, in) } }
	newOrderURL := a.url("newOrder")
	idents := map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "x.test"}}}
	before := certCount(t, e)

	for _, tc := range []struct {
		name string
		do   func() (int, []byte, string)
		want string
	}{
		{"garbage nonce", func() (int, []byte, string) {
			h := a.header(newOrderURL)
			h["nonce"] = "AAAA"
			return send(a, newOrderURL, jws(h, encode(idents), sign(a)))
		}, "badNonce"},
		{"missing nonce", func() (int, []byte, string) {
			h := a.header(newOrderURL)
			delete(h, "nonce")
			return send(a, newOrderURL, jws(h, encode(idents), sign(a)))
		}, "badNonce"},
		{"reused nonce", func() (int, []byte, string) {
			h := a.header(newOrderURL)
			body := jws(h, encode(idents), sign(a))
			if st, b, _ := send(a, newOrderURL, body); st != 201 {
				t.Fatalf("first use: %d %s", st, b)
			}
			return send(a, newOrderURL, body)
		}, "badNonce"},
		{"wrong url", func() (int, []byte, string) {
			return send(a, newOrderURL, jws(a.header(a.url("newAccount")), encode(idents), sign(a)))
		}, "unauthorized"},
		{"alg none", func() (int, []byte, string) {
			h := a.header(newOrderURL)
			h["alg"] = "none"
			return send(a, newOrderURL, jws(h, encode(idents), func(string) []byte { return nil }))
		}, "badSignatureAlgorithm"},
		{"alg HS256", func() (int, []byte, string) {
			h := a.header(newOrderURL)
			h["alg"] = "HS256"
			return send(a, newOrderURL, jws(h, encode(idents), hs))
		}, "badSignatureAlgorithm"},
		{"kid signed by another account's key", func() (int, []byte, string) {
			return send(a, newOrderURL, jws(a.header(newOrderURL), encode(idents), sign(b)))
		}, "malformed"},
		{"jwk and kid together", func() (int, []byte, string) {
			h := a.header(newOrderURL)
			h["jwk"] = a.jwk
			return send(a, newOrderURL, jws(h, encode(idents), sign(a)))
		}, "malformed"},
		{"jwk where an account is required", func() (int, []byte, string) {
			h := a.header(newOrderURL)
			delete(h, "kid")
			h["jwk"] = a.jwk
			return send(a, newOrderURL, jws(h, encode(idents), sign(a)))
		}, "malformed"},
		{"unknown account", func() (int, []byte, string) {
			h := a.header(newOrderURL)
			h["kid"] = strings.TrimSuffix(a.kid, a.kid[len(a.kid)-4:]) + "0000"
			return send(a, newOrderURL, jws(h, encode(idents), sign(a)))
		}, "accountDoesNotExist"},
		{"name outside the profile", func() (int, []byte, string) {
			return sendJSON(a, newOrderURL, map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "bank.example"}}})
		}, "rejectedIdentifier"},
		{"unknown identifier type", func() (int, []byte, string) {
			return sendJSON(a, newOrderURL, map[string]any{"identifiers": []map[string]string{{"type": "email", "value": "a@b.test"}}})
		}, "unsupportedIdentifier"},
		{"ip outside the profile's ranges", func() (int, []byte, string) {
			return sendJSON(a, newOrderURL, map[string]any{"identifiers": []map[string]string{{"type": "ip", "value": "10.1.2.3"}}})
		}, "rejectedIdentifier"},
		{"ip identifier that is not an address", func() (int, []byte, string) {
			return sendJSON(a, newOrderURL, map[string]any{"identifiers": []map[string]string{{"type": "ip", "value": "127.0.0.1.test"}}})
		}, "rejectedIdentifier"},
		{"ip identifier with a zone", func() (int, []byte, string) {
			return sendJSON(a, newOrderURL, map[string]any{"identifiers": []map[string]string{{"type": "ip", "value": "fe80::1%lo"}}})
		}, "rejectedIdentifier"},
		{"notBefore in newOrder", func() (int, []byte, string) {
			return sendJSON(a, newOrderURL, map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "nb.test"}}, "notBefore": "2030-01-01T00:00:00Z"})
		}, "malformed"},
		{"notAfter in newOrder", func() (int, []byte, string) {
			return sendJSON(a, newOrderURL, map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "na.test"}}, "notAfter": "2030-01-01T00:00:00Z"})
		}, "malformed"},
		{"CSR without the order's IP address", func() (int, []byte, string) {
			_, o := a.newOrderIdents(map[string]string{"type": "dns", "value": "ipmix.test"}, map[string]string{"type": "ip", "value": "127.0.0.1"})
			a.solve(o, "")
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			return sendJSON(a, o.Finalize, map[string]any{"csr": b64(csrFor(t, key, "ipmix.test", "ipmix.test"))})
		}, "badCSR"},
		{"CSR with an extra IP address", func() (int, []byte, string) {
			_, o := a.newOrderIdents(map[string]string{"type": "ip", "value": "127.0.0.1"})
			a.solve(o, "")
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			return sendJSON(a, o.Finalize, map[string]any{"csr": b64(csrIPs(t, key, "", "127.0.0.1", "127.0.0.2"))})
		}, "badCSR"},
		{"another account's order", func() (int, []byte, string) {
			return sendJSON(a, bOrder.Finalize, map[string]any{"csr": "AAAA"})
		}, "unauthorized"},
		{"finalize before validation", func() (int, []byte, string) {
			_, o := a.newOrder("early.test")
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			return sendJSON(a, o.Finalize, map[string]any{"csr": b64(csrFor(t, key, "early.test", "early.test"))})
		}, "orderNotReady"},
		{"CSR with an extra name", func() (int, []byte, string) {
			_, o := a.newOrder("extra.test")
			a.solve(o, "")
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			return sendJSON(a, o.Finalize, map[string]any{"csr": b64(csrFor(t, key, "extra.test", "extra.test", "other.test"))})
		}, "badCSR"},
		{"CSR that is not DER", func() (int, []byte, string) {
			_, o := a.newOrder("junk.test")
			a.solve(o, "")
			return sendJSON(a, o.Finalize, map[string]any{"csr": b64([]byte("not a csr"))})
		}, "badCSR"},
		{"oversized body", func() (int, []byte, string) {
			return send(a, newOrderURL, bytes.Repeat([]byte("x"), 200<<10))
		}, "malformed"},
		{"not a JWS", func() (int, []byte, string) {
			return send(a, newOrderURL, []byte(`{"hello":"world"}`))
		}, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, body, nonce := tc.do()
			var p problem
			_ = json.Unmarshal(body, &p)
			if p.Type != "urn:ietf:params:acme:error:"+tc.want || st < 400 {
				t.Fatalf("got %d %s, want %s", st, body, tc.want)
			}
			if nonce == "" {
				t.Error("no Replay-Nonce on the error")
			}
		})
	}

	t.Run("wrong challenge answer", func(t *testing.T) {
		_, o := a.newOrder("wrong.test")
		a.solve(o, "not-the-key-authorization")
		var az authzResp
		resp, body := a.post(o.Authorizations[0], nil)
		a.mustOK("authz", resp, body, &az)
		if az.Status != "invalid" {
			t.Fatalf("authorization %s after a wrong answer, want invalid", az.Status)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		st, body, _ := sendJSON(a, o.Finalize, map[string]any{"csr": b64(csrFor(t, key, "wrong.test", "wrong.test"))})
		if !strings.Contains(string(body), "orderNotReady") {
			t.Fatalf("finalize after a failed challenge: %d %s", st, body)
		}
	})

	if after := certCount(t, e); after != before {
		t.Fatalf("refused requests issued %d certificates", after-before)
	}
	evs, err := e.srv.Store().ListAudit(context.Background(), store.AuditFilter{Action: "acme."})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, ev := range evs {
		if ev.Result == "refused" {
			refused++
		}
	}
	if refused < 15 {
		for _, ev := range evs {
			t.Log(ev.Action, ev.Result)
		}
		t.Errorf("%d refusals audited, want every one", refused)
	}
}

func send(c *client, u string, body []byte) (int, []byte, string) {
	resp, b := c.postRaw(u, body)
	return resp.StatusCode, b, resp.Header.Get("Replay-Nonce")
}

func sendJSON(c *client, u string, payload any) (int, []byte, string) {
	resp, b := c.post(u, payload)
	return resp.StatusCode, b, resp.Header.Get("Replay-Nonce")
}

// TestEAB: a directory that requires External Account Binding refuses an
// account without one or with a wrong MAC, accepts a right one once, and
// the account's certificates carry the key's owner.
func TestEAB(t *testing.T) {
	e := newEnv(t, envOpts{eabRequired: true})
	k, hmacKey, err := e.srv.RA().CreateEABKey(t.Context(), ra.Caller{}, "web", "team-a")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, e)
	if m, _ := c.dir["meta"].(map[string]any); m["externalAccountRequired"] != true {
		t.Fatalf("directory meta: %v", c.dir["meta"])
	}
	resp, body := c.post(c.url("newAccount"), map[string]any{"termsOfServiceAgreed": true})
	wantProblem(t, "no EAB", resp, body, "externalAccountRequired")
	wrong := b64([]byte(strings.Repeat("k", 32)))
	resp, body = c.post(c.url("newAccount"), map[string]any{"externalAccountBinding": c.eabBinding(k.KID, wrong)})
	wantProblem(t, "wrong HMAC", resp, body, "unauthorized")
	resp, body = c.post(c.url("newAccount"), map[string]any{"externalAccountBinding": c.eabBinding("eab_unknown", hmacKey)})
	wantProblem(t, "unknown kid", resp, body, "unauthorized")

	c.register(map[string]any{"externalAccountBinding": c.eabBinding(k.KID, hmacKey)})
	chain := parseChain(t, c.obtain("owned.test"))
	rec, err := e.srv.Store().GetCertificate(t.Context(), serialOf(chain[0]))
	if err != nil || rec.Owner != "team-a" {
		t.Fatalf("owner %q (%v), want team-a", rec.Owner, err)
	}

	d := newClient(t, e)
	resp, body = d.post(d.url("newAccount"), map[string]any{"externalAccountBinding": d.eabBinding(k.KID, hmacKey)})
	wantProblem(t, "key reused for a second account", resp, body, "unauthorized")
}
