package identity

import (
	"fmt"
	"strings"
	"time"
)

// CertStatus is where a certificate is in its life. A certificate is planned
// (serial reserved and to-be-signed bytes stored) before it is signed, and
// issued only once the signed certificate is recorded.
type CertStatus string

const (
	StatusPlanned CertStatus = "planned"
	StatusIssued  CertStatus = "issued"
	StatusRevoked CertStatus = "revoked"
)

// Certificate is the inventory record of a certificate Sigil issued.
type Certificate struct {
	Serial    Serial            `json:"serial"`
	IssuerID  string            `json:"issuer_id"`
	Profile   string            `json:"profile"`
	Status    CertStatus        `json:"status"`
	Requester string            `json:"requester"`
	Owner     string            `json:"owner,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`

	CommonName  string   `json:"common_name,omitempty"`
	DNSNames    []string `json:"dns_names,omitempty"`
	IPAddresses []string `json:"ip_addresses,omitempty"`
	URIs        []string `json:"uris,omitempty"`
	Emails      []string `json:"emails,omitempty"`

	KeyType         string `json:"key_type"`         // e.g. ecdsa-p256, rsa-2048
	SPKIFingerprint string `json:"spki_sha256"`      // hex SHA-256 of SubjectPublicKeyInfo
	Fingerprint     string `json:"sha256,omitempty"` // hex SHA-256 of the certificate DER, once issued

	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	CreatedAt time.Time `json:"created_at"`
	IssuedAt  time.Time `json:"issued_at,omitzero"`

	RevokedAt        time.Time        `json:"revoked_at,omitzero"`
	RevocationReason RevocationReason `json:"revocation_reason,omitempty"`

	TBS []byte `json:"-"` // the to-be-signed certificate, stored before signing
	DER []byte `json:"-"` // the signed certificate, once issued
}

// RevocationReason is an RFC 5280 CRLReason code.
type RevocationReason int

// Reason codes from RFC 5280 section 5.3.1 (7 is unused).
const (
	ReasonUnspecified          RevocationReason = 0
	ReasonKeyCompromise        RevocationReason = 1
	ReasonCACompromise         RevocationReason = 2
	ReasonAffiliationChanged   RevocationReason = 3
	ReasonSuperseded           RevocationReason = 4
	ReasonCessationOfOperation RevocationReason = 5
	ReasonCertificateHold      RevocationReason = 6
	ReasonRemoveFromCRL        RevocationReason = 8
	ReasonPrivilegeWithdrawn   RevocationReason = 9
	ReasonAACompromise         RevocationReason = 10
)

var reasonNames = map[RevocationReason]string{
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonCACompromise:         "cACompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonCertificateHold:      "certificateHold",
	ReasonRemoveFromCRL:        "removeFromCRL",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
	ReasonAACompromise:         "aACompromise",
}

func (r RevocationReason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// ParseReason accepts RFC 5280 reason names in any case, or their numbers.
// certificateHold and removeFromCRL are refused: Sigil never suspends, since
// a revocation that can be undone is not one relying parties can act on.
func ParseReason(s string) (RevocationReason, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return ReasonUnspecified, nil
	}
	for r, n := range reasonNames {
		if strings.EqualFold(n, s) || fmt.Sprint(int(r)) == s {
			if r == ReasonCertificateHold || r == ReasonRemoveFromCRL {
				return 0, fmt.Errorf("revocation reason %q is not supported: revocation is permanent", n)
			}
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown revocation reason %q (use keyCompromise, superseded, cessationOfOperation, affiliationChanged, privilegeWithdrawn, cACompromise, unspecified)", s)
}

// MarshalJSON writes the RFC 5280 name, as requests and the CLI use it.
func (r RevocationReason) MarshalJSON() ([]byte, error) {
	return []byte(`"` + r.String() + `"`), nil
}

// UnmarshalJSON accepts the name or the number.
func (r *RevocationReason) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	for k, n := range reasonNames {
		if n == s || fmt.Sprint(int(k)) == s {
			*r = k
			return nil
		}
	}
	return fmt.Errorf("unknown revocation reason %s", b)
}

// EffectiveStatus reports "expired" for issued certificates past NotAfter.
func (c *Certificate) EffectiveStatus(now time.Time) string {
	if c.Status == StatusIssued && now.After(c.NotAfter) {
		return "expired"
	}
	return string(c.Status)
}
