package assess

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// context of a full run that an incremental run reuses: which certificates
// were superseded, how many live certificates share each key, which keys
// have a certificate, whether discovery has data.
type runContext struct {
	managedDN  map[string]bool // issuer DNs of Sigil issuers and trust anchors
	superseded map[string]time.Time
	certsByKey map[string]int // live certificates per SPKI (Sigil and discovered)
	keyLocs    map[string]int // private-key locations per SPKI
	certKeys   map[string]bool
	invActive  bool
}

func (e *Engine) load(ctx context.Context, now time.Time, only []string) (map[string]*Facts, error) {
	if only != nil && e.last != nil {
		return e.loadSome(ctx, now, only)
	}
	rc := &runContext{managedDN: map[string]bool{}, superseded: map[string]time.Time{}, certsByKey: map[string]int{}, keyLocs: map[string]int{}, certKeys: map[string]bool{}}
	if err := e.loadIssuers(ctx, rc); err != nil {
		return nil, err
	}
	facts := map[string]*Facts{}
	// Certificates that expired more than a day ago cannot raise findings
	// of their own from the certificates table; if one is still deployed,
	// discovery recorded it (with its DER and issued serial) in the
	// inventory, which is read below. Short-lived certificates renewed all
	// day would otherwise make every full run read the whole history.
	certs, err := e.Store.ListCertificates(ctx, store.CertFilter{NotAfterAfter: now.Add(-24 * time.Hour)})
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	groups := map[string][]*identity.Certificate{}
	for _, c := range certs {
		if c.Status == identity.StatusPlanned || len(c.DER) == 0 {
			continue
		}
		groups[nameKey(c)] = append(groups[nameKey(c)], c)
	}
	for _, g := range groups {
		slices.SortFunc(g, func(a, b *identity.Certificate) int { return a.IssuedAt.Compare(b.IssuedAt) })
		for i := 0; i+1 < len(g); i++ {
			rc.superseded[string(g[i].Serial)] = g[i+1].IssuedAt
		}
	}
	// Active agents by current certificate, for agent-stale.
	machines, err := e.Store.ListMachines(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading agents: %w", err)
	}
	agentOf := map[identity.Serial]*store.Machine{}
	for _, m := range machines {
		if m.State == store.MachineActive && m.CurrentSerial != "" {
			agentOf[m.CurrentSerial] = m
		}
	}
	for _, c := range certs {
		if c.Status == identity.StatusPlanned || len(c.DER) == 0 {
			continue
		}
		f, err := e.sigilFacts(c, rc)
		if err != nil {
			e.Log.Warn("assess: skipping an unparsable certificate", "serial", c.Serial, "err", err)
			continue
		}
		e.sigilLint(f, c.DER, true)
		setAgent(f, c, agentOf[c.Serial])
		facts[f.Fingerprint] = f
		rc.certKeys[f.SPKI] = true
		if live(f, now) {
			rc.certsByKey[f.SPKI]++
		}
	}
	// The inventory, page by page. Reading is pipelined: one goroutine
	// lists identity pages, another reads each page's locations, while this
	// one merges the previous page (the reader pool serves them at once).
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages, errc := e.readInventory(rctx)
	for p := range pages {
		if err := e.mergePage(now, rc, facts, p.ids, p.locs, true); err != nil {
			cancel()
			for range pages { // let the readers finish
			}
			return nil, err
		}
	}
	if err := <-errc; err != nil {
		return nil, err
	}
	for _, f := range facts {
		e.finish(f, rc)
	}
	e.last = rc
	return facts, nil
}

// loadSome builds the facts of a few identities, with the context of the
// last full run.
func (e *Engine) loadSome(ctx context.Context, now time.Time, only []string) (map[string]*Facts, error) {
	rc := e.last
	facts := map[string]*Facts{}
	serials, err := e.Store.IssuedSerialsBySHA256(ctx, only)
	if err != nil {
		return nil, err
	}
	list := make([]identity.Serial, 0, len(serials))
	for _, serial := range serials {
		list = append(list, identity.Serial(serial))
	}
	var certs []*identity.Certificate
	for i := 0; i < len(list); i += 500 {
		cs, err := e.Store.ListCertificates(ctx, store.CertFilter{Serials: list[i:min(i+500, len(list))]})
		if err != nil {
			return nil, err
		}
		certs = append(certs, cs...)
	}
	for _, c := range certs {
		if len(c.DER) == 0 {
			continue
		}
		if f, err := e.sigilFacts(c, rc); err == nil {
			// Lint results from the last full run, if any: without them an
			// incremental run would resolve the certificate's lint findings
			// until the next full run reopened them.
			e.sigilLint(f, c.DER, false)
			if name, ok := strings.CutPrefix(c.Requester, "agent:"); ok {
				m, err := e.Store.GetMachine(ctx, name)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return nil, fmt.Errorf("reading agent %s: %w", name, err)
				}
				setAgent(f, c, m)
			}
			facts[f.Fingerprint] = f
		}
	}
	ids, err := e.Store.GetInventoryIdentities(ctx, only)
	if err != nil {
		return nil, err
	}
	if err := e.mergeInventory(ctx, now, rc, facts, ids, false); err != nil {
		return nil, err
	}
	for _, f := range facts {
		e.finish(f, rc)
	}
	return facts, nil
}

func (e *Engine) loadIssuers(ctx context.Context, rc *runContext) error {
	iss, err := e.Store.ListIssuers(ctx)
	if err != nil {
		return fmt.Errorf("reading issuers: %w", err)
	}
	for _, i := range iss {
		if c, err := x509.ParseCertificate(i.CertDER); err == nil {
			rc.managedDN[c.Subject.String()] = true
		}
	}
	for _, c := range e.TrustAnchors {
		rc.managedDN[c.Subject.String()] = true
	}
	return nil
}

func (e *Engine) sigilFacts(c *identity.Certificate, rc *runContext) (*Facts, error) {
	x, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return nil, err
	}
	f := &Facts{Fingerprint: identity.Fingerprint(c.DER), Source: "issued", Serial: string(c.Serial), Owner: c.Owner,
		SPKI: c.SPKIFingerprint, IssuedAt: c.IssuedAt}
	FromCertificate(f, x)
	f.IssuerManaged = true
	if c.Status == identity.StatusRevoked {
		f.Revoked, f.RevokedAt = true, c.RevokedAt
	}
	f.SupersededAt = rc.superseded[string(c.Serial)]
	if RenewalManaged(c.Requester) {
		f.RenewalManaged, f.RenewAt = true, renewAt(c.NotBefore, c.NotAfter)
	}
	return f, nil
}

// setAgent records the agent whose current certificate c is, if m (the
// machine c was issued to, or nil) is active and still holds c.
func setAgent(f *Facts, c *identity.Certificate, m *store.Machine) {
	if m != nil && m.State == store.MachineActive && m.CurrentSerial == c.Serial {
		f.Agent, f.AgentLastSeen = m.Name, m.LastSeen
	}
}

// mergeInventory adds inventory identities (and their locations) to facts,
// merging those Sigil issued with their certificate's facts.
func (e *Engine) mergeInventory(ctx context.Context, now time.Time, rc *runContext, facts map[string]*Facts, ids []*store.InventoryIdentity, full bool) error {
	if len(ids) == 0 {
		return nil
	}
	locs, err := e.Store.ListInventoryLocations(ctx, fingerprints(ids)...)
	if err != nil {
		return fmt.Errorf("reading inventory locations: %w", err)
	}
	return e.mergePage(now, rc, facts, ids, locs, full)
}

func fingerprints(ids []*store.InventoryIdentity) []string {
	fps := make([]string, len(ids))
	for i, id := range ids {
		fps[i] = id.Fingerprint
	}
	return fps
}

// invPage is one page of identities with their locations.
type invPage struct {
	ids  []*store.InventoryIdentity
	locs []*store.InventoryLocation
}

// readInventory streams the whole inventory in pages: one goroutine lists
// identity pages, another reads each page's locations. The page channel is
// closed at the end; then the error channel yields the first error (or
// nil). Cancel ctx to stop early.
func (e *Engine) readInventory(ctx context.Context) (<-chan invPage, <-chan error) {
	idPages := make(chan []*store.InventoryIdentity, 1)
	listErr := make(chan error, 1)
	pages := make(chan invPage, 1)
	out := make(chan error, 1)
	go func() {
		defer close(idPages)
		after := ""
		for {
			ids, err := e.Store.ListInventory(ctx, store.InventoryFilter{After: after, Limit: pageSize})
			if err != nil {
				listErr <- fmt.Errorf("reading the inventory: %w", err)
				return
			}
			if len(ids) == 0 {
				return
			}
			select {
			case idPages <- ids:
			case <-ctx.Done():
				return
			}
			if len(ids) < pageSize {
				return
			}
			after = ids[len(ids)-1].Fingerprint
		}
	}()
	go func() {
		defer close(out)
		var err error
		for ids := range idPages {
			if err != nil {
				continue // drain: the lister stops at ctx's end or its last page
			}
			var locs []*store.InventoryLocation
			if locs, err = e.Store.ListInventoryLocations(ctx, fingerprints(ids)...); err != nil {
				err = fmt.Errorf("reading inventory locations: %w", err)
				continue
			}
			select {
			case pages <- invPage{ids, locs}:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		close(pages)
		select {
		case lerr := <-listErr: // sent before idPages closed
			err = cmp.Or(err, lerr)
		default:
		}
		out <- cmp.Or(err, ctx.Err())
	}()
	return pages, out
}

// mergePage merges one page of identities and their locations into facts.
func (e *Engine) mergePage(now time.Time, rc *runContext, facts map[string]*Facts, ids []*store.InventoryIdentity, locs []*store.InventoryLocation, full bool) error {
	byFP := map[string][]Location{}
	for _, l := range locs {
		byFP[l.Fingerprint] = append(byFP[l.Fingerprint], Location{Kind: string(l.Kind), Host: l.Host, Port: l.Port, Path: l.Path, SNI: l.SNI,
			FirstSeen: l.FirstSeen, LastSeen: l.LastSeen, FileMode: l.FileMode, Detail: l.Detail})
	}
	if len(locs) > 0 && full {
		rc.invActive = true
	}
	for _, id := range ids {
		f := facts[id.Fingerprint]
		if f == nil {
			f = e.inventoryFacts(id, rc)
			facts[id.Fingerprint] = f
			if f.Kind == "x509" && f.SPKI != "" {
				rc.certKeys[f.SPKI] = true
				if full && f.Source != "issued" && live(f, now) {
					rc.certsByKey[f.SPKI]++
				}
			}
		}
		if f.Owner == "" {
			f.Owner = id.Owner
		}
		f.Locations = append(f.Locations, byFP[id.Fingerprint]...)
		if full && id.SPKISHA256 != "" {
			// Key reuse across places: locations holding the private key,
			// counted here rather than by a separate GROUP BY over the
			// whole inventory (store.ListKeyReuse counts the same way).
			for _, l := range byFP[id.Fingerprint] {
				if strings.HasPrefix(l.Detail, store.DetailPrivateKey) {
					rc.keyLocs[id.SPKISHA256]++
				}
			}
		}
	}
	return nil
}

func (e *Engine) inventoryFacts(id *store.InventoryIdentity, rc *runContext) *Facts {
	f := &Facts{Fingerprint: id.Fingerprint, Kind: string(id.Kind), Source: string(id.Source), Serial: id.IssuedSerial, Owner: id.Owner, SPKI: id.SPKISHA256}
	if id.Kind == store.KindX509 && len(id.DER) > 0 {
		if x, err := x509.ParseCertificate(id.DER); err == nil {
			FromCertificate(f, x)
		}
	}
	// Linted once at ingestion (inventory.Batch.LintNew), never here.
	if id.Kind == store.KindX509 && id.Lint != nil && !f.IsCA {
		f.LintErrors, f.LintWarnings = id.Lint.Errors, id.Lint.Warnings
	}
	if f.Subject == "" { // no DER, or unparsable: what the inventory recorded
		f.Subject, f.Issuer, f.NotBefore, f.NotAfter, f.IsCA, f.SignatureAlg = id.Subject, id.Issuer, id.NotBefore, id.NotAfter, id.IsCA, id.SignatureAlg
		f.KeyAlgorithm, f.KeySize = id.KeyAlgorithm, id.KeySize
		for _, s := range id.SANs {
			if net.ParseIP(s) != nil {
				f.IPs = append(f.IPs, s)
			} else if !strings.ContainsAny(s, ":@") {
				f.DNSNames = append(f.DNSNames, s)
			}
		}
		f.ServerAuth = id.Kind == store.KindX509 && !id.IsCA && len(f.DNSNames) > 0
	}
	if f.Source == "issued" || id.IssuedSerial != "" {
		f.Source, f.IssuerManaged = "issued", true
	}
	f.IssuerManaged = f.IssuerManaged || rc.managedDN[f.Issuer]
	return f
}

// finish fills the facts that need the whole run's context.
func (e *Engine) finish(f *Facts, rc *runContext) {
	if f.SPKI != "" {
		if n := rc.certsByKey[f.SPKI]; n > 1 && f.Kind == "x509" {
			f.OtherCertsWithKey = n - 1
		}
		f.KeyLocations = rc.keyLocs[f.SPKI]
		f.HasCertificate = rc.certKeys[f.SPKI]
		f.Blocklisted = e.Blocklist[f.SPKI]
	}
	f.InventoryActive = rc.invActive
}

// sigilLint sets the lint facts of a Sigil-issued certificate: linted
// (once per engine) when compute is set, else only from the cache.
func (e *Engine) sigilLint(f *Facts, der []byte, compute bool) {
	if e.Lint == nil || f.IsCA {
		return
	}
	r, ok := e.lintCache[f.Fingerprint]
	if !ok {
		if !compute {
			return
		}
		if e.lintCache == nil {
			e.lintCache = map[string]LintResult{}
		}
		r = e.Lint(der)
		e.lintCache[f.Fingerprint] = r
	}
	f.LintErrors = r.Errors
	// Sigil's leaves carry no subject key identifier (crypto/x509 adds one
	// to CA certificates only): a known gap of ours, not something the
	// certificate's owner can act on.
	for _, w := range r.Warnings {
		if !strings.HasPrefix(w, "w_ext_subject_key_identifier_missing_sub_cert") {
			f.LintWarnings = append(f.LintWarnings, w)
		}
	}
}
