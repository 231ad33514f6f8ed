package lint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// testCA is a throwaway root + ECDSA P-256 intermediate pair, built once per
// test binary, shaped the way Sigil creates its own hierarchy.
type testCA struct {
	rootKey  *ecdsa.PrivateKey
	root     *x509.Certificate
	rootDER  []byte
	interKey *ecdsa.PrivateKey
	inter    *x509.Certificate
	interDER []byte
}

var (
	caOnce sync.Once
	caVal  *testCA
	caErr  error
)

func getCA(t testing.TB) *testCA {
	t.Helper()
	caOnce.Do(func() { caVal, caErr = newTestCA() })
	if caErr != nil {
		t.Fatalf("building test CA: %v", caErr)
	}
	return caVal
}

// randSerial returns a positive 128-bit serial, as Sigil issues them.
func randSerial() *big.Int {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[0] &= 0x7f // keep it positive in DER without a leading zero byte
	if b[0] == 0 {
		b[0] = 1 // keep it 16 bytes, never zero
	}
	return new(big.Int).SetBytes(b)
}

// skid computes an RFC 5280 method-1 subject key identifier.
func skid(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		panic(err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:]
}

func newTestCA() (*testCA, error) {
	now := time.Now().Truncate(time.Second)
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rootTmpl := rootTemplate(now, &rootKey.PublicKey)
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	interTmpl := intermediateTemplate(now, &interKey.PublicKey)
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		return nil, err
	}
	return &testCA{rootKey: rootKey, root: root, rootDER: rootDER, interKey: interKey, inter: inter, interDER: interDER}, nil
}

func rootTemplate(now time.Time, pub crypto.PublicKey) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{Organization: []string{"Sigil Test"}, CommonName: "Sigil Test Root CA"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour).Add(-time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		SubjectKeyId:          skid(pub),
	}
}

func intermediateTemplate(now time.Time, pub crypto.PublicKey) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{Organization: []string{"Sigil Test"}, CommonName: "Sigil Test Intermediate CA"},
		NotBefore:             now,
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour).Add(-time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid(pub),
		IssuingCertificateURL: []string{"http://127.0.0.1:8080/ca/root.crt"},
		CRLDistributionPoints: []string{"http://127.0.0.1:8080/crl/root.crl"},
	}
}

// leafTemplate is a leaf shaped like what Sigil issues.
func leafTemplate(ca *testCA) *x509.Certificate {
	now := time.Now().Truncate(time.Second)
	spiffe, err := url.Parse("spiffe://prod.internal/web")
	if err != nil {
		panic(err)
	}
	dns := []string{"bar.test", "www.bar.test", "api.prod.internal", "localhost"}
	return &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: dns[0]},
		NotBefore:             now,
		NotAfter:              now.Add(24 * time.Hour).Add(-time.Second),
		DNSNames:              dns,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		URIs:                  []*url.URL{spiffe},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		AuthorityKeyId:        ca.inter.SubjectKeyId,
		OCSPServer:            []string{"http://127.0.0.1:8080/ocsp"},
		IssuingCertificateURL: []string{"http://127.0.0.1:8080/ca/default.crt"},
		CRLDistributionPoints: []string{"http://127.0.0.1:8080/crl/default.crl"},
	}
}

type keyKind string

const (
	keyP256    keyKind = "ecdsa-p256"
	keyP384    keyKind = "ecdsa-p384"
	keyRSA2048 keyKind = "rsa-2048"
	keyRSA1024 keyKind = "rsa-1024"
	keyEd25519 keyKind = "ed25519"
)

var (
	keyMu    sync.Mutex
	keyCache = map[keyKind]crypto.PublicKey{}
)

// subjectKey returns a public key of the given kind (generated once per run;
// RSA generation is slow).
func subjectKey(t testing.TB, k keyKind) crypto.PublicKey {
	t.Helper()
	keyMu.Lock()
	defer keyMu.Unlock()
	if pub, ok := keyCache[k]; ok {
		return pub
	}
	var pub crypto.PublicKey
	switch k {
	case keyP256, keyP384:
		curve := elliptic.P256()
		if k == keyP384 {
			curve = elliptic.P384()
		}
		priv, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = &priv.PublicKey
	case keyRSA2048, keyRSA1024:
		bits := 2048
		if k == keyRSA1024 {
			bits = 1024
		}
		priv, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		pub = &priv.PublicKey
	case keyEd25519:
		p, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = p
	default:
		t.Fatalf("unknown key kind %q", k)
	}
	keyCache[k] = pub
	return pub
}

// issueLeaf signs tmpl with the test intermediate.
func issueLeaf(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) []byte {
	t.Helper()
	ca := getCA(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, pub, ca.interKey)
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	return der
}

// sampleLeaf returns a DER leaf shaped like a Sigil-issued certificate with
// an ECDSA P-256 subject key.
func sampleLeaf(t testing.TB) []byte {
	t.Helper()
	return issueLeaf(t, leafTemplate(getCA(t)), subjectKey(t, keyP256))
}
