package identity

import (
	"errors"
	"math/big"
	"strings"
	"testing"
)

func TestParseSerial(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     Serial // "": refused
	}{
		{"openssl colons", "3A:0B:FF", "3a0bff"},
		{"lower case", "3a0bff", "3a0bff"},
		{"0x prefix", "0x3A0BFF", "3a0bff"},
		{"0X prefix", "0X3a0bff", "3a0bff"},
		{"spaces around and inside", " 3A 0B FF ", "3a0bff"},
		{"tab and newline around", "\t3a0bff\n", "3a0bff"},
		{"leading zeros", "00003A0BFF", "3a0bff"},
		{"leading zero byte with colons", "00:FF", "ff"},
		{"single digit", "7", "7"},
		{"zero", "00", "0"},
		{"64 hex digits", strings.Repeat("f", 64), Serial(strings.Repeat("f", 64))},
		{"64 digits with leading zeros", strings.Repeat("0", 63) + "1", "1"},
		{"128-bit serial", "7F:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF", Serial("7" + strings.Repeat("f", 31))},

		{"empty", "", ""},
		{"blank", "   ", ""},
		{"only 0x", "0x", ""},
		{"not hex", "xyz", ""},
		{"hex then junk", "3a0bfg", ""},
		{"negative", "-3A0BFF", ""},
		{"negative after 0x", "0x-3a", ""},
		{"65 hex digits", strings.Repeat("f", 65), ""},
		{"65 digits of leading zeros", strings.Repeat("0", 64) + "1", ""},
		{"decimal point", "3a.0b", ""},
		{"underscore", "3a_0b", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseSerial(c.in)
			if c.want == "" {
				if err == nil {
					t.Fatalf("ParseSerial(%q) = %q, want an error", c.in, got)
				}
				if !errors.Is(err, ErrBadSerial) {
					t.Errorf("error %v does not wrap ErrBadSerial", err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ParseSerial(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			// Canonical form parses to itself, and so does what openssl prints.
			if again, err := ParseSerial(got.OpenSSL()); err != nil || again != got {
				t.Errorf("ParseSerial(OpenSSL()) = %q, %v; want %q", again, err, got)
			}
			if SerialFromBig(got.Big()) != got {
				t.Errorf("Big round trip of %q gives %q", got, SerialFromBig(got.Big()))
			}
		})
	}
}

func TestSerialOpenSSL(t *testing.T) {
	for _, c := range []struct {
		in   Serial
		want string
	}{
		{"3a0bff", "3A0BFF"},
		{"abc", "0ABC"},
		{"7", "07"},
		{"0", "00"},
		{"7fffffffffffffffffffffffffffffff", "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"},
	} {
		got := c.in.OpenSSL()
		if got != c.want {
			t.Errorf("Serial(%q).OpenSSL() = %q, want %q", c.in, got, c.want)
		}
		if len(got)%2 != 0 || strings.ToUpper(got) != got {
			t.Errorf("OpenSSL() = %q: want even length upper case", got)
		}
	}
	if n := Serial("not hex").Big(); n.Sign() != 0 {
		t.Errorf("Big of a non-canonical serial = %v, want 0", n)
	}
}

func TestNewSerial(t *testing.T) {
	const n = 1000
	seen := make(map[string]bool, n)
	minBits := 1 << 10
	for range n {
		s, err := NewSerial()
		if err != nil {
			t.Fatal(err)
		}
		if s.Sign() <= 0 {
			t.Fatalf("serial %v is not positive", s)
		}
		// At least 64 random bits (CA/B BR); 16 bytes with the top bit clear
		// and a non-zero first byte give 121-127 bits, and a DER INTEGER of
		// at most 16 bytes (no 0x00 padding).
		if s.BitLen() < 64 || s.BitLen() > 127 {
			t.Fatalf("serial %x has %d bits, want 64..127", s, s.BitLen())
		}
		minBits = min(minBits, s.BitLen())
		k := s.Text(16)
		if seen[k] {
			t.Fatalf("serial %s repeated", k)
		}
		seen[k] = true
		if got := SerialFromBig(s); string(got) != k || got.Big().Cmp(s) != 0 {
			t.Fatalf("SerialFromBig(%x) = %q", s, got)
		}
	}
	if minBits < 121 {
		t.Errorf("smallest serial has %d bits; the first random byte is never zero, so want >= 121", minBits)
	}
	if SerialFromBig(big.NewInt(0x3a0bff)) != "3a0bff" {
		t.Error("SerialFromBig is not lower-case hex")
	}
}
