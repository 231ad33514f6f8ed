// Package report builds Sigil's posture report — counts by risk, an expiry
// calendar, owners and compliance checks — as JSON (Build) and as one
// self-contained HTML page with an inline SVG expiry timeline (HTML).
package report

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/sigil-pki/sigil/internal/assess"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/store"
)

// Horizon is how far ahead the expiry calendar looks.
const Horizon = 90 * 24 * time.Hour

// maxRows bounds the tables of the report.
const maxRows = 1000

// Report is the posture report. Its JSON form is stable: fields are only added.
type Report struct {
	GeneratedAt time.Time      `json:"generated_at"`
	Summary     Summary        `json:"summary"`
	Expiring    []Expiry       `json:"expiring"` // within Horizon, soonest first
	Timeline    []WeekBucket   `json:"timeline"` // expiries per week over Horizon
	Owners      []OwnerRow     `json:"owners"`
	Compliance  []Check        `json:"compliance"`
	Findings    []FindingRow   `json:"findings"` // open, highest severity first
	Rules       []RuleInfo     `json:"rules"`
	Truncated   map[string]int `json:"truncated,omitempty"` // table -> rows left out
}

// Summary counts.
type Summary struct {
	Certificates        map[string]int `json:"certificates"`         // Sigil certificates by status
	InventoryIdentities map[string]int `json:"inventory_identities"` // by kind
	FindingsBySeverity  map[string]int `json:"findings_by_severity"` // open
	ExpiringWithin30d   int            `json:"expiring_within_30d"`
}

// Expiry is one certificate in the expiry calendar.
type Expiry struct {
	Fingerprint string    `json:"fingerprint"`
	Serial      string    `json:"serial,omitempty"`
	Name        string    `json:"name"`
	Owner       string    `json:"owner,omitempty"`
	Source      string    `json:"source"`
	NotAfter    time.Time `json:"not_after"`
	DaysLeft    int       `json:"days_left"`
}

// WeekBucket counts expiries in the week starting at Start.
type WeekBucket struct {
	Start time.Time `json:"start"`
	Count int       `json:"count"`
}

// OwnerRow is one owner ("" for none).
type OwnerRow struct {
	Owner        string `json:"owner"`
	Certificates int    `json:"certificates"`
	Findings     int    `json:"findings"`
	HighOrAbove  int    `json:"high_or_above"`
}

// Check is one compliance check: pass when no open finding of its rules.
type Check struct {
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	Reference string   `json:"reference"`
	Rules     []string `json:"rules"`
	Pass      bool     `json:"pass"`
	Failures  int      `json:"failures"`
}

// FindingRow is an open finding with its rule's text.
type FindingRow struct {
	ID        string    `json:"id"`
	Rule      string    `json:"rule"`
	Title     string    `json:"title"`
	Severity  string    `json:"severity"`
	Subject   string    `json:"subject"`
	Serial    string    `json:"serial,omitempty"`
	Location  string    `json:"location,omitempty"`
	Message   string    `json:"message"`
	FirstSeen time.Time `json:"first_seen"`
}

// RuleInfo documents a rule.
type RuleInfo struct {
	ID          string `json:"id"`
	Severity    string `json:"severity"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Remediation string `json:"remediation"`
}

// checks map compliance requirements to rules. The references name the
// requirement each approximates; passing them is evidence, not certification.
var checks = []Check{
	{ID: "key-strength", Title: "Keys of at least 112-bit strength, none known weak", Reference: "NIST SP 800-131A Rev. 2; PCI DSS 4.0 req. 4.2.1", Rules: []string{"weak-key"}},
	{ID: "signature-hash", Title: "No SHA-1 or MD5 certificate signatures", Reference: "NIST SP 800-131A Rev. 2 §3", Rules: []string{"weak-signature"}},
	{ID: "tls-validity", Title: "TLS server certificates valid at most 398 days", Reference: "CA/Browser Forum BR 6.3.2", Rules: []string{"validity-too-long"}},
	{ID: "no-expired-in-use", Title: "No expired, revoked or superseded certificate in use", Reference: "PCI DSS 4.0 req. 4.2.1 (valid, unrevoked certificates)", Rules: []string{"expired-deployed", "revoked-served", "superseded-served"}},
	{ID: "inventory", Title: "Every deployed certificate comes from a managed CA", Reference: "PCI DSS 4.0 req. 4.2.1.1 (inventory of trusted keys and certificates)", Rules: []string{"shadow", "untrusted-issuer"}},
	{ID: "key-protection", Title: "Private keys protected and not shared", Reference: "PCI DSS 4.0 req. 3.6.1; NIST SP 800-57 Pt. 1 §6", Rules: []string{"key-file-permissions", "key-reuse", "unmatched-private-key"}},
	{ID: "ownership", Title: "Every identity has an accountable owner", Reference: "NIST SP 1800-16 (TLS server certificate management)", Rules: []string{"no-owner"}},
	{ID: "renewal", Title: "Certificates renewed before expiry", Reference: "NIST SP 1800-16", Rules: []string{"expiring", "renewal-overdue"}},
}

// Build assembles the report from the store at now.
func Build(ctx context.Context, st store.Reader, now time.Time) (*Report, error) {
	now = now.UTC()
	r := &Report{GeneratedAt: now, Truncated: map[string]int{}, Summary: Summary{
		Certificates: map[string]int{}, InventoryIdentities: map[string]int{}, FindingsBySeverity: map[string]int{},
	}}
	stats, err := st.MonitorStats(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("report: counts: %w", err)
	}
	for _, s := range stats.Certificates {
		r.Summary.Certificates[s.Status] += s.Count
	}
	for _, s := range stats.Inventory {
		r.Summary.InventoryIdentities[s.Kind] += s.Count
	}
	// Expiry calendar: Sigil certificates still issued, and inventory
	// certificates that Sigil did not issue.
	certs, err := st.ListCertificates(ctx, store.CertFilter{Status: identity.StatusIssued, NotAfterAfter: now, NotAfterBefore: now.Add(Horizon)})
	if err != nil {
		return nil, fmt.Errorf("report: certificates: %w", err)
	}
	seen := map[string]bool{}
	for _, c := range certs {
		seen[c.Fingerprint] = true
		r.Expiring = append(r.Expiring, Expiry{Fingerprint: c.Fingerprint, Serial: string(c.Serial), Name: c.CommonName, Owner: c.Owner, Source: "issued", NotAfter: c.NotAfter})
	}
	inv, err := st.ListInventory(ctx, store.InventoryFilter{Kind: store.KindX509, NotAfterAfter: now, NotAfterBefore: now.Add(Horizon), Limit: 10 * maxRows})
	if err != nil {
		return nil, fmt.Errorf("report: inventory: %w", err)
	}
	for _, id := range inv {
		if seen[id.Fingerprint] || id.IsCA {
			continue
		}
		r.Expiring = append(r.Expiring, Expiry{Fingerprint: id.Fingerprint, Serial: id.IssuedSerial, Name: id.Subject, Owner: id.Owner, Source: string(id.Source), NotAfter: id.NotAfter})
	}
	sort.Slice(r.Expiring, func(i, j int) bool { return r.Expiring[i].NotAfter.Before(r.Expiring[j].NotAfter) })
	weeks := int(Horizon / (7 * 24 * time.Hour))
	start := now.Truncate(24 * time.Hour)
	for w := range weeks + 1 {
		r.Timeline = append(r.Timeline, WeekBucket{Start: start.Add(time.Duration(w) * 7 * 24 * time.Hour)})
	}
	owners := map[string]*OwnerRow{}
	owner := func(o string) *OwnerRow {
		if owners[o] == nil {
			owners[o] = &OwnerRow{Owner: o}
		}
		return owners[o]
	}
	for i := range r.Expiring {
		e := &r.Expiring[i]
		e.DaysLeft = int(e.NotAfter.Sub(now) / (24 * time.Hour))
		if e.NotAfter.Sub(now) <= 30*24*time.Hour {
			r.Summary.ExpiringWithin30d++
		}
		if w := int(e.NotAfter.Sub(start) / (7 * 24 * time.Hour)); w >= 0 && w < len(r.Timeline) {
			r.Timeline[w].Count++
		}
	}
	// Owners over every live Sigil certificate (not only expiring ones).
	live, err := st.ListCertificates(ctx, store.CertFilter{Status: identity.StatusIssued, NotAfterAfter: now})
	if err != nil {
		return nil, fmt.Errorf("report: certificates: %w", err)
	}
	subjOwner := map[string]string{}
	for _, c := range live {
		owner(c.Owner).Certificates++
		subjOwner[c.Fingerprint] = c.Owner
	}
	findings, err := st.ListFindings(ctx, store.FindingFilter{})
	if err != nil {
		return nil, fmt.Errorf("report: findings: %w", err)
	}
	failures := map[string]int{}
	for _, f := range findings {
		r.Summary.FindingsBySeverity[f.Severity]++
		failures[f.Rule]++
		if o, ok := subjOwner[f.Subject]; ok {
			row := owner(o)
			row.Findings++
			if assess.Rank(f.Severity) >= assess.Rank(assess.SevHigh) {
				row.HighOrAbove++
			}
		}
		title := f.Rule
		if rule := assess.RuleByID(f.Rule); rule != nil {
			title = rule.Title
		}
		r.Findings = append(r.Findings, FindingRow{ID: f.ID, Rule: f.Rule, Title: title, Severity: f.Severity, Subject: f.Subject, Serial: f.Serial, Location: f.Location, Message: f.Message, FirstSeen: f.FirstSeen})
	}
	for _, c := range checks {
		c.Rules = slices.Clone(c.Rules)
		for _, rule := range c.Rules {
			c.Failures += failures[rule]
		}
		c.Pass = c.Failures == 0
		r.Compliance = append(r.Compliance, c)
	}
	for _, o := range owners {
		r.Owners = append(r.Owners, *o)
	}
	sort.Slice(r.Owners, func(i, j int) bool {
		a, b := r.Owners[i], r.Owners[j]
		if a.HighOrAbove != b.HighOrAbove {
			return a.HighOrAbove > b.HighOrAbove
		}
		if a.Certificates != b.Certificates {
			return a.Certificates > b.Certificates
		}
		return a.Owner < b.Owner
	})
	for _, rule := range assess.Rules() {
		r.Rules = append(r.Rules, RuleInfo{ID: rule.ID, Severity: rule.Severity, Title: rule.Title, Description: rule.Description, Remediation: rule.Remediation})
	}
	r.Expiring = truncate(r, "expiring", r.Expiring)
	r.Findings = truncate(r, "findings", r.Findings)
	r.Owners = truncate(r, "owners", r.Owners)
	if len(r.Truncated) == 0 {
		r.Truncated = nil
	}
	return r, nil
}

func truncate[T any](r *Report, name string, rows []T) []T {
	if len(rows) > maxRows {
		r.Truncated[name] = len(rows) - maxRows
		return rows[:maxRows]
	}
	return rows
}
