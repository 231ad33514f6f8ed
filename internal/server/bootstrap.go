package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/store"
)

// Issuer IDs created on first start.
const (
	rootID         = "root"
	intermediateID = "issuing-1"
)

// loadKEK finds the key-encryption key: an explicit file, SIGIL_KEK, a
// passphrase, or (dev mode, or a data dir that already has one) the kek.key
// file in the data directory.
func loadKEK(cfg *Config) (*keys.KEK, error) {
	switch {
	case cfg.KEKFile != "":
		return keys.LoadKEKFile(cfg.KEKFile)
	case cfg.KEK != "":
		return keys.KEKFromEnv(cfg.KEK)
	case cfg.KEKPassphrase != "":
		saltPath := filepath.Join(cfg.DataDir, "kek.salt")
		salt, err := os.ReadFile(saltPath)
		if errors.Is(err, os.ErrNotExist) {
			salt = make([]byte, 16)
			if _, err := randRead(salt); err != nil {
				return nil, err
			}
			if err := keys.WriteFileAtomic(saltPath, salt, 0o600); err != nil {
				return nil, fmt.Errorf("writing KEK salt: %w", err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("reading KEK salt: %w", err)
		}
		return keys.KEKFromPassphrase([]byte(cfg.KEKPassphrase), salt)
	}
	path := filepath.Join(cfg.DataDir, "kek.key")
	if _, err := os.Stat(path); err == nil {
		return keys.LoadKEKFile(path)
	}
	if !cfg.Dev {
		return nil, errors.New("no key-encryption key: set --kek-file, SIGIL_KEK or SIGIL_KEK_PASSPHRASE (or use --dev, which keeps one in the data directory)")
	}
	return keys.GenerateKEKFile(path)
}

// ensureCA creates the root and the default intermediate on first start, and
// loads every issuer with its key.
func ensureCA(ctx context.Context, cfg *Config, st store.Store, backend keys.Backend, urls ca.URLs) ([]*ca.Issuer, string, error) {
	recs, err := st.ListIssuers(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("listing issuers: %w", err)
	}
	if len(recs) == 0 {
		if err := createCA(ctx, cfg, st, backend, urls); err != nil {
			return nil, "", err
		}
		if recs, err = st.ListIssuers(ctx); err != nil {
			return nil, "", err
		}
	}
	byID := map[string]*store.Issuer{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	certs := map[string]*x509.Certificate{}
	for _, r := range recs {
		c, err := x509.ParseCertificate(r.CertDER)
		if err != nil {
			return nil, "", fmt.Errorf("issuer %q: %w", r.ID, err)
		}
		certs[r.ID] = c
	}
	var issuers []*ca.Issuer
	defaultID := ""
	for _, r := range recs {
		if r.KeyRef == "" {
			continue // a chain certificate imported without its key
		}
		signer, err := backend.Load(ctx, r.KeyRef)
		if err != nil {
			return nil, "", fmt.Errorf("loading the key of issuer %q (is the key-encryption key right?): %w", r.ID, err)
		}
		var chain []*x509.Certificate
		for p := r.ParentID; p != ""; p = byID[p].ParentID {
			if byID[p] == nil || len(chain) > 8 {
				return nil, "", fmt.Errorf("issuer %q: broken parent chain at %q", r.ID, p)
			}
			chain = append(chain, certs[p])
		}
		iss, err := ca.NewIssuer(r.ID, certs[r.ID], signer, chain)
		if err != nil {
			return nil, "", err
		}
		issuers = append(issuers, iss)
		if r.IsDefault {
			defaultID = r.ID
		}
	}
	if defaultID == "" {
		return nil, "", errors.New("no default issuer in the store")
	}
	return issuers, defaultID, nil
}

func createCA(ctx context.Context, cfg *Config, st store.Store, backend keys.Backend, urls ca.URLs) error {
	now := time.Now()
	rootRef, rootKey, err := backend.Generate(ctx, cfg.CAKeyType)
	if err != nil {
		return fmt.Errorf("generating root key: %w", err)
	}
	rootCert, err := ca.NewRootCertificate(rootKey, ca.CASpec{CommonName: cfg.CAName + " Root CA", Organization: cfg.CAName, TTL: 10 * 365 * 24 * time.Hour, MaxPathLen: 1}, now)
	if err != nil {
		return err
	}
	root, err := ca.NewIssuer(rootID, rootCert, rootKey, nil)
	if err != nil {
		return err
	}
	intRef, intKey, err := backend.Generate(ctx, cfg.CAKeyType)
	if err != nil {
		return fmt.Errorf("generating intermediate key: %w", err)
	}
	intCert, err := ca.NewIntermediateCertificate(root, intKey.Public(), ca.CASpec{CommonName: cfg.CAName + " Intermediate CA", Organization: cfg.CAName, TTL: 5 * 365 * 24 * time.Hour, MaxPathLen: 0}, urls, now)
	if err != nil {
		return err
	}
	err = st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, i := range []*store.Issuer{
			{ID: rootID, CertDER: rootCert.Raw, KeyRef: rootRef, CreatedAt: now.UTC()},
			{ID: intermediateID, CertDER: intCert.Raw, KeyRef: intRef, ParentID: rootID, IsDefault: true, CreatedAt: now.UTC()},
		} {
			if err := tx.PutIssuer(ctx, i); err != nil {
				return err
			}
			if err := tx.AppendAudit(ctx, &audit.Event{Time: now, Actor: "system", Action: "ca.create", Object: i.ID, Result: audit.ResultSuccess}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording the new CA: %w", err)
	}
	return nil
}
