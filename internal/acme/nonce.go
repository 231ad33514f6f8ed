package acme

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Nonces are stateless to hand out and stateful to spend, so that any
// replica can check any other's: a nonce is expiry ‖ random ‖ HMAC of both
// under a key every replica shares (stored sealed with the KEK), so a
// replica recognises a genuine, unexpired nonce without a lookup; spending
// inserts it into acme_nonces in the same transaction as the request's
// change, where a second use hits the primary key (badNonce). Spent nonces
// are kept only until they would have expired anyway.

const (
	nonceLife    = 30 * time.Minute
	nonceRandLen = 12
	nonceMACLen  = 16
	nonceLen     = 8 + nonceRandLen + nonceMACLen
)

type nonces struct {
	key []byte
	now func() time.Time
}

func (n *nonces) mac(b []byte) []byte {
	m := hmac.New(sha256.New, n.key)
	m.Write(b)
	return m.Sum(nil)[:nonceMACLen]
}

func (n *nonces) make() string {
	b := make([]byte, nonceLen)
	binary.BigEndian.PutUint64(b, uint64(n.now().Add(nonceLife).Unix()))
	_, _ = rand.Read(b[8 : 8+nonceRandLen])
	copy(b[8+nonceRandLen:], n.mac(b[:8+nonceRandLen]))
	return base64.RawURLEncoding.EncodeToString(b)
}

// check returns the nonce's expiry if it is genuine and unexpired.
func (n *nonces) check(s string) (time.Time, bool) {
	if len(s) != base64.RawURLEncoding.EncodedLen(nonceLen) {
		return time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != nonceLen {
		return time.Time{}, false
	}
	if !hmac.Equal(b[8+nonceRandLen:], n.mac(b[:8+nonceRandLen])) {
		return time.Time{}, false
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(b)), 0)
	if !n.now().Before(exp) || exp.Sub(n.now()) > nonceLife {
		return time.Time{}, false
	}
	return exp, true
}
