package acme

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// Signature algorithms accepted for account keys (RFC 8555 §6.2: ES256
// required, others as the server chooses). none and MACs are refused.
var accountAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.EdDSA}

func algNames() []string {
	out := make([]string, len(accountAlgs))
	for i, a := range accountAlgs {
		out[i] = string(a)
	}
	return out
}

// flatJWS is the flattened JSON serialization RFC 8555 §6.2 requires:
// exactly these three members (no unprotected header, one signature).
type flatJWS struct {
	Protected string `json:"protected"`
	Payload   string `json:"payload"`
	Signature string `json:"signature"`
}

// protectedHeader is the part of the JWS protected header ACME defines.
type protectedHeader struct {
	Alg   string          `json:"alg"`
	KID   string          `json:"kid"`
	JWK   json.RawMessage `json:"jwk"`
	Nonce string          `json:"nonce"`
	URL   string          `json:"url"`
}

// parsedJWS is a syntactically valid ACME JWS whose signature is not yet
// verified.
type parsedJWS struct {
	hdr     protectedHeader
	jwk     *jose.JSONWebKey // when the header carries jwk
	sig     *jose.JSONWebSignature
	payload []byte // decoded, unverified
}

// parseJWS checks the syntax and the header rules that need no state:
// flattened form, an allowed alg, exactly one of jwk and kid, url present.
// needNonce is false for the inner JWS of a key change.
func parseJWS(body []byte, needNonce bool) (*parsedJWS, error) {
	var f flatJWS
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, malformed("the body is not a flattened JWS (JSON with protected, payload, signature only): %v", err)
	}
	if dec.More() {
		return nil, malformed("unexpected data after the JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(f.Protected)
	if err != nil || f.Protected == "" {
		return nil, malformed("the protected header is not base64url")
	}
	var h protectedHeader
	hdec := json.NewDecoder(bytes.NewReader(hb))
	if err := hdec.Decode(&h); err != nil {
		return nil, malformed("the protected header is not JSON: %v", err)
	}
	if !algAllowed(h.Alg) {
		p := prob("badSignatureAlgorithm", 400, "signature algorithm %q is not supported", h.Alg)
		p.Algorithms = algNames()
		return nil, p
	}
	hasJWK := len(h.JWK) > 0 && string(h.JWK) != "null"
	if hasJWK == (h.KID != "") {
		return nil, malformed("the protected header must carry exactly one of jwk and kid")
	}
	if h.URL == "" {
		return nil, unauthorized("the protected header has no url")
	}
	if needNonce && h.Nonce == "" {
		return nil, badNonce("the protected header has no nonce")
	}
	payload, err := base64.RawURLEncoding.DecodeString(f.Payload)
	if err != nil {
		return nil, malformed("the payload is not base64url")
	}
	sig, err := jose.ParseSigned(string(body), accountAlgs)
	if err != nil {
		return nil, malformed("invalid JWS: %v", err)
	}
	if len(sig.Signatures) != 1 {
		return nil, malformed("the JWS must have exactly one signature")
	}
	p := &parsedJWS{hdr: h, sig: sig, payload: payload}
	if hasJWK {
		var k jose.JSONWebKey
		if err := json.Unmarshal(h.JWK, &k); err != nil {
			return nil, malformed("invalid jwk: %v", err)
		}
		if err := checkAccountKey(&k, h.Alg); err != nil {
			return nil, err
		}
		p.jwk = &k
	}
	return p, nil
}

func algAllowed(a string) bool {
	for _, x := range accountAlgs {
		if string(x) == a {
			return true
		}
	}
	return false
}

// checkAccountKey refuses private keys, weak RSA and a key that does not
// fit the alg.
func checkAccountKey(k *jose.JSONWebKey, alg string) error {
	if !k.Valid() || !k.IsPublic() {
		return prob("badPublicKey", 400, "the jwk is not a valid public key")
	}
	switch pub := k.Key.(type) {
	case *ecdsa.PublicKey:
		want := map[string]string{"ES256": "P-256", "ES384": "P-384"}[alg]
		if pub.Curve.Params().Name != want {
			return prob("badPublicKey", 400, "alg %s does not fit a %s key", alg, pub.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if alg != "RS256" || pub.N.BitLen() < 2048 || pub.N.BitLen() > 8192 {
			return prob("badPublicKey", 400, "RSA account keys must be 2048-8192 bits and use RS256")
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return prob("badPublicKey", 400, "alg %s does not fit an Ed25519 key", alg)
		}
	default:
		return prob("badPublicKey", 400, "unsupported key type %T", k.Key)
	}
	return nil
}

// verify checks the signature with key and returns the payload.
func (p *parsedJWS) verify(key *jose.JSONWebKey) ([]byte, error) {
	if err := checkAccountKey(key, p.hdr.Alg); err != nil {
		return nil, err
	}
	out, err := p.sig.Verify(key)
	if err != nil {
		return nil, malformed("JWS signature verification failed")
	}
	return out, nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint, base64url.
func thumbprint(k *jose.JSONWebKey) (string, error) {
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// keysEqual compares two public keys.
func keysEqual(a, b *jose.JSONWebKey) bool {
	ta, err1 := thumbprint(a)
	tb, err2 := thumbprint(b)
	return err1 == nil && err2 == nil && ta == tb
}

// strictJSON decodes exactly one JSON object into v, refusing unknown
// trailing data. Unknown fields are allowed: RFC 8555 §7.3 says servers
// ignore fields they do not understand.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return malformed("invalid JSON payload: %v", err)
	}
	if dec.More() {
		return malformed("unexpected data after the JSON payload")
	}
	return nil
}
