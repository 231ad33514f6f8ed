package acme

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// signedSeed is a valid ES256 JWS with an embedded jwk.
func signedSeed(t testing.TB, hdr map[string]any, payload string) []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, _ := (&jose.JSONWebKey{Key: &key.PublicKey}).MarshalJSON()
	if _, ok := hdr["kid"]; !ok {
		hdr["jwk"] = json.RawMessage(jwk)
	}
	hb, _ := json.Marshal(hdr)
	p := base64.RawURLEncoding.EncodeToString(hb)
	pl := base64.RawURLEncoding.EncodeToString([]byte(payload))
	d := sha256.Sum256([]byte(p + "." + pl))
	r, s, _ := ecdsa.Sign(rand.Reader, key, d[:])
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	b, _ := json.Marshal(map[string]string{"protected": p, "payload": pl, "signature": base64.RawURLEncoding.EncodeToString(sig)})
	return b
}

// FuzzParseJWS: whatever the body, parseJWS never panics, and what it
// accepts obeys RFC 8555 §6.2 (an allowed alg, jwk XOR kid, url, nonce)
// and verifies only with the right key.
func FuzzParseJWS(f *testing.F) {
	f.Add(signedSeed(f, map[string]any{"alg": "ES256", "nonce": "n", "url": "https://x/acme/web/new-account"}, `{"termsOfServiceAgreed":true}`))
	f.Add(signedSeed(f, map[string]any{"alg": "ES256", "nonce": "n", "url": "https://x/", "kid": "https://x/acme/web/acct/1"}, ``))
	f.Add([]byte(`{"protected":"eyJhbGciOiJub25lIn0","payload":"","signature":""}`))
	f.Add([]byte(`{"protected":"eyJhbGciOiJIUzI1NiJ9","payload":"e30","signature":"AAAA"}`))
	f.Add([]byte(`{"protected":"","payload":"","signature":"","header":{}}`))
	f.Add([]byte(`{"signatures":[]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parseJWS(body, true)
		if err != nil {
			if _, ok := err.(*Problem); !ok {
				t.Fatalf("error %T is not a problem", err)
			}
			return
		}
		if !algAllowed(p.hdr.Alg) || (p.jwk != nil) == (p.hdr.KID != "") || p.hdr.URL == "" || p.hdr.Nonce == "" {
			t.Fatalf("accepted a header that breaks the rules: %+v", p.hdr)
		}
		if p.jwk != nil {
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if _, err := p.verify(&jose.JSONWebKey{Key: &other.PublicKey}); err == nil && p.hdr.Alg == "ES256" {
				t.Fatal("verified with an unrelated key")
			}
		}
	})
}

// FuzzNonce: only nonces this key made and that have not expired pass.
func FuzzNonce(f *testing.F) {
	now := time.Unix(1_900_000_000, 0)
	n := &nonces{key: []byte("k"), now: func() time.Time { return now }}
	good := n.make()
	f.Add(good)
	f.Add("")
	f.Add(good[:len(good)-1] + "A")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		exp, ok := n.check(s)
		if !ok {
			return
		}
		b, _ := base64.RawURLEncoding.DecodeString(s)
		if !bytes.Equal(b[8+nonceRandLen:], n.mac(b[:8+nonceRandLen])) || !exp.After(now) {
			t.Fatalf("accepted a forged or expired nonce %q", s)
		}
	})
}

// FuzzARIID: parseARIID never panics and round-trips what it accepts.
func FuzzARIID(f *testing.F) {
	f.Add("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
	f.Add(".")
	f.Add("AA.gA")
	f.Add("AA.AAE")
	f.Fuzz(func(t *testing.T, id string) {
		aki, serial, err := parseARIID(id)
		if err != nil {
			return
		}
		if serial.Sign() < 0 || len(aki) == 0 {
			t.Fatalf("accepted %q", id)
		}
		back := base64.RawURLEncoding.EncodeToString(aki) + "." + base64.RawURLEncoding.EncodeToString(serialBytes(serial))
		if serial.Sign() > 0 && back != id {
			t.Fatalf("%q does not round-trip (%q)", id, back)
		}
	})
}

// FuzzName: normalizeName accepts only lowercase LDH names.
func FuzzName(f *testing.F) {
	for _, s := range []string{"app.test", "*.app.test", "APP.test.", "-a.test", "a..b", "127.0.0.1", "xn--bcher-kva.test", "a_b.test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, wild, err := normalizeName(v)
		if err != nil {
			return
		}
		base := n
		if wild {
			base = n[2:]
		}
		for _, c := range base {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				t.Fatalf("accepted %q as %q", v, n)
			}
		}
	})
}

// FuzzNormalizeIP: an accepted ip identifier is canonical (normalizing its
// output changes nothing), has no zone, and is never an IPv4-mapped address.
func FuzzNormalizeIP(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::1", "2001:DB8::1", "::ffff:10.0.0.1", "fe80::1%eth0", "1.2.3", "01.2.3.4", "app.test", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		a, err := normalizeIP(v)
		if err != nil {
			return
		}
		if a.Zone() != "" || a.Is4In6() {
			t.Fatalf("accepted %q as %v", v, a)
		}
		b, err := normalizeIP(a.String())
		if err != nil || b != a {
			t.Fatalf("%q → %v is not stable: %v %v", v, a, b, err)
		}
	})
}
