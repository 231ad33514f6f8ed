// Package identity holds Sigil's domain types: certificate records, serials,
// tokens and roles. It does no I/O.
package identity

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Serial is a certificate serial number in canonical form: lowercase hex
// without leading zeros or separators. Canonical form makes serials usable as
// database keys whatever way the user typed them.
type Serial string

// serialBytes is the amount of randomness in a serial. CA/B BR ask for at
// least 64 bits; we use 128 (127 after clearing the sign bit) so collisions
// are never a practical concern.
const serialBytes = 16

// ErrBadSerial is returned for serials that are not hex numbers.
var ErrBadSerial = errors.New("invalid serial number")

// NewSerial returns a fresh random positive serial from crypto/rand.
func NewSerial() (*big.Int, error) {
	b := make([]byte, serialBytes)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("reading random serial: %w", err)
		}
		b[0] &= 0x7f // positive, and DER needs no padding byte
		if b[0] != 0 {
			return new(big.Int).SetBytes(b), nil
		}
	}
}

// SerialFromBig converts a serial number to its canonical form.
func SerialFromBig(n *big.Int) Serial { return Serial(n.Text(16)) }

// ParseSerial accepts a serial as openssl and other tools print it: hex with
// or without colons or spaces, any case, optionally prefixed with 0x.
func ParseSerial(s string) (Serial, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	s = strings.NewReplacer(":", "", " ", "").Replace(s)
	if s == "" || len(s) > 64 || strings.ContainsAny(s, "+-") {
		return "", fmt.Errorf("%w: %q", ErrBadSerial, truncate(s, 70))
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() < 0 {
		return "", fmt.Errorf("%w: %q is not hexadecimal", ErrBadSerial, truncate(s, 70))
	}
	return SerialFromBig(n), nil
}

// Big returns the serial as an integer. Canonical serials always parse.
func (s Serial) Big() *big.Int {
	n, _ := new(big.Int).SetString(string(s), 16)
	if n == nil {
		return new(big.Int)
	}
	return n
}

// OpenSSL renders the serial the way `openssl x509 -serial` does: uppercase
// hex with an even number of digits.
func (s Serial) OpenSSL() string {
	h := strings.ToUpper(string(s))
	if len(h)%2 == 1 {
		h = "0" + h
	}
	return h
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
