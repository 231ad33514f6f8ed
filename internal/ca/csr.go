package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/sigil-pki/sigil/internal/identity"
)

// MaxCSRSize bounds a CSR in PEM or DER. Real CSRs are a few KiB; 100 names
// with an RSA-8192 key stay far below this.
const MaxCSRSize = 64 << 10

// ErrBadCSR marks every reason a CSR is refused at parse time.
var ErrBadCSR = errors.New("bad CSR")

var (
	oidExtBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	// Extensions whose content we never copy but which are harmless to see.
	ignoredExtensions = map[string]bool{
		"2.5.29.17": true, // subjectAltName: parsed by crypto/x509 into the request
		"2.5.29.15": true, // keyUsage: the profile decides
		"2.5.29.37": true, // extKeyUsage: the profile decides
		"2.5.29.14": true, // subjectKeyIdentifier
	}
)

// CSR is a parsed, signature-checked certificate request.
type CSR struct {
	Request *x509.CertificateRequest
	KeyType string
}

// ParseCSR accepts one PEM "CERTIFICATE REQUEST" block or DER bytes, checks
// the key is acceptable, that the signature verifies (proof of possession),
// and that it asks for nothing a leaf may not have. Key checks come before
// the signature check so huge keys cost nothing.
func ParseCSR(data []byte) (*CSR, error) {
	if len(data) > MaxCSRSize {
		return nil, fmt.Errorf("%w: %d bytes is over the %d-byte limit", ErrBadCSR, len(data), MaxCSRSize)
	}
	der := data
	if trimmed := bytes.TrimSpace(data); bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		block, rest := pem.Decode(trimmed)
		if block == nil {
			return nil, fmt.Errorf("%w: malformed PEM", ErrBadCSR)
		}
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("%w: PEM block is %q, want CERTIFICATE REQUEST", ErrBadCSR, block.Type)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("%w: unexpected data after the PEM block", ErrBadCSR)
		}
		der = block.Bytes
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	kt, err := identity.KeyTypeOf(req.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature does not verify (no proof of possession of the private key): %v", ErrBadCSR, err)
	}
	for _, ext := range req.Extensions {
		if ext.Id.Equal(oidExtBasicConstraints) {
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			if _, err := asn1.Unmarshal(ext.Value, &bc); err != nil || bc.IsCA {
				return nil, fmt.Errorf("%w: CSR asks for a CA certificate (basicConstraints CA:TRUE); Sigil issues end-entity certificates only", ErrBadCSR)
			}
			continue
		}
		if ext.Critical && !ignoredExtensions[ext.Id.String()] {
			return nil, fmt.Errorf("%w: unknown critical extension %s", ErrBadCSR, ext.Id)
		}
	}
	return &CSR{Request: req, KeyType: kt}, nil
}
