// Package inventory is Sigil's model of the machine identities that exist and
// where each one was seen. Scanners (internal/discovery), agents and imports
// produce Reports; the server checks them (Prepare) and merges them into the
// store (Batch.Apply). It never carries private key material or secret
// values: keys travel as their public key fingerprint, secrets as the
// SHA-256 of the value.
package inventory

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

// Identity is the JSON form of an inventory identity (store.InventoryIdentity).
type Identity struct {
	Fingerprint  string                `json:"fingerprint"`
	Kind         store.InventoryKind   `json:"kind"`
	Source       store.InventorySource `json:"source,omitempty"`
	Subject      string                `json:"subject,omitempty"`
	Issuer       string                `json:"issuer,omitempty"`
	SANs         []string              `json:"sans,omitempty"`
	Serial       string                `json:"serial,omitempty"`
	NotBefore    time.Time             `json:"not_before,omitzero"`
	NotAfter     time.Time             `json:"not_after,omitzero"`
	IsCA         bool                  `json:"is_ca,omitempty"`
	SignatureAlg string                `json:"signature_algorithm,omitempty"`
	KeyAlgorithm string                `json:"key_algorithm,omitempty"`
	KeySize      int                   `json:"key_size,omitempty"`
	SPKISHA256   string                `json:"spki_sha256,omitempty"`
	RuleID       string                `json:"rule_id,omitempty"`
	IssuedSerial string                `json:"issued_serial,omitempty"`
	Owner        string                `json:"owner,omitempty"`
	Labels       map[string]string     `json:"labels,omitempty"`
	FirstSeen    time.Time             `json:"first_seen,omitzero"`
	LastSeen     time.Time             `json:"last_seen,omitzero"`
	DER          []byte                `json:"der,omitempty"`
	// Locations is filled by "show" answers only.
	Locations []Location `json:"locations,omitempty"`
	// SSHFingerprint is the familiar "SHA256:…" form, for SSH kinds (output only).
	SSHFingerprint string `json:"ssh_fingerprint,omitempty"`
}

// Location is the JSON form of store.InventoryLocation.
type Location struct {
	Fingerprint string             `json:"fingerprint"`
	Kind        store.LocationKind `json:"kind"`
	Host        string             `json:"host,omitempty"`
	Port        int                `json:"port,omitempty"`
	Path        string             `json:"path,omitempty"`
	SNI         string             `json:"sni,omitempty"`
	TLSVersion  string             `json:"tls_version,omitempty"`
	CipherSuite string             `json:"cipher_suite,omitempty"`
	ChainIndex  int                `json:"chain_index,omitempty"`
	FileMode    uint32             `json:"file_mode,omitempty"`
	FileOwner   string             `json:"file_owner,omitempty"`
	Detail      string             `json:"detail,omitempty"`
	FirstSeen   time.Time          `json:"first_seen,omitzero"`
	LastSeen    time.Time          `json:"last_seen,omitzero"`
}

// Key identifies a location within its identity.
func (l *Location) Key() string {
	return fmt.Sprintf("%s|%s|%s|%d|%s|%s", l.Fingerprint, l.Kind, l.Host, l.Port, l.Path, l.SNI)
}

// String is the place in a human form: host:port (sni), host:/path.
func (l *Location) String() string {
	switch {
	case l.Kind == store.LocationNet && l.SNI != "":
		return fmt.Sprintf("%s:%d (sni %s)", l.Host, l.Port, l.SNI)
	case l.Kind == store.LocationNet:
		return fmt.Sprintf("%s:%d", l.Host, l.Port)
	case l.Kind == store.LocationAgent:
		return "agent " + l.Host + ":" + l.Path
	}
	return l.Host + ":" + l.Path
}

// ScanError is a target that could not be scanned (a refused connection, a
// garbage answer, an unreadable file). Errors are reported and counted, not stored.
type ScanError struct {
	Target string `json:"target"`
	Error  string `json:"error"`
}

// Report is one scan's results: the body of POST /api/v1/discovery/results.
// Large scans are sent as several Reports; each is applied atomically.
type Report struct {
	Scanner    string      `json:"scanner"` // "net", "fs", "agent" or "import"
	Host       string      `json:"host,omitempty"`
	Identities []Identity  `json:"identities"`
	Locations  []Location  `json:"locations"`
	Errors     []ScanError `json:"errors,omitempty"`
	// Scanned counts what was examined (endpoints or files), for the summary.
	Scanned int `json:"scanned,omitempty"`
	// Unreachable counts endpoints nothing answered on (refused, no route,
	// connect timeout): most of a range, so counted rather than listed.
	Unreachable int `json:"unreachable,omitempty"`
}

// Summary is what applying a Report changed.
type Summary struct {
	Identities    int `json:"identities"`
	NewIdentities int `json:"new_identities"`
	Locations     int `json:"locations"`
	NewLocations  int `json:"new_locations"`
	Issued        int `json:"issued"`           // identities recognised as issued by Sigil
	Linted        int `json:"linted,omitempty"` // certificates new to the inventory, linted on arrival
	Errors        int `json:"errors"`
}

// Collector accumulates scan results from concurrent workers, keeping one
// Identity per fingerprint and one Location per place.
type Collector struct {
	mu      sync.Mutex
	ids     map[string]*Identity
	idOrder []string
	locs    map[string]bool
	loc     []Location
	errs    []ScanError
	scanned int
	unreach int
}

// NewCollector returns an empty Collector.
func NewCollector() *Collector {
	return &Collector{ids: map[string]*Identity{}, locs: map[string]bool{}}
}

// Add records an identity seen at a location.
func (c *Collector) Add(id Identity, loc Location) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(id, loc)
}

func (c *Collector) addLocked(id Identity, loc Location) {
	if cur, ok := c.ids[id.Fingerprint]; !ok {
		cp := id
		c.ids[id.Fingerprint] = &cp
		c.idOrder = append(c.idOrder, id.Fingerprint)
	} else if cur.Subject == "" {
		// An SSH private key file has no comment; its .pub or authorized_keys line has.
		cur.Subject = id.Subject
	}
	loc.Fingerprint = id.Fingerprint
	if k := loc.Key(); !c.locs[k] {
		c.locs[k] = true
		c.loc = append(c.loc, loc)
	}
}

// Error records a target that could not be scanned.
func (c *Collector) Error(target string, err error) {
	c.mu.Lock()
	c.errs = append(c.errs, ScanError{Target: target, Error: err.Error()})
	c.mu.Unlock()
}

// Scanned counts one examined target.
func (c *Collector) Scanned() {
	c.mu.Lock()
	c.scanned++
	c.mu.Unlock()
}

// Unreachable counts one endpoint nothing answered on.
func (c *Collector) Unreachable() {
	c.mu.Lock()
	c.unreach++
	c.mu.Unlock()
}

// Counts returns the numbers of identities, locations and errors so far.
func (c *Collector) Counts() (ids, locs, errs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids), len(c.loc), len(c.errs)
}

// Report returns everything collected, identities in fingerprint order and
// errors by target.
func (c *Collector) Report(scanner, host string) *Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &Report{Scanner: scanner, Host: host, Scanned: c.scanned, Unreachable: c.unreach,
		Identities: make([]Identity, 0, len(c.ids)), Locations: append([]Location(nil), c.loc...),
		Errors: append([]ScanError(nil), c.errs...)}
	for _, fp := range c.idOrder {
		r.Identities = append(r.Identities, *c.ids[fp])
	}
	sort.Slice(r.Identities, func(i, j int) bool { return r.Identities[i].Fingerprint < r.Identities[j].Fingerprint })
	sort.Slice(r.Locations, func(i, j int) bool { return r.Locations[i].Key() < r.Locations[j].Key() })
	sort.SliceStable(r.Errors, func(i, j int) bool { return r.Errors[i].Target < r.Errors[j].Target })
	return r
}

// Split cuts a report into reports of at most n identities each, every
// location travelling with its identity, errors with the first part.
func (r *Report) Split(n int) []*Report {
	if n <= 0 || len(r.Identities) <= n {
		return []*Report{r}
	}
	byFP := map[string][]Location{}
	for _, l := range r.Locations {
		byFP[l.Fingerprint] = append(byFP[l.Fingerprint], l)
	}
	var out []*Report
	for i := 0; i < len(r.Identities); i += n {
		part := &Report{Scanner: r.Scanner, Host: r.Host, Identities: r.Identities[i:min(i+n, len(r.Identities))]}
		for _, id := range part.Identities {
			part.Locations = append(part.Locations, byFP[id.Fingerprint]...)
		}
		out = append(out, part)
	}
	out[0].Errors, out[0].Scanned, out[0].Unreachable = r.Errors, r.Scanned, r.Unreachable
	return out
}

// ToStore converts a checked identity for the store.
func (id *Identity) ToStore() *store.InventoryIdentity {
	return &store.InventoryIdentity{
		Fingerprint: id.Fingerprint, Kind: id.Kind, Source: id.Source, Subject: id.Subject, Issuer: id.Issuer,
		SANs: id.SANs, Serial: id.Serial, NotBefore: id.NotBefore, NotAfter: id.NotAfter, IsCA: id.IsCA,
		SignatureAlg: id.SignatureAlg, KeyAlgorithm: id.KeyAlgorithm, KeySize: id.KeySize, SPKISHA256: id.SPKISHA256,
		RuleID: id.RuleID, IssuedSerial: id.IssuedSerial, Owner: id.Owner, Labels: id.Labels,
		FirstSeen: id.FirstSeen, LastSeen: id.LastSeen, DER: id.DER,
	}
}

// FromStore converts a stored identity to its JSON form.
func FromStore(s *store.InventoryIdentity) Identity {
	id := Identity{
		Fingerprint: s.Fingerprint, Kind: s.Kind, Source: s.Source, Subject: s.Subject, Issuer: s.Issuer,
		SANs: s.SANs, Serial: s.Serial, NotBefore: s.NotBefore, NotAfter: s.NotAfter, IsCA: s.IsCA,
		SignatureAlg: s.SignatureAlg, KeyAlgorithm: s.KeyAlgorithm, KeySize: s.KeySize, SPKISHA256: s.SPKISHA256,
		RuleID: s.RuleID, IssuedSerial: s.IssuedSerial, Owner: s.Owner, Labels: s.Labels,
		FirstSeen: s.FirstSeen, LastSeen: s.LastSeen, DER: s.DER,
	}
	if s.Kind == store.KindSSHKey || s.Kind == store.KindSSHCert {
		id.SSHFingerprint = SSHFingerprintFromHex(s.Fingerprint)
	}
	return id
}

// ToStore converts a checked location for the store.
func (l *Location) ToStore() *store.InventoryLocation {
	return &store.InventoryLocation{
		Fingerprint: l.Fingerprint, Kind: l.Kind, Host: l.Host, Port: l.Port, Path: l.Path, SNI: l.SNI,
		FirstSeen: l.FirstSeen, LastSeen: l.LastSeen, TLSVersion: l.TLSVersion, CipherSuite: l.CipherSuite,
		ChainIndex: l.ChainIndex, FileMode: l.FileMode, FileOwner: l.FileOwner, Detail: l.Detail,
	}
}

// LocationFromStore converts a stored location to its JSON form.
func LocationFromStore(s *store.InventoryLocation) Location {
	return Location{
		Fingerprint: s.Fingerprint, Kind: s.Kind, Host: s.Host, Port: s.Port, Path: s.Path, SNI: s.SNI,
		FirstSeen: s.FirstSeen, LastSeen: s.LastSeen, TLSVersion: s.TLSVersion, CipherSuite: s.CipherSuite,
		ChainIndex: s.ChainIndex, FileMode: s.FileMode, FileOwner: s.FileOwner, Detail: s.Detail,
	}
}
