package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// This file encodes the TBSCertificate of the leaves Sigil issues, for the
// one shape Prepare builds, byte for byte as crypto/x509.CreateCertificate
// would (leaf_test.go and FuzzTBS compare the two). Building it here instead
// of having CreateCertificate sign a lint certificate with a throwaway key
// saves a signature and its verification per certificate; zlint does not
// look at the signature value (see lintCertificate).
//
// Extensions come in crypto/x509's order: keyUsage, extKeyUsage,
// basicConstraints, authorityKeyIdentifier, authorityInfoAccess,
// subjectAltName, cRLDistributionPoints. A leaf has no subjectKeyIdentifier
// (crypto/x509 only derives one for CA certificates).

var (
	oidExtKeyUsage        = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtExtKeyUsage     = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidExtAuthorityKeyID  = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtAIA             = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidExtSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtCRLDistribution = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidAIAOCSP            = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1}
	oidAIACAIssuers       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 2}
	oidAttrCommonName     = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSigSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSigECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidSigECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidSigECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidSigEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
	emptyName             = []byte{0x30, 0x00}
	basicConstraintsNotCA = []byte{0x30, 0x00} // SEQUENCE { } : cA FALSE (DEFAULT), no pathLen
	placeholderSignature  = []byte{0x00}       // see lintCertificate
	errUnknownExtKeyUsage = errors.New("unknown extended key usage")
	errNegativeSerial     = errors.New("serial number must be positive")
	extKeyUsageOIDByUsage = map[x509.ExtKeyUsage]asn1.ObjectIdentifier{
		x509.ExtKeyUsageAny:                            {2, 5, 29, 37, 0},
		x509.ExtKeyUsageServerAuth:                     {1, 3, 6, 1, 5, 5, 7, 3, 1},
		x509.ExtKeyUsageClientAuth:                     {1, 3, 6, 1, 5, 5, 7, 3, 2},
		x509.ExtKeyUsageCodeSigning:                    {1, 3, 6, 1, 5, 5, 7, 3, 3},
		x509.ExtKeyUsageEmailProtection:                {1, 3, 6, 1, 5, 5, 7, 3, 4},
		x509.ExtKeyUsageIPSECEndSystem:                 {1, 3, 6, 1, 5, 5, 7, 3, 5},
		x509.ExtKeyUsageIPSECTunnel:                    {1, 3, 6, 1, 5, 5, 7, 3, 6},
		x509.ExtKeyUsageIPSECUser:                      {1, 3, 6, 1, 5, 5, 7, 3, 7},
		x509.ExtKeyUsageTimeStamping:                   {1, 3, 6, 1, 5, 5, 7, 3, 8},
		x509.ExtKeyUsageOCSPSigning:                    {1, 3, 6, 1, 5, 5, 7, 3, 9},
		x509.ExtKeyUsageMicrosoftServerGatedCrypto:     {1, 3, 6, 1, 4, 1, 311, 10, 3, 3},
		x509.ExtKeyUsageNetscapeServerGatedCrypto:      {2, 16, 840, 1, 113730, 4, 1},
		x509.ExtKeyUsageMicrosoftCommercialCodeSigning: {1, 3, 6, 1, 4, 1, 311, 2, 1, 22},
		x509.ExtKeyUsageMicrosoftKernelCodeSigning:     {1, 3, 6, 1, 4, 1, 311, 61, 1, 1},
	}
)

// leafShape is what every leaf of one issuer shares, encoded once.
type leafShape struct {
	sigAlg []byte // AlgorithmIdentifier, in the TBS and outside it
	issuer []byte // the issuer certificate's RawSubject
	aki    []byte // authorityKeyIdentifier extension, nil if the issuer has no SKI
	aia    []byte // authorityInfoAccess extension (OCSP, caIssuers)
	crlDP  []byte // cRLDistributionPoints extension
}

func newLeafShape(iss *Issuer, urls URLs) (*leafShape, error) {
	alg, err := signatureAlgorithm(iss.Cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: %w", iss.ID, err)
	}
	s := &leafShape{sigAlg: alg, issuer: iss.Cert.RawSubject}
	if len(s.issuer) == 0 {
		return nil, fmt.Errorf("issuer %q: certificate has no raw subject", iss.ID)
	}
	if ski := iss.Cert.SubjectKeyId; len(ski) > 0 {
		if s.aki, err = encodeExtension(oidExtAuthorityKeyID, false, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ski) })
			})
		}); err != nil {
			return nil, err
		}
	}
	ocsp, caIssuers := urls.OCSP(), urls.IssuerCert(iss.ID)
	if s.aia, err = encodeExtension(oidExtAIA, false, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, ad := range []struct {
				method asn1.ObjectIdentifier
				url    string
			}{{oidAIAOCSP, ocsp}, {oidAIACAIssuers, caIssuers}} {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(ad.method)
					addImplicitString(b, 6, ad.url) // uniformResourceIdentifier
				})
			}
		})
	}); err != nil {
		return nil, err
	}
	crl := urls.CRL(iss.ID)
	if s.crlDP, err = encodeExtension(oidExtCRLDistribution, false, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // CRLDistributionPoints
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // DistributionPoint
				b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { // distributionPoint
					b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { // fullName
						addImplicitString(b, 6, crl)
					})
				})
			})
		})
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// signatureAlgorithm is the AlgorithmIdentifier crypto/x509 uses by default
// for an issuer key: RSA PKCS #1 v1.5 with SHA-256 (NULL parameters), ECDSA
// with the curve's hash (no parameters), Ed25519.
func signatureAlgorithm(pub crypto.PublicKey) ([]byte, error) {
	var oid asn1.ObjectIdentifier
	null := false
	switch k := pub.(type) {
	case *rsa.PublicKey:
		oid, null = oidSigSHA256WithRSA, true
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			oid = oidSigECDSAWithSHA256
		case elliptic.P384():
			oid = oidSigECDSAWithSHA384
		case elliptic.P521():
			oid = oidSigECDSAWithSHA512
		default:
			return nil, errors.New("unsupported elliptic curve")
		}
	case ed25519.PublicKey:
		oid = oidSigEd25519
	default:
		return nil, fmt.Errorf("unsupported issuer key %T", pub)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if null {
			b.AddASN1NULL()
		}
	})
	return b.Bytes()
}

// leafTBS is what varies from one leaf to the next.
type leafTBS struct {
	serial      *big.Int
	commonName  string
	notBefore   time.Time
	notAfter    time.Time
	spki        []byte // DER SubjectPublicKeyInfo (x509.MarshalPKIXPublicKey)
	keyUsage    x509.KeyUsage
	extKeyUsage []x509.ExtKeyUsage
	dnsNames    []string
	emails      []string
	ips         []net.IP
	uris        []*url.URL
}

// tbs encodes the TBSCertificate. Its errors are the ones crypto/x509 would
// return for the same input: a negative serial, an unknown EKU, a non-ASCII
// name (SANs are IA5String), a common name that is not UTF-8, or a time
// GeneralizedTime cannot hold.
func (s *leafShape) tbs(l *leafTBS) ([]byte, error) {
	if l.serial == nil || l.serial.Sign() < 0 {
		return nil, errNegativeSerial
	}
	subject, err := encodeSubject(l.commonName)
	if err != nil {
		return nil, err
	}
	nb, err := encodeTime(l.notBefore)
	if err != nil {
		return nil, err
	}
	na, err := encodeTime(l.notAfter)
	if err != nil {
		return nil, err
	}
	for _, u := range l.extKeyUsage {
		if _, ok := extKeyUsageOIDByUsage[u]; !ok {
			return nil, errUnknownExtKeyUsage
		}
	}
	uris := make([]string, len(l.uris))
	for i, u := range l.uris {
		if u == nil {
			return nil, errors.New("nil URI")
		}
		uris[i] = u.String()
	}
	for _, list := range [][]string{l.dnsNames, l.emails, uris} {
		for _, n := range list {
			if err := checkIA5(n); err != nil {
				return nil, err
			}
		}
	}
	hasSAN := len(l.dnsNames)+len(l.emails)+len(l.ips)+len(l.uris) > 0
	// crypto/x509 leaves the authority key identifier out when the subject
	// equals the issuer's name (it takes the certificate for self-issued).
	aki := s.aki
	if string(subject) == string(s.issuer) {
		aki = nil
	}

	b := cryptobyte.NewBuilder(make([]byte, 0, 512+len(l.spki)))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1Int64(2) // v3
		})
		b.AddASN1BigInt(l.serial)
		b.AddBytes(s.sigAlg)
		b.AddBytes(s.issuer)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(nb)
			b.AddBytes(na)
		})
		b.AddBytes(subject)
		b.AddBytes(l.spki)
		b.AddASN1(cbasn1.Tag(3).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				if l.keyUsage != 0 {
					addExtension(b, oidExtKeyUsage, true, func(b *cryptobyte.Builder) { addKeyUsage(b, l.keyUsage) })
				}
				if len(l.extKeyUsage) > 0 {
					addExtension(b, oidExtExtKeyUsage, false, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, u := range l.extKeyUsage {
								b.AddASN1ObjectIdentifier(extKeyUsageOIDByUsage[u])
							}
						})
					})
				}
				addExtension(b, oidExtBasicConstraints, true, func(b *cryptobyte.Builder) { b.AddBytes(basicConstraintsNotCA) })
				b.AddBytes(aki)
				b.AddBytes(s.aia)
				if hasSAN {
					// RFC 5280 4.2.1.6: critical when the subject is empty.
					addExtension(b, oidExtSubjectAltName, string(subject) == string(emptyName), func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, n := range l.dnsNames {
								addImplicitString(b, 2, n)
							}
							for _, n := range l.emails {
								addImplicitString(b, 1, n)
							}
							for _, ip := range l.ips {
								if v4 := ip.To4(); v4 != nil {
									ip = v4
								}
								b.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ip) })
							}
							for _, n := range uris {
								addImplicitString(b, 6, n)
							}
						})
					})
				}
				b.AddBytes(s.crlDP)
			})
		})
	})
	return b.Bytes()
}

// lintCertificate wraps a TBS as a certificate for the linter. Its signature
// is a placeholder: zcrypto's parser reads the signature only to decide
// whether a certificate whose subject equals its issuer is self-signed (a
// placeholder never verifies, as the throwaway-key signature never did), and
// no lint in Sigil's set reads the signature value. The outer
// AlgorithmIdentifier equals the TBS one, so lints comparing the two, or
// reading the algorithm, see the certificate the real key will sign.
func (s *leafShape) lintCertificate(tbs []byte) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(tbs)+len(s.sigAlg)+16))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(s.sigAlg)
		b.AddASN1BitString(placeholderSignature)
	})
	return b.Bytes()
}

func encodeExtension(oid asn1.ObjectIdentifier, critical bool, value func(*cryptobyte.Builder)) ([]byte, error) {
	var b cryptobyte.Builder
	addExtension(&b, oid, critical, value)
	return b.Bytes()
}

// addExtension adds an Extension; critical is omitted when FALSE (DER).
func addExtension(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, critical bool, value func(*cryptobyte.Builder)) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

// addImplicitString adds a context-specific, primitive [tag] string, as a
// GeneralName of type rfc822Name (1), dNSName (2) or URI (6).
func addImplicitString(b *cryptobyte.Builder, tag uint8, s string) {
	b.AddASN1(cbasn1.Tag(tag).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
}

// addKeyUsage adds the KeyUsage BIT STRING as crypto/x509 does: bit 0 is the
// most significant bit, at most two bytes, trailing zero bits dropped.
func addKeyUsage(b *cryptobyte.Builder, ku x509.KeyUsage) {
	a := [2]byte{reverseBits(byte(ku)), reverseBits(byte(ku >> 8))}
	n := 1
	if a[1] != 0 {
		n = 2
	}
	bits := a[:n]
	bitLen := bitLength(bits)
	b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) {
		b.AddUint8(byte((8 - bitLen%8) % 8))
		b.AddBytes(bits)
	})
}

func reverseBits(in byte) byte {
	b1 := in>>4 | in<<4
	b2 := b1>>2&0x33 | b1<<2&0xcc
	return b2>>1&0x55 | b2<<1&0xaa
}

// bitLength is the length up to and including the last set bit.
func bitLength(bits []byte) int {
	n := len(bits) * 8
	for i := len(bits) - 1; i >= 0; i-- {
		for bit := 0; bit < 8; bit++ {
			if bits[i]>>bit&1 == 1 {
				return n
			}
			n--
		}
	}
	return 0
}

// encodeSubject encodes a Name that holds at most a common name, as
// pkix.Name.ToRDNSequence and encoding/asn1 do: PrintableString when every
// character allows it, else UTF8String.
func encodeSubject(cn string) ([]byte, error) {
	if cn == "" {
		return emptyName, nil
	}
	tag := cbasn1.PrintableString
	for i := 0; i < len(cn); i++ {
		if !isPrintable(cn[i]) {
			tag = cbasn1.UTF8String
			break
		}
	}
	if tag == cbasn1.UTF8String && !utf8.ValidString(cn) {
		return nil, errors.New("common name is not valid UTF-8")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidAttrCommonName)
				b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(cn)) })
			})
		})
	})
	return b.Bytes()
}

// isPrintable is encoding/asn1's PrintableString set for marshalling (no
// '*', no '&').
func isPrintable(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		'\'' <= c && c <= ')' || '+' <= c && c <= '/' ||
		c == ' ' || c == ':' || c == '=' || c == '?'
}

// encodeTime encodes a validity time in UTC: UTCTime for 1950 through 2049,
// GeneralizedTime otherwise (RFC 5280 4.1.2.5), whole seconds.
func encodeTime(t time.Time) ([]byte, error) {
	t = t.UTC()
	year := t.Year()
	tag := cbasn1.UTCTime
	var buf [15]byte
	d := buf[:0]
	switch {
	case 1950 <= year && year < 2050:
		d = append2(d, year%100)
	case 0 <= year && year <= 9999:
		tag = cbasn1.GeneralizedTime
		d = append2(append2(d, year/100), year%100)
	default:
		return nil, fmt.Errorf("cannot encode year %d", year)
	}
	_, month, day := t.Date()
	hour, minute, sec := t.Clock()
	d = append2(append2(append2(append2(append2(d, int(month)), day), hour), minute), sec)
	d = append(d, 'Z')
	var b cryptobyte.Builder
	b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes(d) })
	return b.Bytes()
}

func append2(d []byte, v int) []byte { return append(d, byte('0'+v/10%10), byte('0'+v%10)) }

func checkIA5(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return fmt.Errorf("%q cannot be encoded as an IA5String", s)
		}
	}
	return nil
}
