package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/store"
)

// ImportRequest is an existing CA to add as an issuer.
type ImportRequest struct {
	ID          string
	CertPEM     []byte // the CA certificate
	KeyPEM      []byte // its private key (PKCS#8, PKCS#1 or SEC1; encrypted PKCS#8 with KeyPassword)
	KeyPassword []byte
	// ChainPEM holds the certificates above it up to the root, when those
	// are not already issuers here. They are recorded without keys: Sigil
	// serves them in chains but never signs with them.
	ChainPEM    []byte
	MakeDefault bool
}

var issuerIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ImportCA adds an existing CA certificate and key to a data directory's
// store, sealing the key under the KEK like generated keys. A running server
// picks it up at its next start.
func ImportCA(ctx context.Context, cfg Config, req ImportRequest) (*store.Issuer, error) {
	if !issuerIDPattern.MatchString(req.ID) || req.ID == "default" {
		return nil, fmt.Errorf("invalid issuer id %q: lowercase letters, digits, '.', '_' or '-', not \"default\"", req.ID)
	}
	certs, err := ca.ParseCertificatesPEM(req.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert := certs[0]
	key, err := keys.ParsePrivateKeyPEM(req.KeyPEM, req.KeyPassword)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if _, err := ca.NewIssuer(req.ID, cert, key, nil); err != nil {
		return nil, err
	}
	if time.Now().After(cert.NotAfter) {
		return nil, fmt.Errorf("CA certificate expired on %s", cert.NotAfter.Format(time.RFC3339))
	}
	var chain []*x509.Certificate
	if len(req.ChainPEM) > 0 {
		if chain, err = ca.ParseCertificatesPEM(req.ChainPEM); err != nil {
			return nil, fmt.Errorf("chain: %w", err)
		}
	}
	kek, err := loadKEK(&cfg)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "keys")); err != nil {
		return nil, fmt.Errorf("no Sigil data directory at %s (start the server once first): %w", cfg.DataDir, err)
	}
	backend, err := keys.NewFileBackend(filepath.Join(cfg.DataDir, "keys"), kek)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	existing, err := st.ListIssuers(ctx)
	if err != nil {
		return nil, err
	}
	byFP := map[string]*store.Issuer{}
	for _, i := range existing {
		if i.ID == req.ID {
			return nil, fmt.Errorf("issuer %q already exists", req.ID)
		}
		byFP[identity.Fingerprint(i.CertDER)] = i
	}
	if byFP[identity.Fingerprint(cert.Raw)] != nil {
		return nil, fmt.Errorf("this CA certificate is already issuer %q", byFP[identity.Fingerprint(cert.Raw)].ID)
	}
	// Link the certificate to its parent: an existing issuer or the next
	// certificate of the given chain, each checked by signature.
	var records []*store.Issuer
	child := cert
	parentID := ""
	for i := 0; !isSelfIssued(child); i++ {
		parent := findParent(child, existing)
		if parent != nil {
			parentID = parent.ID
			break
		}
		if i >= len(chain) {
			return nil, errors.New("cannot find the issuer of the CA certificate: pass its chain with --chain, up to the root")
		}
		if err := child.CheckSignatureFrom(chain[i]); err != nil {
			return nil, fmt.Errorf("chain certificate %d did not sign the one below it: %w", i+1, err)
		}
		rec := &store.Issuer{ID: fmt.Sprintf("%s-chain-%d", req.ID, i+1), CertDER: chain[i].Raw, CreatedAt: time.Now().UTC()}
		if len(records) > 0 {
			records[len(records)-1].ParentID = rec.ID
		} else {
			parentID = rec.ID
		}
		records = append(records, rec)
		child = chain[i]
	}
	ref, err := backend.Import(ctx, key)
	if err != nil {
		return nil, err
	}
	iss := &store.Issuer{ID: req.ID, CertDER: cert.Raw, KeyRef: ref, ParentID: parentID, IsDefault: req.MakeDefault, CreatedAt: time.Now().UTC()}
	err = st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, r := range append(records, iss) {
			if err := tx.PutIssuer(ctx, r); err != nil {
				return err
			}
			if err := tx.AppendAudit(ctx, &audit.Event{Time: time.Now(), Actor: "local-admin", Action: "ca.import", Object: r.ID, Result: audit.ResultSuccess,
				Detail: fmt.Sprintf(`{"sha256":%q,"default":%t,"has_key":%t}`, identity.Fingerprint(r.CertDER), r.IsDefault, r.KeyRef != "")}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording the imported CA: %w", err)
	}
	return iss, nil
}

func isSelfIssued(c *x509.Certificate) bool { return string(c.RawIssuer) == string(c.RawSubject) }

func findParent(c *x509.Certificate, issuers []*store.Issuer) *store.Issuer {
	for _, i := range issuers {
		p, err := x509.ParseCertificate(i.CertDER)
		if err == nil && c.CheckSignatureFrom(p) == nil {
			return i
		}
	}
	return nil
}
