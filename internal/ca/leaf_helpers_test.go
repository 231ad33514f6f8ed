package ca

import (
	"crypto"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/lint"
)

var testURLs = URLs{Base: "http://127.0.0.1:8080"}

// allKeyTypes are the key types Sigil issues to and signs with.
var allKeyTypes = []string{
	identity.KeyECDSAP256, identity.KeyECDSAP384, identity.KeyECDSAP521, identity.KeyEd25519,
	identity.KeyRSA2048, identity.KeyRSA3072, identity.KeyRSA4096,
}

var (
	leafKeysMu sync.Mutex
	leafKeys   = map[string]crypto.Signer{}
)

// leafKey returns a key of a type, made once per name (RSA generation is
// slow); different names give different keys.
func leafKey(tb testing.TB, keyType, name string) crypto.Signer {
	tb.Helper()
	leafKeysMu.Lock()
	defer leafKeysMu.Unlock()
	if k, ok := leafKeys[keyType+"/"+name]; ok {
		return k
	}
	k, err := keys.GenerateKey(keyType)
	if err != nil {
		tb.Fatal(err)
	}
	leafKeys[keyType+"/"+name] = k
	return k
}

var testTime = time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)

// leafIssuer makes a root and an intermediate of keyType under it and
// returns the intermediate as an Issuer named id. intermediateName is its
// common name (no organisation, so a leaf can be given the same name).
func leafIssuer(tb testing.TB, id, keyType, intermediateName string) *Issuer {
	tb.Helper()
	rootKey := leafKey(tb, keyType, "root")
	root, err := NewRootCertificate(rootKey, CASpec{CommonName: "Sigil Test Root", Organization: "Sigil Tëst", TTL: 30 * 365 * 24 * time.Hour, MaxPathLen: -1}, testTime)
	if err != nil {
		tb.Fatal(err)
	}
	rootIss, err := NewIssuer("root-"+id, root, rootKey, nil)
	if err != nil {
		tb.Fatal(err)
	}
	key := leafKey(tb, keyType, "intermediate")
	cert, err := NewIntermediateCertificate(rootIss, key.Public(), CASpec{CommonName: intermediateName, TTL: 20 * 365 * 24 * time.Hour}, testURLs, testTime)
	if err != nil {
		tb.Fatal(err)
	}
	iss, err := NewIssuer(id, cert, key, []*x509.Certificate{root})
	if err != nil {
		tb.Fatal(err)
	}
	return iss
}

var (
	testLinterOnce sync.Once
	testLinter     *lint.Linter
	testLinterErr  error
)

func sharedLinter(tb testing.TB) *lint.Linter {
	tb.Helper()
	testLinterOnce.Do(func() { testLinter, testLinterErr = lint.New() })
	if testLinterErr != nil {
		tb.Fatal(testLinterErr)
	}
	return testLinter
}
