package discovery

import (
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/store"
)

// jks reads the certificates of a Java KeyStore (magic FEEDFEED, versions 1
// and 2). Certificates are stored in clear; private keys are encrypted with
// a password, so a key entry is recorded by its certificate's public key
// (which is the key's). The keystore's integrity hash is not checked: it
// needs the password and guards nothing discovery relies on.
func (p *fileParser) jks(data []byte) {
	r := &jksReader{b: data}
	r.u32() // magic, checked by the caller
	version := r.u32()
	if version != 1 && version != 2 {
		p.errorf("Java keystore: unsupported version %d", version)
		return
	}
	count := r.u32()
	for i := uint32(0); i < count && r.err == nil && len(p.found) < maxObjects; i++ {
		tag := r.u32()
		r.utf() // alias
		r.n(8)  // timestamp
		switch tag {
		case 1: // private key entry: encrypted key, then its certificate chain
			r.n(int(r.u32()))
			chain := r.u32()
			for j := uint32(0); j < chain && r.err == nil; j++ {
				c := p.jksCert(r, version)
				if c != nil && j == 0 {
					if id, ok := inventory.FromPublicKey(c.PublicKey); ok {
						p.add(id, store.DetailPrivateKey+" (jks, encrypted)")
					}
				}
			}
		case 2: // trusted certificate entry
			p.jksCert(r, version)
		default:
			r.err = fmt.Errorf("unknown entry tag %d", tag)
		}
	}
	if r.err != nil {
		p.errorf("Java keystore: %v", r.err)
	}
}

func (p *fileParser) jksCert(r *jksReader, version uint32) *x509.Certificate {
	if version == 2 {
		r.utf() // certificate type, "X.509"
	}
	der := r.n(int(r.u32()))
	if r.err != nil {
		return nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.errorf("Java keystore certificate: %v", err)
		return nil
	}
	p.add(inventory.FromCertificate(c), "certificate (jks)")
	return c
}

// jksReader reads big-endian fields, remembering the first error.
type jksReader struct {
	b   []byte
	err error
}

var errJKSShort = errors.New("truncated")

func (r *jksReader) n(k int) []byte {
	if r.err != nil {
		return nil
	}
	if k < 0 || k > len(r.b) {
		r.err = errJKSShort
		return nil
	}
	out := r.b[:k]
	r.b = r.b[k:]
	return out
}

func (r *jksReader) u32() uint32 {
	b := r.n(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *jksReader) utf() string {
	b := r.n(2)
	if b == nil {
		return ""
	}
	return string(r.n(int(binary.BigEndian.Uint16(b))))
}
