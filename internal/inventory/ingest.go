package inventory

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/store"
)

// Bounds of one Report (clients split larger scans, see Report.Split).
const (
	MaxIdentities = 5000
	MaxLocations  = 50000
	MaxErrors     = 50000
	maxDER        = 64 << 10
	maxPath       = 4096
)

// Batch is a checked Report, ready to be applied in one transaction.
type Batch struct {
	Identities []*store.InventoryIdentity
	Locations  []*store.InventoryLocation
	Summary    Summary
}

// IssuedLookup finds certificates Sigil issued by fingerprint (store.Reader does).
type IssuedLookup interface {
	IssuedSerialsBySHA256(ctx context.Context, fingerprints []string) (map[string]string, error)
}

var validKinds = map[store.InventoryKind]bool{store.KindX509: true, store.KindSSHKey: true, store.KindSSHCert: true,
	store.KindPrivateKey: true, store.KindSecret: true}

var validLocKinds = map[store.LocationKind]bool{store.LocationNet: true, store.LocationFS: true, store.LocationAgent: true}

func malformed(format string, args ...any) error { return fail.New(fail.Malformed, format, args...) }

// Prepare checks a report from a scanner, agent or import and converts it to
// store rows seen at now. It trusts nothing a client says that it can
// recompute: an x509 identity's fields come from its DER, and only x509
// identities may carry DER, so no key material can enter the store. source
// is SourceDiscovered or SourceImported; certificates found in Sigil's own
// certificates table become SourceIssued, linked to their serial. Owner and
// labels in a report are ignored (set them with SetInventoryOwner).
func Prepare(ctx context.Context, lookup IssuedLookup, rep *Report, source store.InventorySource, now time.Time) (*Batch, error) {
	switch {
	case rep == nil:
		return nil, malformed("empty report")
	case len(rep.Identities) > MaxIdentities:
		return nil, malformed("report has %d identities; at most %d per report", len(rep.Identities), MaxIdentities)
	case len(rep.Locations) > MaxLocations:
		return nil, malformed("report has %d locations; at most %d per report", len(rep.Locations), MaxLocations)
	case len(rep.Errors) > MaxErrors:
		return nil, malformed("report has %d errors; at most %d per report", len(rep.Errors), MaxErrors)
	}
	now = now.UTC()
	b := &Batch{}
	byFP := map[string]*store.InventoryIdentity{}
	var x509FPs []string
	for i := range rep.Identities {
		id, err := checkIdentity(&rep.Identities[i], source, now)
		if err != nil {
			return nil, fmt.Errorf("identity %d: %w", i, err)
		}
		if _, dup := byFP[id.Fingerprint]; dup {
			continue
		}
		byFP[id.Fingerprint] = id
		b.Identities = append(b.Identities, id)
		if id.Kind == store.KindX509 {
			x509FPs = append(x509FPs, id.Fingerprint)
		}
	}
	seenLoc := map[string]bool{}
	for i := range rep.Locations {
		l := rep.Locations[i]
		l.Fingerprint = NormalizeFingerprint(l.Fingerprint)
		if byFP[l.Fingerprint] == nil {
			return nil, malformed("location %d: fingerprint %q is not among the report's identities", i, rep.Locations[i].Fingerprint)
		}
		if !validLocKinds[l.Kind] {
			return nil, malformed("location %d: unknown kind %q (net, fs or agent)", i, l.Kind)
		}
		if l.Port < 0 || l.Port > 65535 || l.ChainIndex < 0 || l.ChainIndex > 1<<16 {
			return nil, malformed("location %d: port or chain index out of range", i)
		}
		if len(l.Path) > maxPath || strings.ContainsRune(l.Path, 0) || strings.ContainsRune(l.Host, 0) {
			return nil, malformed("location %d: path too long or contains NUL", i)
		}
		if l.Host == "" {
			l.Host = rep.Host
		}
		l.Host, l.SNI, l.Detail = clip(l.Host), clip(l.SNI), clip(l.Detail)
		l.TLSVersion, l.CipherSuite, l.FileOwner = clip(l.TLSVersion), clip(l.CipherSuite), clip(l.FileOwner)
		l.Path = strings.ToValidUTF8(l.Path, "\uFFFD")
		l.FirstSeen, l.LastSeen = now, now
		if k := l.Key(); !seenLoc[k] {
			seenLoc[k] = true
			b.Locations = append(b.Locations, l.ToStore())
		}
	}
	if len(x509FPs) > 0 && lookup != nil {
		issued, err := lookup.IssuedSerialsBySHA256(ctx, x509FPs)
		if err != nil {
			return nil, fmt.Errorf("looking up issued certificates: %w", err)
		}
		for fp, serial := range issued {
			id := byFP[fp]
			id.Source, id.IssuedSerial = store.SourceIssued, serial
			b.Summary.Issued++
		}
	}
	b.Summary.Identities, b.Summary.Locations, b.Summary.Errors = len(b.Identities), len(b.Locations), len(rep.Errors)
	return b, nil
}

func checkIdentity(in *Identity, source store.InventorySource, now time.Time) (*store.InventoryIdentity, error) {
	if !validKinds[in.Kind] {
		return nil, malformed("unknown kind %q (x509, ssh-key, ssh-cert, private-key or secret)", in.Kind)
	}
	var id Identity
	if in.Kind == store.KindX509 {
		if len(in.DER) == 0 || len(in.DER) > maxDER {
			return nil, malformed("an x509 identity needs its certificate DER (at most %d bytes)", maxDER)
		}
		fp := SHA256Hex(in.DER)
		if in.Fingerprint != "" && NormalizeFingerprint(in.Fingerprint) != fp {
			return nil, malformed("fingerprint %q is not the SHA-256 of the certificate", in.Fingerprint)
		}
		if c, err := x509.ParseCertificate(in.DER); err == nil {
			id = FromCertificate(c)
		} else {
			// Go refuses some certificates found in the wild: keep what the
			// scanner saw, bounded, keyed by the DER it sent.
			id = sanitized(in)
			id.Fingerprint, id.DER = fp, in.DER
		}
	} else {
		if len(in.DER) != 0 {
			return nil, malformed("only x509 identities may carry DER")
		}
		id = sanitized(in)
		if id.Fingerprint = NormalizeFingerprint(in.Fingerprint); id.Fingerprint == "" {
			return nil, malformed("fingerprint %q is not a hex SHA-256", in.Fingerprint)
		}
		if in.SPKISHA256 != "" {
			if id.SPKISHA256 = NormalizeFingerprint(in.SPKISHA256); id.SPKISHA256 == "" {
				return nil, malformed("spki_sha256 %q is not a hex SHA-256", in.SPKISHA256)
			}
		}
	}
	id.Kind, id.Source, id.Owner, id.Labels, id.IssuedSerial = in.Kind, source, "", nil, ""
	id.FirstSeen, id.LastSeen = now, now
	return id.ToStore(), nil
}

// sanitized copies the descriptive fields of a client-supplied identity, bounded.
func sanitized(in *Identity) Identity {
	id := Identity{Subject: clip(in.Subject), Issuer: clip(in.Issuer), Serial: clip(in.Serial),
		NotBefore: in.NotBefore.UTC(), NotAfter: in.NotAfter.UTC(), IsCA: in.IsCA,
		SignatureAlg: clip(in.SignatureAlg), KeyAlgorithm: clip(in.KeyAlgorithm), RuleID: clip(in.RuleID)}
	if in.KeySize > 0 && in.KeySize < 1<<20 {
		id.KeySize = in.KeySize
	}
	if in.Kind == store.KindX509 && in.SPKISHA256 != "" {
		id.SPKISHA256 = NormalizeFingerprint(in.SPKISHA256)
	}
	for _, s := range in.SANs {
		if len(id.SANs) == maxSANs {
			break
		}
		id.SANs = append(id.SANs, clip(s))
	}
	if in.NotBefore.IsZero() {
		id.NotBefore = time.Time{}
	}
	if in.NotAfter.IsZero() {
		id.NotAfter = time.Time{}
	}
	return id
}

// UnlintedLookup says which certificates still need linting (store.Reader does).
type UnlintedLookup interface {
	UnlintedInventory(ctx context.Context, fingerprints []string) ([]string, error)
}

// LintNew runs lint on the batch's certificates that are new to the
// inventory (or were never linted) and records the results in their rows,
// so that assessment reads them instead of linting every discovered
// certificate each time it runs, and a re-report that only moves last-seen
// costs no lint. Only leaves Sigil did not issue are linted: Sigil lints its
// own certificates (they passed the error lints before signing), and
// assessment ignores CA certificates' lint results. Call it before Apply,
// outside the transaction (about 150 µs per certificate).
func (b *Batch) LintNew(ctx context.Context, st UnlintedLookup, lint func(der []byte) *store.InventoryLint) error {
	if lint == nil {
		return nil
	}
	byFP := map[string]*store.InventoryIdentity{}
	var fps []string
	for _, id := range b.Identities {
		if id.Kind == store.KindX509 && !id.IsCA && id.IssuedSerial == "" && len(id.DER) > 0 {
			byFP[id.Fingerprint] = id
			fps = append(fps, id.Fingerprint)
		}
	}
	if len(fps) == 0 {
		return nil
	}
	todo, err := st.UnlintedInventory(ctx, fps)
	if err != nil {
		return fmt.Errorf("reading the inventory's lint state: %w", err)
	}
	for _, fp := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		if id := byFP[fp]; id != nil {
			id.Lint = lint(id.DER)
			b.Summary.Linted++
		}
	}
	return nil
}

// Apply writes the batch in tx and returns what changed.
func (b *Batch) Apply(ctx context.Context, tx store.InventoryTx) (Summary, error) {
	s := b.Summary
	var err error
	if s.NewIdentities, err = tx.UpsertIdentities(ctx, b.Identities); err != nil {
		return s, err
	}
	if s.NewLocations, err = tx.UpsertLocations(ctx, b.Locations); err != nil {
		return s, err
	}
	return s, nil
}
