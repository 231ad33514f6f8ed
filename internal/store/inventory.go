package store

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The inventory holds every machine identity Sigil knows about — issued by
// Sigil, discovered by a scan, or imported — and every place each one was
// seen. It never holds private key material or secret values: a private key
// is recorded by its public key, a secret by the SHA-256 of its value.

// InventoryKind is what an inventory identity is.
type InventoryKind string

const (
	KindX509       InventoryKind = "x509"        // an X.509 certificate; Fingerprint = SHA-256 of the DER
	KindSSHKey     InventoryKind = "ssh-key"     // an SSH public key (or the public half of an SSH private key file); Fingerprint = SHA-256 of the SSH wire-format key, i.e. the "SHA256:" fingerprint in hex
	KindSSHCert    InventoryKind = "ssh-cert"    // an OpenSSH certificate; Fingerprint = SHA-256 of its wire format
	KindPrivateKey InventoryKind = "private-key" // a private key file; Fingerprint = SPKI SHA-256 of its public key (or SHA-256 of the encrypted blob when the public key is not derivable)
	KindSecret     InventoryKind = "secret"      // a secret matched by a well-known pattern; Fingerprint = SHA-256 of the secret value
)

// InventorySource is how an identity entered the inventory. When the same
// identity arrives by several paths the strongest wins: issued > imported > discovered.
type InventorySource string

const (
	SourceIssued     InventorySource = "issued"     // Sigil issued it (IssuedSerial is set)
	SourceImported   InventorySource = "imported"   // an operator imported it (sigil inventory import)
	SourceDiscovered InventorySource = "discovered" // a network, filesystem or agent scan found it
)

// SourceRank orders sources for merging: a higher rank replaces a lower one.
func SourceRank(s InventorySource) int {
	switch s {
	case SourceIssued:
		return 3
	case SourceImported:
		return 2
	case SourceDiscovered:
		return 1
	}
	return 0
}

// InventoryIdentity is one machine identity, keyed by Fingerprint (lowercase
// hex SHA-256, see InventoryKind for what is hashed). Fields that do not apply
// to a kind are zero.
type InventoryIdentity struct {
	Fingerprint string
	Kind        InventoryKind
	Source      InventorySource

	Subject      string   // x509: subject DN (RFC 4514 string); ssh-cert: key ID; ssh-key: comment
	Issuer       string   // x509: issuer DN; ssh-cert: signing CA's SSH fingerprint (hex)
	SANs         []string // x509: DNS names, IPs, URIs, emails; ssh-cert: principals
	Serial       string   // x509: serial in lowercase hex; ssh-cert: decimal serial
	NotBefore    time.Time
	NotAfter     time.Time
	IsCA         bool   // x509 basic constraints CA
	SignatureAlg string // x509: e.g. "SHA256-RSA"

	KeyAlgorithm string // "RSA", "ECDSA", "Ed25519", "DSA", or "unknown" for an encrypted key whose public half is not readable
	KeySize      int    // bits (RSA modulus, curve size; 256 for Ed25519)
	SPKISHA256   string // hex SHA-256 of the DER SubjectPublicKeyInfo: links a certificate, its private key and key reuse. For SSH keys of types X.509 knows (RSA, ECDSA, Ed25519) it is set too.

	RuleID string // secret: the detection rule that matched (e.g. "aws-access-key-id")

	IssuedSerial string // the serial in Sigil's certificates table when Sigil issued it, else ""
	Owner        string
	Labels       map[string]string

	FirstSeen time.Time // earliest first-seen of any report
	LastSeen  time.Time // latest last-seen of any report

	DER []byte // x509: the certificate DER (for assessment); nil otherwise

	// Lint is what zlint reported when the certificate entered the
	// inventory (x509 leaves Sigil did not issue, linted once at ingestion
	// so that assessment never lints them); nil when not linted. An upsert
	// sets it only on a row that has none.
	Lint *InventoryLint
}

// InventoryLint holds zlint results, each "lint_name (details)". Both empty:
// linted, nothing reported.
type InventoryLint struct {
	Errors   []string // error and fatal results
	Warnings []string
}

// LocationKind is where a location was observed.
type LocationKind string

const (
	LocationNet   LocationKind = "net"   // a TLS endpoint: Host, Port, SNI
	LocationFS    LocationKind = "fs"    // a file: Host (the machine scanned), Path
	LocationAgent LocationKind = "agent" // reported by a Sigil agent: Host = agent name, Path
)

// InventoryLocation is one place an identity was seen. A location is
// identified by (Fingerprint, Kind, Host, Port, Path, SNI); reporting it again
// moves LastSeen and refreshes the observation fields.
type InventoryLocation struct {
	Fingerprint string
	Kind        LocationKind
	Host        string // host name or IP address; for fs the scanning machine's host name; for agent the agent name
	Port        int
	Path        string // fs/agent: absolute file path
	SNI         string // net: server name sent in the handshake ("" for none)

	FirstSeen time.Time
	LastSeen  time.Time

	TLSVersion  string // net: "TLS 1.2", …
	CipherSuite string // net: IANA name
	ChainIndex  int    // net/fs: position in the presented chain or file (0 = leaf / first)

	FileMode  uint32 // fs: permission bits (os.FileMode & 0o7777 plus type bits cleared)
	FileOwner string // fs: owner user name or uid
	Detail    string // free text: "authorized_keys", "known_hosts: host1,host2", "encrypted", "pkcs12", …
}

// InventoryFilter selects identities. Zero fields do not filter. Results are
// ordered by Fingerprint; pass the last fingerprint of a page as After to get
// the next one.
type InventoryFilter struct {
	Kind          InventoryKind
	Source        InventorySource
	Owner         string
	Label         string // "key" (present) or "key=value"
	Issuer        string // exact issuer DN
	IssuerUnknown bool   // x509 not issued by Sigil whose issuer is not an imported or issued CA certificate in the inventory
	KeyAlgorithm  string
	SPKISHA256    string
	// Location: "host", "host:port" or an absolute path prefix ("/etc/ssl").
	Location       string
	NotAfterBefore time.Time // expiring: NotAfter < this (and set)
	NotAfterAfter  time.Time // NotAfter > this
	SeenSince      time.Time // LastSeen >= this
	After          string    // cursor: only fingerprints > After
	Limit          int       // 0 means no limit
}

// KeyReuse is a public key (by SPKI SHA-256) used by several certificates, or
// whose private key was found in several places. A certificate and the one
// private key file that matches it are not reuse.
type KeyReuse struct {
	SPKISHA256   string
	Fingerprints []string // every identity with this SPKI (certificates, private keys, SSH keys), ordered
	Certificates int      // x509 identities with this SPKI
	KeyLocations int      // locations holding the private key (Detail starting with "private key")
}

// DetailPrivateKey starts the Detail of every location that holds private key
// material (a key file, a PKCS#12, an OpenSSH private key), which is what
// KeyReuse counts.
const DetailPrivateKey = "private key"

// ScanSchedule is a network scan the server runs periodically under its
// background lease.
type ScanSchedule struct {
	Name        string
	Targets     []string // CIDRs, hosts, host:port
	Ports       []int
	SNI         []string
	Every       time.Duration
	Timeout     time.Duration
	Concurrency int
	CreatedBy   string
	CreatedAt   time.Time
	NextRun     time.Time
	LastRun     time.Time
	LastResult  string // one-line summary or error of the last run
}

// InventoryTx is the write side for discovered and imported identities and the locations they were seen at.
type InventoryTx interface {
	// UpsertIdentities inserts new identities and merges known ones: FirstSeen
	// becomes the earliest, LastSeen the latest; Source is raised to the
	// stronger one (SourceRank) and IssuedSerial set when given; empty
	// descriptive fields are filled in. Owner and Labels of an existing
	// identity change only through SetInventoryOwner (a non-empty Owner or
	// Labels is applied on insert). It returns how many were new.
	UpsertIdentities(ctx context.Context, ids []*InventoryIdentity) (created int, err error)
	// UpsertLocations inserts new locations and, for known ones, keeps
	// FirstSeen, moves LastSeen forward and refreshes the observation fields.
	// The identity must exist (ErrNotFound otherwise). It returns how many were new.
	UpsertLocations(ctx context.Context, locs []*InventoryLocation) (created int, err error)
	// SetInventoryOwner sets the owner and merges labels (a label with an
	// empty value is removed). ErrNotFound for an unknown fingerprint.
	SetInventoryOwner(ctx context.Context, fingerprint, owner string, labels map[string]string) error

	// PutScanSchedule creates or replaces a schedule.
	PutScanSchedule(ctx context.Context, s *ScanSchedule) error
	// DeleteScanSchedule removes a schedule; ErrNotFound if absent.
	DeleteScanSchedule(ctx context.Context, name string) error
	// MarkScanScheduleRun records a run and sets the next one; ErrNotFound if absent.
	MarkScanScheduleRun(ctx context.Context, name string, ran, next time.Time, result string) error
}

// InventoryReader is the read side for discovered and imported identities and the locations they were seen at.
type InventoryReader interface {
	// GetInventoryIdentity returns ErrNotFound for an unknown fingerprint.
	GetInventoryIdentity(ctx context.Context, fingerprint string) (*InventoryIdentity, error)
	// ListInventory returns identities matching f ordered by Fingerprint
	// (with their DER: assessment lints discovered certificates from it).
	ListInventory(ctx context.Context, f InventoryFilter) ([]*InventoryIdentity, error)
	// ListInventoryLocations returns the locations of the given identities
	// (none when fingerprints is empty), ordered by fingerprint, kind, host,
	// port, path, SNI.
	ListInventoryLocations(ctx context.Context, fingerprints ...string) ([]*InventoryLocation, error)
	// GetInventoryIdentities returns the identities with the given
	// fingerprints that exist, in any order (unknown ones are left out).
	GetInventoryIdentities(ctx context.Context, fingerprints []string) ([]*InventoryIdentity, error)
	// IssuedSerialsBySHA256 maps the given certificate fingerprints to the
	// serials of Sigil-issued certificates (the certificates table) with that
	// fingerprint; unknown fingerprints are absent from the map.
	IssuedSerialsBySHA256(ctx context.Context, fingerprints []string) (map[string]string, error)
	// UnlintedInventory returns those of the given fingerprints that are
	// not in the inventory or have no lint results (InventoryIdentity.Lint),
	// in the order given: what an ingestion still has to lint.
	UnlintedInventory(ctx context.Context, fingerprints []string) ([]string, error)
	// ListKeyReuse returns public keys in at least two certificates or whose
	// private key is at two or more locations, ordered by SPKI, at most limit (0: all).
	ListKeyReuse(ctx context.Context, limit int) ([]*KeyReuse, error)

	GetScanSchedule(ctx context.Context, name string) (*ScanSchedule, error)
	// ListScanSchedules returns schedules ordered by name.
	ListScanSchedules(ctx context.Context) ([]*ScanSchedule, error)
}

// LocationMatch is InventoryFilter.Location parsed: a path prefix (a
// directory: "/etc/ssl" matches "/etc/ssl" and "/etc/ssl/…", not "/etc/ssl2"),
// or a host with an optional port.
type LocationMatch struct {
	PathPrefix string // PathPrefix and PathPrefix+"/"… ; empty when matching a host
	Host       string
	Port       int // 0: any port
}

// ParseLocation parses InventoryFilter.Location.
func ParseLocation(s string) LocationMatch {
	if strings.HasPrefix(s, "/") {
		p := strings.TrimRight(s, "/")
		if p == "" {
			p = "/"
		}
		return LocationMatch{PathPrefix: p}
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
			return LocationMatch{Host: h, Port: n}
		}
	}
	return LocationMatch{Host: strings.Trim(s, "[]")}
}

// PathRange returns [lo, hi) bounds on byte-wise ordered paths under the
// directory prefix (excluding the prefix itself): "/" sorts just below "0".
func (m LocationMatch) PathRange() (lo, hi string) {
	if m.PathPrefix == "/" {
		return "/", "0"
	}
	return m.PathPrefix + "/", m.PathPrefix + "0"
}

// InventoryMergeSQL is the SET list of the identity upsert both SQL backends
// run (ON CONFLICT (fingerprint) DO UPDATE SET …), with table the name or
// alias of the existing row; it implements UpsertIdentities' merge rules.
func InventoryMergeSQL(table string) string {
	rank := func(col string) string {
		return "(CASE " + col + " WHEN 'issued' THEN 3 WHEN 'imported' THEN 2 WHEN 'discovered' THEN 1 ELSE 0 END)"
	}
	fill := func(col, empty string) string {
		return fmt.Sprintf("%[2]s = CASE WHEN %[1]s.%[2]s = %[3]s THEN excluded.%[2]s ELSE %[1]s.%[2]s END", table, col, empty)
	}
	return strings.Join([]string{
		fmt.Sprintf("source = CASE WHEN %s > %s THEN excluded.source ELSE %s.source END", rank("excluded.source"), rank(table+".source"), table),
		fmt.Sprintf("issued_serial = CASE WHEN excluded.issued_serial <> '' THEN excluded.issued_serial ELSE %s.issued_serial END", table),
		fill("subject", "''"), fill("issuer", "''"), fill("serial", "''"), fill("signature_alg", "''"),
		fill("key_algorithm", "''"), fill("spki_sha256", "''"), fill("rule_id", "''"), fill("key_size", "0"),
		fmt.Sprintf("sans = COALESCE(%[1]s.sans, excluded.sans)", table),
		fmt.Sprintf("der = COALESCE(%[1]s.der, excluded.der)", table),
		// Lint results are written once, both columns together.
		fmt.Sprintf("lint_errors = CASE WHEN %[1]s.lint_errors IS NULL THEN excluded.lint_errors ELSE %[1]s.lint_errors END", table),
		fmt.Sprintf("lint_warnings = CASE WHEN %[1]s.lint_errors IS NULL THEN excluded.lint_warnings ELSE %[1]s.lint_warnings END", table),
		fmt.Sprintf("not_before = COALESCE(%[1]s.not_before, excluded.not_before)", table),
		fmt.Sprintf("not_after = COALESCE(%[1]s.not_after, excluded.not_after)", table),
		fmt.Sprintf("is_ca = (%[1]s.is_ca OR excluded.is_ca)", table),
		fmt.Sprintf("first_seen = CASE WHEN %[1]s.first_seen IS NULL OR excluded.first_seen < %[1]s.first_seen THEN COALESCE(excluded.first_seen, %[1]s.first_seen) ELSE %[1]s.first_seen END", table),
		fmt.Sprintf("last_seen = CASE WHEN %[1]s.last_seen IS NULL OR excluded.last_seen > %[1]s.last_seen THEN COALESCE(excluded.last_seen, %[1]s.last_seen) ELSE %[1]s.last_seen END", table),
	}, ", ")
}

// SortLocations orders locations as ListInventoryLocations returns them.
func SortLocations(ls []*InventoryLocation) {
	slices.SortFunc(ls, func(a, b *InventoryLocation) int {
		return cmp.Or(cmp.Compare(a.Fingerprint, b.Fingerprint), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Path, b.Path), cmp.Compare(a.SNI, b.SNI))
	})
}
