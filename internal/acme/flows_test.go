package acme_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sigil-pki/sigil/internal/acme"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
)

// TestAccountLifecycle: lookup by key, contact update, key rollover and
// deactivation (RFC 8555 §7.3).
func TestAccountLifecycle(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := newClient(t, e)
	resp, body := c.post(c.url("newAccount"), map[string]any{"onlyReturnExisting": true})
	wantProblem(t, "lookup of an unknown key", resp, body, "accountDoesNotExist")
	resp, body = c.post(c.url("newAccount"), map[string]any{"contact": []string{"tel:+123"}})
	wantProblem(t, "tel contact", resp, body, "unsupportedContact")
	c.register(nil)
	kid := c.kid
	c.kid = ""
	resp, body = c.post(c.url("newAccount"), map[string]any{"onlyReturnExisting": true})
	if resp.StatusCode != 200 || resp.Header.Get("Location") != kid {
		t.Fatalf("lookup by key: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	c.kid = kid

	var acct struct {
		Status  string   `json:"status"`
		Contact []string `json:"contact"`
	}
	resp, body = c.post(kid, map[string]any{"contact": []string{"mailto:new@example.org"}})
	c.mustOK("update", resp, body, &acct)
	if len(acct.Contact) != 1 || acct.Contact[0] != "mailto:new@example.org" {
		t.Fatalf("contact after update: %v", acct.Contact)
	}

	// Key rollover: the inner JWS is signed by the new key.
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	nc := &client{e: e, dir: c.dir}
	nc.setKey(newKey)
	kcURL := c.url("keyChange")
	var oldJWK json.RawMessage = c.jwk
	inner := jws(map[string]any{"alg": "ES256", "jwk": nc.jwk, "url": kcURL}, encode(map[string]any{"account": kid, "oldKey": oldJWK}),
		func(in string) []byte { return signES256(newKey, in) })
	resp, body = c.post(kcURL, inner)
	c.mustOK("keyChange", resp, body, nil)
	resp, body = c.post(c.url("newOrder"), map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "k.test"}}})
	wantProblem(t, "old key after rollover", resp, body, "malformed")
	c.setKey(newKey)
	c.obtain("rolled.test")

	var list struct {
		Orders []string `json:"orders"`
	}
	resp, body = c.post(kid+"/orders", nil)
	c.mustOK("orders list", resp, body, &list)
	if len(list.Orders) != 1 || !strings.Contains(list.Orders[0], "/order/") {
		t.Fatalf("orders list: %s", body)
	}

	resp, body = c.post(kid, map[string]any{"status": "deactivated"})
	c.mustOK("deactivate", resp, body, &acct)
	if acct.Status != "deactivated" {
		t.Fatalf("status %s", acct.Status)
	}
	resp, body = c.post(c.url("newOrder"), map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "k.test"}}})
	wantProblem(t, "deactivated account", resp, body, "unauthorized")
}

// TestRevocationAndARI: revocation by the certificate's own key and by the
// ordering account; another account may not; ARI moves the window to now
// once revoked; replaces is accepted once.
func TestRevocationAndARI(t *testing.T) {
	e := newEnv(t, envOpts{})
	a := newClient(t, e)
	a.register(nil)
	other := newClient(t, e)
	other.register(nil)

	leaf := parseChain(t, a.obtain("ari.test"))[0]
	certID := acme.ARICertID(leaf)
	var ri struct {
		SuggestedWindow struct{ Start, End time.Time } `json:"suggestedWindow"`
	}
	resp, body := a.get(a.url("renewalInfo") + "/" + certID)
	if resp.StatusCode != 200 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("renewal-info: %d %s", resp.StatusCode, body)
	}
	_ = json.Unmarshal(body, &ri)
	if !ri.SuggestedWindow.Start.After(time.Now()) || !ri.SuggestedWindow.End.After(ri.SuggestedWindow.Start) || ri.SuggestedWindow.End.After(leaf.NotAfter) {
		t.Fatalf("window %+v for a certificate valid until %v", ri.SuggestedWindow, leaf.NotAfter)
	}
	resp, body = a.get(a.url("renewalInfo") + "/AA.AA")
	if resp.StatusCode < 400 {
		t.Fatalf("renewal-info of a bad ID: %d %s", resp.StatusCode, body)
	}

	ids := []map[string]string{{"type": "dns", "value": "ari.test"}}
	resp, body = other.post(other.url("newOrder"), map[string]any{"identifiers": ids, "replaces": certID})
	wantProblem(t, "replacing another account's certificate", resp, body, "unauthorized")
	resp, body = a.post(a.url("newOrder"), map[string]any{"identifiers": ids, "replaces": certID})
	a.mustOK("newOrder replaces", resp, body, nil)
	resp, body = a.post(a.url("newOrder"), map[string]any{"identifiers": ids, "replaces": certID})
	wantProblem(t, "second replacement", resp, body, "alreadyReplaced")

	revoke := map[string]any{"certificate": b64(leaf.Raw), "reason": 1}
	resp, body = other.post(other.url("revokeCert"), revoke)
	wantProblem(t, "revocation by another account", resp, body, "unauthorized")
	resp, body = a.post(a.url("revokeCert"), revoke)
	a.mustOK("revokeCert", resp, body, nil)
	rec, err := e.srv.Store().GetCertificate(t.Context(), serialOf(leaf))
	if err != nil || rec.Status != identity.StatusRevoked || rec.RevocationReason != identity.ReasonKeyCompromise {
		t.Fatalf("after revocation: %+v %v", rec, err)
	}
	resp, body = a.post(a.url("revokeCert"), revoke)
	wantProblem(t, "second revocation", resp, body, "alreadyRevoked")
	resp, body = a.get(a.url("renewalInfo") + "/" + certID)
	_ = json.Unmarshal(body, &ri)
	if resp.StatusCode != 200 || ri.SuggestedWindow.End.After(time.Now().Add(time.Minute)) {
		t.Fatalf("window of a revoked certificate: %d %s", resp.StatusCode, body)
	}

	// An operator marks a certificate for early renewal: its window opens now.
	leaf3 := parseChain(t, a.obtain("early.test"))[0]
	if err := e.srv.RA().MarkRenewEarly(t.Context(), ra.Caller{}, []identity.Serial{serialOf(leaf3)}); err != nil {
		t.Fatal(err)
	}
	resp, body = a.get(a.url("renewalInfo") + "/" + acme.ARICertID(leaf3))
	_ = json.Unmarshal(body, &ri)
	if resp.StatusCode != 200 || ri.SuggestedWindow.End.After(time.Now().Add(time.Minute)) {
		t.Fatalf("window of a certificate marked for early renewal: %d %s", resp.StatusCode, body)
	}

	// By the certificate's key: a client holding it, with no account.
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	loc, o := a.newOrder("bykey.test")
	a.solve(o, "")
	resp, body = a.post(o.Finalize, map[string]any{"csr": b64(csrFor(t, certKey, "bykey.test", "bykey.test"))})
	a.mustOK("finalize", resp, body, &o)
	_ = loc
	resp, body = a.post(o.Certificate, nil)
	a.mustOK("certificate", resp, body, nil)
	leaf2 := parseChain(t, body)[0]
	kc := &client{e: e, dir: a.dir}
	kc.setKey(certKey)
	resp, body = kc.post(kc.url("revokeCert"), map[string]any{"certificate": b64(leaf2.Raw)})
	kc.mustOK("revokeCert by certificate key", resp, body, nil)
	if rec, err := e.srv.Store().GetCertificate(t.Context(), serialOf(leaf2)); err != nil || rec.Status != identity.StatusRevoked {
		t.Fatalf("after revocation by key: %+v %v", rec, err)
	}
}

// TestRateLimits: per account and per name, as rateLimited with Retry-After.
func TestRateLimits(t *testing.T) {
	e := newEnv(t, envOpts{perAccount: 2, perName: 1})
	a := newClient(t, e)
	a.register(nil)
	a.newOrder("r1.test")
	resp, body := a.post(a.url("newOrder"), map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "r1.test"}}})
	wantProblem(t, "same name twice", resp, body, "rateLimited")
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra <= 0 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	a.newOrder("r2.test")
	resp, body = a.post(a.url("newOrder"), map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "r3.test"}}})
	wantProblem(t, "third order of the account", resp, body, "rateLimited")
	b := newClient(t, e)
	b.register(nil)
	b.newOrder("r3.test")
}

// dnsServer answers TXT queries from a map, on loopback UDP.
type dnsServer struct {
	addr string
	mu   sync.Mutex
	txt  map[string]string
}

func newDNSServer(t *testing.T) *dnsServer {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String(), txt: map[string]string{}}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			d.mu.Lock()
			v, ok := d.txt[strings.ToLower(q.Name)]
			d.mu.Unlock()
			if ok && q.Qtype == dns.TypeTXT {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1}, Txt: []string{v}})
			}
		}
		if len(m.Answer) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return d
}

// TestDNS01 validates a wildcard order by TXT record through the
// configured resolver (--acme-dns-resolver).
func TestDNS01(t *testing.T) {
	d := newDNSServer(t)
	e := newEnv(t, envOpts{dnsResolver: d.addr})
	c := newClient(t, e)
	c.register(nil)
	_, o := c.newOrder("*.wild.test")
	var a authzResp
	resp, body := c.post(o.Authorizations[0], nil)
	c.mustOK("authz", resp, body, &a)
	if len(a.Challenges) != 1 || a.Challenges[0].Type != "dns-01" || a.Identifier.Value != "wild.test" {
		t.Fatalf("wildcard authorization: %s", body)
	}
	ch := a.Challenges[0]
	sum := sha256.Sum256([]byte(ch.Token + "." + c.tp))
	d.mu.Lock()
	d.txt["_acme-challenge.wild.test."] = b64(sum[:])
	d.mu.Unlock()
	resp, body = c.post(ch.URL, map[string]any{})
	c.mustOK("challenge", resp, body, nil)
	if !strings.Contains(string(body), `"valid"`) {
		t.Fatalf("dns-01: %s", body)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	resp, body = c.post(o.Finalize, map[string]any{"csr": b64(csrFor(t, key, "*.wild.test", "*.wild.test"))})
	c.mustOK("finalize wildcard", resp, body, &o)
	resp, body = c.post(o.Certificate, nil)
	c.mustOK("certificate", resp, body, nil)
	if leaf := parseChain(t, body)[0]; len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "*.wild.test" {
		t.Fatalf("wildcard certificate names %v", leaf.DNSNames)
	}
}

// TestReplicasSharePostgres: two servers on one PostgreSQL database; a
// nonce handed out by one is accepted by the other exactly once, and an
// order made on one is finished on the other.
func TestReplicasSharePostgres(t *testing.T) {
	if os.Getenv("SIGIL_TEST_POSTGRES_DSN") == "" {
		t.Skip("SIGIL_TEST_POSTGRES_DSN is not set: skipping the PostgreSQL replica test")
	}
	db := pgtest.FreshDatabase(t)
	e1 := newEnv(t, envOpts{db: db})
	e2 := newEnv(t, envOpts{db: db, dataDir: e1.dir})
	c1 := newClient(t, e1)
	c1.register(nil)
	c2 := &client{e: e2, key: c1.key, jwk: c1.jwk, tp: c1.tp, dir: map[string]any{}}
	for k, v := range c1.dir {
		if s, ok := v.(string); ok {
			v = strings.Replace(s, e1.api, e2.api, 1)
		}
		c2.dir[k] = v
	}
	c2.kid = strings.Replace(c1.kid, e1.api, e2.api, 1)

	nonce := c1.freshNonce() // from replica 1
	u := c2.url("newOrder")
	body := jws(map[string]any{"alg": "ES256", "kid": c2.kid, "url": u, "nonce": nonce}, encode(map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "rep.test"}}}),
		func(in string) []byte { return signES256(c2.key, in) })
	resp, b := c2.postRaw(u, body)
	if resp.StatusCode != 201 {
		t.Fatalf("replica 2 refused replica 1's nonce: %d %s", resp.StatusCode, b)
	}
	var o orderResp
	_ = json.Unmarshal(b, &o)
	resp, b = c1.postRaw(c1.url("newOrder"), jws(map[string]any{"alg": "ES256", "kid": c1.kid, "url": c1.url("newOrder"), "nonce": nonce}, encode(map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": "rep.test"}}}),
		func(in string) []byte { return signES256(c1.key, in) }))
	wantProblem(t, "nonce replayed on the other replica", resp, b, "badNonce")

	for i, a := range o.Authorizations {
		o.Authorizations[i] = strings.Replace(a, e2.api, e1.api, 1)
	}
	o.Finalize = strings.Replace(o.Finalize, e2.api, e1.api, 1)
	c1.solve(o, "")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	resp, b = c1.post(o.Finalize, map[string]any{"csr": b64(csrFor(t, key, "rep.test", "rep.test"))})
	c1.mustOK("finalize on replica 1", resp, b, &o)
	if o.Status != "valid" {
		t.Fatalf("order %s", o.Status)
	}
}
