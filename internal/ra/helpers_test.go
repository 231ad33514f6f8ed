package ra_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to reach the file behind the store's back

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/lint"
	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
	"github.com/sigil-pki/sigil/internal/store/sqlite"
)

// testProfiles is applied by newEnv: "web" for *.test names, "other" for
// *.other.internal names (for token scoping).
const testProfiles = `profiles:
  - name: web
    key_types: [ecdsa-p256]
    default_ttl: 720h
    max_ttl: 2160h
    dns: ["*.test"]
  - name: other
    key_types: [ecdsa-p256]
    default_ttl: 24h
    dns: ["*.other.internal"]
`

const intermediateID = "issuing-1"

// failingSigner is the only test double: a real key that refuses to sign
// while fail is set, as an HSM that went away would.
type failingSigner struct {
	crypto.Signer
	fail   atomic.Bool
	panics atomic.Bool // a buggy HSM driver
}

var errSignerDown = errors.New("signer unavailable (test)")

func (s *failingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.fail.Load() {
		return nil, errSignerDown
	}
	if s.panics.Load() {
		panic("signer crashed (test)")
	}
	return s.Signer.Sign(r, digest, opts)
}

// clock is a settable offset from the real time, so CRL tests can move past
// certificate expiry without sleeping.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// env is a real RA over a temporary SQLite file and a fresh two-level CA.
type env struct {
	t      *testing.T
	ctx    context.Context
	ra     *ra.RA
	st     *sqlite.Store
	path   string
	root   *ca.Issuer
	inter  *ca.Issuer
	signer *failingSigner // the intermediate's key
	clock  *clock
}

var (
	linterOnce sync.Once
	linter     *lint.Linter
	linterErr  error
)

// sharedLinter builds the (costly, concurrency-safe) linter once per test binary.
func sharedLinter(t *testing.T) *lint.Linter {
	t.Helper()
	linterOnce.Do(func() { linter, linterErr = lint.New() })
	if linterErr != nil {
		t.Fatalf("lint.New: %v", linterErr)
	}
	return linter
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })

	now := time.Now()
	urls := ca.URLs{Base: "http://127.0.0.1:8080"}
	rootKey := mustKey(t)
	rootCert, err := ca.NewRootCertificate(rootKey, ca.CASpec{CommonName: "Test Root CA", Organization: "Sigil Test", TTL: 10 * 365 * 24 * time.Hour, MaxPathLen: 1}, now)
	if err != nil {
		t.Fatalf("NewRootCertificate: %v", err)
	}
	root, err := ca.NewIssuer("root", rootCert, rootKey, nil)
	if err != nil {
		t.Fatalf("NewIssuer(root): %v", err)
	}
	intKey := mustKey(t)
	intCert, err := ca.NewIntermediateCertificate(root, intKey.Public(), ca.CASpec{CommonName: "Test Intermediate CA", Organization: "Sigil Test", TTL: 5 * 365 * 24 * time.Hour}, urls, now)
	if err != nil {
		t.Fatalf("NewIntermediateCertificate: %v", err)
	}
	signer := &failingSigner{Signer: intKey}
	inter, err := ca.NewIssuer(intermediateID, intCert, signer, []*x509.Certificate{rootCert})
	if err != nil {
		t.Fatalf("NewIssuer(intermediate): %v", err)
	}
	authority, err := ca.New([]*ca.Issuer{root, inter}, intermediateID, sharedLinter(t), urls)
	if err != nil {
		t.Fatalf("ca.New: %v", err)
	}
	clk := &clock{}
	r := ra.New(st, authority, slog.New(slog.DiscardHandler), clk.now)
	e := &env{t: t, ctx: ctx, ra: r, st: st, path: path, root: root, inter: inter, signer: signer, clock: clk}
	if _, err := r.ApplyProfiles(ctx, ra.Caller{}, mustDoc(t, testProfiles)); err != nil {
		t.Fatalf("ApplyProfiles: %v", err)
	}
	return e
}

func mustKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := keys.GenerateKey(identity.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustDoc(t testing.TB, yaml string) *policy.Document {
	t.Helper()
	doc, err := policy.ParseDocument([]byte(yaml))
	if err != nil {
		t.Fatalf("ParseDocument: %v", err)
	}
	return doc
}

// csr returns a PEM CSR for a fresh P-256 key naming dns (the first is the CN).
func csr(t testing.TB, dns ...string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: dns[0]}, DNSNames: dns}, mustKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// issue issues a certificate under profile "web" as the system caller.
func (e *env) issue(name string) *ra.Issued {
	e.t.Helper()
	return e.issueAs(ra.Caller{}, "web", name, 0)
}

func (e *env) issueAs(c ra.Caller, profile, name string, ttl time.Duration) *ra.Issued {
	e.t.Helper()
	out, err := e.ra.Issue(e.ctx, c, ra.IssueRequest{Profile: profile, CSR: csr(e.t, name), TTL: ttl})
	if err != nil {
		e.t.Fatalf("Issue %s under %s: %v", name, profile, err)
	}
	return out
}

func parseCert(t testing.TB, pemBytes []byte) *x509.Certificate {
	t.Helper()
	certs, err := ca.ParseCertificatesPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// token creates a token as the system and returns it.
func (e *env) token(role identity.Role, profiles ...string) (string, *identity.Token) {
	e.t.Helper()
	plain, tok, err := e.ra.CreateToken(e.ctx, ra.Caller{}, ra.TokenRequest{Role: role, Name: string(role), Profiles: profiles})
	if err != nil {
		e.t.Fatalf("CreateToken(%s): %v", role, err)
	}
	return plain, tok
}

// head returns the audit head sequence number.
func (e *env) head() int64 {
	e.t.Helper()
	seq, _, err := e.st.AuditHead(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return seq
}

// eventsAfter lists the audit events appended after seq.
func (e *env) eventsAfter(seq int64) []*audit.Event {
	e.t.Helper()
	evs, err := e.st.ListAudit(e.ctx, store.AuditFilter{AfterSeq: seq})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// verifyChain checks the audit chain end to end and returns the event count.
func (e *env) verifyChain() int64 {
	e.t.Helper()
	n, err := ra.VerifyChain(e.ctx, e.st)
	if err != nil {
		e.t.Fatalf("audit chain does not verify: %v", err)
	}
	if h := e.head(); n != h {
		e.t.Fatalf("VerifyChain verified %d events, head is %d", n, h)
	}
	return n
}

func (e *env) certs(status identity.CertStatus) []*identity.Certificate {
	e.t.Helper()
	recs, err := e.st.ListCertificates(e.ctx, store.CertFilter{Status: status})
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// db opens the store's file directly, as an operator with sqlite3 would.
func (e *env) db() *sql.DB {
	e.t.Helper()
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(e.path), RawQuery: "_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}

// ocspRequest builds the request a relying party sends for serial under iss
// (SHA-1 CertID, as OpenSSL does by default).
func ocspRequest(t testing.TB, iss *x509.Certificate, serial *big.Int) *ocsp.Request {
	t.Helper()
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(iss.RawSubjectPublicKeyInfo, &spki); err != nil {
		t.Fatal(err)
	}
	nh, kh := sha1.Sum(iss.RawSubject), sha1.Sum(spki.PublicKey.Bytes)
	return &ocsp.Request{HashAlgorithm: crypto.SHA1, IssuerNameHash: nh[:], IssuerKeyHash: kh[:], SerialNumber: serial}
}

// ocspStatus asks the RA and returns the parsed, signature-checked answer.
func (e *env) ocspStatus(iss *x509.Certificate, serial *big.Int) *ocsp.Response {
	e.t.Helper()
	der, err := e.ra.OCSP(e.ctx, ocspRequest(e.t, iss, serial), nil)
	if err != nil {
		e.t.Fatalf("OCSP: %v", err)
	}
	resp, err := ocsp.ParseResponse(der, iss)
	if err != nil {
		e.t.Fatalf("parsing OCSP response: %v", err)
	}
	if resp.SerialNumber.Cmp(serial) != 0 {
		e.t.Fatalf("OCSP response is for serial %x, asked %x", resp.SerialNumber, serial)
	}
	return resp
}

// crlEntries parses a CRL, checks its signature and number, and returns its
// entries by serial.
func (e *env) crlEntries(c *store.CRL) map[identity.Serial]x509.RevocationListEntry {
	e.t.Helper()
	rl, err := x509.ParseRevocationList(c.DER)
	if err != nil {
		e.t.Fatalf("ParseRevocationList: %v", err)
	}
	if err := rl.CheckSignatureFrom(e.inter.Cert); err != nil {
		e.t.Fatalf("CRL signature does not verify against the intermediate: %v", err)
	}
	if rl.Number.Int64() != c.Number {
		e.t.Fatalf("CRL number in DER = %v, stored %d", rl.Number, c.Number)
	}
	out := map[identity.Serial]x509.RevocationListEntry{}
	for _, ent := range rl.RevokedCertificateEntries {
		out[identity.SerialFromBig(ent.SerialNumber)] = ent
	}
	return out
}
