package assess

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/lint"
	"github.com/sigil-pki/sigil/internal/notify"
	"github.com/sigil-pki/sigil/internal/store"
)

// Engine turns the store's certificates and inventory into findings. Run
// evaluates everything (on a schedule, under the background lease); RunFor
// re-evaluates only the identities a change touched (after a scan). Both
// open new findings, refresh open ones and resolve those no rule reports
// any more, and enqueue webhook notifications for what opened.
type Engine struct {
	Store  store.Store
	Config Config
	// Lint, if set, returns zlint results for a certificate's DER. It runs
	// on Sigil-issued certificates in full runs only (they passed the error
	// lints before signing, so only warnings can appear; an issuance does
	// not pay for them at once); results are cached by fingerprint for the
	// life of the engine, and incremental runs use the cache. Discovered
	// and imported certificates are linted once when they enter the
	// inventory (InventoryLinter, inventory.Batch.LintNew): the engine reads
	// their stored results and never lints them.
	Lint func(der []byte) LintResult
	// TrustAnchors are issuers besides Sigil's own whose certificates are
	// "managed" (not shadow, not unknown issuer).
	TrustAnchors []*x509.Certificate
	// Blocklist holds hex SPKI SHA-256 values of known-compromised keys.
	Blocklist map[string]bool
	Log       *slog.Logger
	Now       func() time.Time

	mu        sync.Mutex // one run at a time
	lintCache map[string]LintResult
	last      *runContext // context of the last full run, reused by RunFor
}

// LintResult is what zlint reported for one certificate, each entry
// "lint_name (details)".
type LintResult struct {
	Errors   []string // error and fatal results
	Warnings []string
}

// Summary describes one run.
type Summary struct {
	Identities int
	Findings   int // open after the run, among the evaluated identities
	Opened     int
	Resolved   int
	Notified   int
	Duration   time.Duration
}

// refreshAfter: an open finding whose message did not change is rewritten
// (LastSeen moved) at most this often, so a full run writes only changes.
const refreshAfter = time.Hour

// pageSize bounds identities read per query.
const pageSize = 5000

// Run evaluates every identity.
func (e *Engine) Run(ctx context.Context) (*Summary, error) {
	return e.run(ctx, nil)
}

// RunFor evaluates the identities with these fingerprints (certificate
// SHA-256 or inventory fingerprints) and resolves only their findings.
func (e *Engine) RunFor(ctx context.Context, fingerprints []string) (*Summary, error) {
	if len(fingerprints) == 0 {
		return &Summary{}, nil
	}
	return e.run(ctx, fingerprints)
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) run(ctx context.Context, only []string) (*Summary, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last == nil {
		only = nil // an incremental run needs a full run's context first
	}
	start := time.Now()
	now := e.now().UTC()
	facts, err := e.load(ctx, now, only)
	if err != nil {
		return nil, err
	}
	var results []Result
	for _, f := range facts {
		results = append(results, Evaluate(e.Config, now, f)...)
	}
	sum, err := e.sync(ctx, now, only, facts, results)
	if err != nil {
		return nil, err
	}
	sum.Identities = len(facts)
	sum.Duration = time.Since(start)
	return sum, nil
}

// sync stores results as findings and resolves the open findings of the
// evaluated subjects that no rule reported.
func (e *Engine) sync(ctx context.Context, now time.Time, only []string, facts map[string]*Facts, results []Result) (*Summary, error) {
	var open []*store.Finding
	if only == nil {
		var err error
		if open, err = e.Store.ListFindings(ctx, store.FindingFilter{}); err != nil {
			return nil, err
		}
	} else {
		// The evaluated subjects and those asked for but gone from the
		// store (theirs are resolved too), a query per 500.
		subjects := make([]string, 0, len(facts)+len(only))
		for fp := range facts {
			subjects = append(subjects, fp)
		}
		for _, fp := range only {
			if _, ok := facts[fp]; !ok {
				subjects = append(subjects, fp)
			}
		}
		for i := 0; i < len(subjects); i += 500 {
			fs, err := e.Store.ListFindings(ctx, store.FindingFilter{Subjects: subjects[i:min(i+500, len(subjects))]})
			if err != nil {
				return nil, err
			}
			open = append(open, fs...)
		}
	}
	byID := map[string]*store.Finding{}
	for _, f := range open {
		byID[f.ID] = f
	}
	var upserts []*store.Finding
	current := map[string]bool{}
	for _, r := range results {
		if current[r.ID] {
			continue
		}
		current[r.ID] = true
		old := byID[r.ID]
		if old != nil && old.Severity == r.Severity && old.Message == r.Message && now.Sub(old.LastSeen) < refreshAfter {
			continue
		}
		upserts = append(upserts, &store.Finding{ID: r.ID, Rule: r.Rule, Severity: r.Severity, Rank: Rank(r.Severity),
			Subject: r.Subject, Serial: r.Serial, Location: r.Location, Message: r.Message, LastSeen: now})
	}
	var resolve []string
	for id := range byID {
		if !current[id] {
			resolve = append(resolve, id)
		}
	}
	sort.Strings(resolve)
	sum := &Summary{Findings: len(current), Resolved: len(resolve)}
	var opened []*store.Finding
	const batch = 1000
	for i := 0; i < len(upserts); i += batch {
		chunk := upserts[i:min(i+batch, len(upserts))]
		var newly []*store.Finding
		err := e.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			newly = newly[:0]
			ok, err := tx.UpsertFindings(ctx, chunk)
			if err != nil {
				return err
			}
			for i, f := range chunk {
				if ok[i] {
					newly = append(newly, f)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("storing findings: %w", err)
		}
		opened = append(opened, newly...)
	}
	for i := 0; i < len(resolve); i += batch {
		chunk := resolve[i:min(i+batch, len(resolve))]
		err := e.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			for _, id := range chunk {
				if err := tx.ResolveFinding(ctx, id, now); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("resolving findings: %w", err)
		}
	}
	sum.Opened = len(opened)
	n, err := e.notify(ctx, now, opened)
	sum.Notified = n
	return sum, err
}

// notify enqueues webhook events for newly opened findings: finding.<severity>
// for every one, plus expiring (once per threshold) and expired.
func (e *Engine) notify(ctx context.Context, now time.Time, opened []*store.Finding) (int, error) {
	if len(opened) == 0 {
		return 0, nil
	}
	hooks, err := e.Store.ListWebhooks(ctx)
	if err != nil || len(hooks) == 0 {
		return 0, err
	}
	total := 0
	for _, f := range opened {
		data := map[string]any{"finding": f.ID, "rule": f.Rule, "severity": f.Severity, "subject": f.Subject, "serial": f.Serial,
			"location": f.Location, "message": f.Message, "first_seen": f.FirstSeen}
		if r := RuleByID(f.Rule); r != nil {
			data["title"], data["remediation"] = r.Title, r.Remediation
		}
		evs := []notify.Event{{Type: "finding." + f.Severity, DedupKey: fmt.Sprintf("finding:%s:%d", f.ID, f.FirstSeen.Unix()), Time: now, Data: data}}
		switch f.Rule {
		case "expiring":
			// One per identity and threshold: f.ID is expiring:<fp>:<threshold>.
			evs = append(evs, notify.Event{Type: "expiring", DedupKey: f.ID, Time: now, Data: data})
		case "expired-deployed":
			evs = append(evs, notify.Event{Type: "expired", DedupKey: "expired:" + f.Subject, Time: now, Data: data})
		}
		for _, ev := range evs {
			n, err := notify.Enqueue(ctx, e.Store, ev)
			if err != nil {
				return total, err
			}
			total += n
		}
	}
	return total, nil
}

// ParseBlocklist reads one hex SPKI SHA-256 per line ("#" comments).
func ParseBlocklist(r io.Reader) (map[string]bool, error) {
	out := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		line = strings.ToLower(strings.TrimPrefix(strings.ToLower(line), "sha256:"))
		if len(line) != 64 || strings.Trim(line, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("blocklist line %d: want 64 hex characters (SPKI SHA-256)", n)
		}
		out[line] = true
	}
	return out, sc.Err()
}

// RenewalManaged reports whether a requester (or audit actor) renews on
// schedule: the server itself (its TLS certificate), an agent or an ACME
// client.
func RenewalManaged(requester string) bool {
	return requester == "system" || strings.HasPrefix(requester, "agent:") || strings.HasPrefix(requester, "acme:")
}

// renewAt is the planned renewal point of a managed certificate: two thirds
// of its lifetime, the point the server and agents renew at.
func renewAt(nb, na time.Time) time.Time {
	return nb.Add(na.Sub(nb) * 2 / 3)
}

// nameKey groups certificates that replace each other: same profile and
// same names.
func nameKey(c *identity.Certificate) string {
	names := slices.Concat(c.DNSNames, c.IPAddresses, c.URIs, c.Emails)
	slices.Sort(names)
	return c.Profile + "\x00" + strings.ToLower(c.CommonName) + "\x00" + strings.Join(names, ",")
}

// InventoryLinter adapts a linter (built with NewWithWarnings) to ingestion
// (ra.RA.SetInventoryLinter): a certificate zcrypto cannot parse is
// recorded as linted with no results.
func InventoryLinter(l *lint.Linter) func(der []byte) *store.InventoryLint {
	lw := LintWith(l)
	return func(der []byte) *store.InventoryLint {
		r := lw(der)
		return &store.InventoryLint{Errors: r.Errors, Warnings: r.Warnings}
	}
}

// LintWith adapts a linter (internal/lint, built with NewWithWarnings) to
// Engine.Lint. A certificate zcrypto cannot parse gets no lint results; the
// other rules still see it.
func LintWith(l *lint.Linter) func(der []byte) LintResult {
	return func(der []byte) LintResult {
		var r LintResult
		fs, err := l.Findings(der)
		if err != nil {
			return r
		}
		for _, f := range fs {
			e := f.Name
			if f.Details != "" {
				e += " (" + f.Details + ")"
			}
			if f.Status == "warn" {
				r.Warnings = append(r.Warnings, e)
			} else {
				r.Errors = append(r.Errors, e)
			}
		}
		return r
	}
}
