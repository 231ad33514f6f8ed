package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/assess"
	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/keys"
	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/report"
	"github.com/sigil-pki/sigil/internal/server"
	"github.com/sigil-pki/sigil/internal/siem"
)

func newFindingsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "findings", Short: "Risk findings: what is wrong, where, since when, how to fix"}
	var severity, identity, rule, failOn string
	var all bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List open findings; with --fail-on, exit 3 when any is at or above that severity",
		Example: `  sigil findings list --severity high -o table
  sigil findings list --identity 6c1f…e2 -o json
  sigil findings list --fail-on high    # CI gate: exit code 3 when high or critical findings are open`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, s := range []string{severity, failOn} {
				if s != "" && assess.Rank(s) < 0 {
					return fmt.Errorf("unknown severity %q: use info, low, medium, high or critical", s)
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"severity": severity, "identity": identity, "rule": rule} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if all {
				q.Set("all", "true")
			}
			var resp struct {
				Items []api.FindingView `json:"items"`
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/findings?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			if err := g.print(cmd.OutOrStdout(), resp.Items, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "SEVERITY\tRULE\tSUBJECT\tWHERE\tSINCE\tDETAILS")
				for _, f := range resp.Items {
					subject := f.Serial
					if subject == "" {
						subject = shortFP(f.Subject)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Severity, f.Rule, subject, orDash(f.Location), f.FirstSeen.Format(time.RFC3339), f.Message)
				}
			}); err != nil {
				return err
			}
			if failOn != "" {
				n := 0
				for _, f := range resp.Items {
					if f.ResolvedAt.IsZero() && assess.Rank(f.Severity) >= assess.Rank(failOn) {
						n++
					}
				}
				if n > 0 {
					return fmt.Errorf("%w: %d open finding(s) at or above %s", errThreshold, n, failOn)
				}
			}
			return nil
		},
	}
	f := list.Flags()
	f.StringVar(&severity, "severity", "", "only findings at or above this severity: info, low, medium, high, critical")
	f.StringVar(&identity, "identity", "", "only findings about this identity (certificate SHA-256 fingerprint)")
	f.StringVar(&rule, "rule", "", "only this rule (see sigil findings rules)")
	f.BoolVar(&all, "all", false, "include resolved findings")
	f.StringVar(&failOn, "fail-on", "", "exit with code 3 if an open finding is at or above this severity")
	rules := &cobra.Command{
		Use: "rules", Short: "List the rules, their severity and remediation", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out []map[string]string
			for _, r := range assess.Rules() {
				out = append(out, map[string]string{"id": r.ID, "severity": r.Severity, "title": r.Title, "description": r.Description, "remediation": r.Remediation})
			}
			return g.print(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "RULE\tSEVERITY\tTITLE")
				for _, r := range assess.Rules() {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", r.ID, r.Severity, r.Title)
				}
			})
		},
	}
	cmd.AddCommand(list, rules)
	return cmd
}

func shortFP(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newReportCmd(g *globals) *cobra.Command {
	var format, out string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Posture report: risk counts, expiry calendar, owners, compliance checks (self-contained HTML or JSON)",
		Example: `  sigil report --format html > report.html
  sigil report --format json --out report.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "html" && format != "json" {
				return fmt.Errorf("unknown format %q (use html or json)", format)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var rep report.Report
			if err := c.Do(cmd.Context(), "GET", "/api/v1/report", nil, &rep); err != nil {
				return err
			}
			var buf bytes.Buffer
			if format == "html" {
				if err := report.HTML(&buf, &rep); err != nil {
					return err
				}
			} else {
				enc := json.NewEncoder(&buf)
				enc.SetIndent("", "  ")
				if err := enc.Encode(&rep); err != nil {
					return err
				}
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(buf.Bytes())
				return err
			}
			return keys.WriteFileAtomic(out, buf.Bytes(), 0o644)
		},
	}
	cmd.Flags().StringVar(&format, "format", "html", "html or json")
	cmd.Flags().StringVar(&out, "out", "", "write to this file instead of standard output")
	return cmd
}

func newNotifyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "notify", Short: "Webhook notifications: expiry, revocation and finding events, HMAC-signed"}
	var hook, secretFile string
	var events []string
	add := &cobra.Command{
		Use:   "add --webhook URL --events LIST --secret-file FILE",
		Short: "Subscribe a webhook; each delivery carries Sigil-Signature: t=<unix>,v1=<HMAC-SHA256 of \"t.body\">",
		Example: `  openssl rand -hex 32 > hook.key
  sigil notify add --webhook https://hooks.internal/pki --events expiring,revoked,finding.high --secret-file hook.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if hook == "" || secretFile == "" || len(events) == 0 {
				return errors.New("--webhook, --events and --secret-file are required")
			}
			secret, err := os.ReadFile(secretFile)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var v api.WebhookView
			req := api.WebhookRequest{URL: hook, Events: events, Secret: strings.TrimSpace(string(secret))}
			if err := c.Do(cmd.Context(), "POST", "/api/v1/webhooks", req, &v); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "webhook/%s\tadded\t%s\t%s\n", v.ID, v.URL, strings.Join(v.Events, ","))
			})
		},
	}
	af := add.Flags()
	af.StringVar(&hook, "webhook", "", "URL to POST events to (http or https)")
	af.StringSliceVar(&events, "events", nil, "events: expiring, expired, revoked, issued, finding.low|medium|high|critical (comma-separated)")
	af.StringVar(&secretFile, "secret-file", "", "file holding the shared HMAC secret (16+ bytes of text, e.g. openssl rand -hex 32)")
	list := &cobra.Command{
		Use: "list", Short: "List webhooks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var resp struct {
				Items []api.WebhookView `json:"items"`
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/webhooks", nil, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp.Items, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tURL\tEVENTS\tCREATED BY\tCREATED")
				for _, h := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.ID, h.URL, strings.Join(h.Events, ","), h.CreatedBy, h.CreatedAt.Format(time.RFC3339))
				}
			})
		},
	}
	remove := &cobra.Command{
		Use: "remove ID", Short: "Remove a webhook and its deliveries", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return c.Do(cmd.Context(), "DELETE", "/api/v1/webhooks/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	var status, webhook string
	deliveries := &cobra.Command{
		Use: "deliveries", Short: "List deliveries; --status dead shows dead letters", Args: cobra.NoArgs,
		Example: "  sigil notify deliveries --status dead",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if status != "" {
				q.Set("status", status)
			}
			if webhook != "" {
				q.Set("webhook", webhook)
			}
			var resp struct {
				Items []api.DeliveryView `json:"items"`
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/webhooks/deliveries?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp.Items, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tWEBHOOK\tEVENT\tSTATUS\tATTEMPTS\tLAST\tKEY")
				for _, d := range resp.Items {
					last := d.LastError
					if last == "" && d.LastStatus != 0 {
						last = "HTTP " + strconv.Itoa(d.LastStatus)
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.WebhookID, d.Event, d.Status, d.Attempts, orDash(last), d.Key)
				}
			})
		},
	}
	deliveries.Flags().StringVar(&status, "status", "", "pending, delivered or dead")
	deliveries.Flags().StringVar(&webhook, "webhook", "", "only this webhook")
	cmd.AddCommand(add, list, remove, deliveries)
	return cmd
}

// newAuditExportCmd exports audit events for a SIEM, paging through the API.
func newAuditExportCmd(g *globals) *cobra.Command {
	var format, since, until, to, out string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export audit events as JSON lines, RFC 5424 syslog or CEF (to standard output, a file, or a syslog collector)",
		Example: `  sigil audit export --format jsonl --since 24h > audit.jsonl
  sigil audit export --format cef --since 2026-11-01T00:00:00Z
  sigil audit export --format syslog --since 7d --to tcp://siem.internal:601`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != siem.FormatJSONL && format != siem.FormatSyslog && format != siem.FormatCEF {
				return fmt.Errorf("unknown format %q (use jsonl, syslog or cef)", format)
			}
			var sink *siem.Sink
			if to != "" {
				var err error
				if format == siem.FormatJSONL {
					return errors.New("--to sends syslog or cef, not jsonl")
				}
				u := to
				if format == siem.FormatCEF {
					u += map[bool]string{true: "&", false: "?"}[strings.Contains(to, "?")] + "format=cef"
				}
				if sink, err = siem.ParseSink(u); err != nil {
					return err
				}
				defer sink.Close()
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			var file *os.File
			if out != "" && out != "-" {
				if file, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
					return err
				}
				defer file.Close()
				w = file
			}
			bw := bufio.NewWriter(w)
			host, _ := os.Hostname()
			after := int64(0)
			n := 0
			for {
				q := url.Values{"limit": {"1000"}, "after": {strconv.FormatInt(after, 10)}}
				if since != "" {
					q.Set("since", since)
				}
				if until != "" {
					q.Set("until", until)
				}
				var resp struct {
					Items []*audit.Event `json:"items"`
				}
				if err := c.Do(cmd.Context(), "GET", "/api/v1/audit?"+q.Encode(), nil, &resp); err != nil {
					return err
				}
				if sink != nil && len(resp.Items) > 0 {
					if _, err := sink.Send(cmd.Context(), resp.Items); err != nil {
						return err
					}
				} else {
					for _, e := range resp.Items {
						line, err := siem.Format(format, e, host)
						if err != nil {
							return err
						}
						bw.Write(line)
						bw.WriteByte('\n')
					}
				}
				n += len(resp.Items)
				if len(resp.Items) < 1000 {
					break
				}
				after = resp.Items[len(resp.Items)-1].Seq
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			if sink != nil || file != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "exported %d events\n", n)
			}
			if file != nil {
				return file.Close()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "jsonl", "jsonl, syslog (RFC 5424) or cef")
	f.StringVar(&since, "since", "", "from this time (RFC 3339) or this long ago (24h, 7d)")
	f.StringVar(&until, "until", "", "up to this time (RFC 3339) or this long ago")
	f.StringVar(&to, "to", "", "send to a syslog collector instead: udp://, tcp:// or tls://host:port (see docs/monitoring.md)")
	f.StringVar(&out, "out", "", "write to this file (mode 0600) instead of standard output")
	return cmd
}

// addMonitorFlags adds the server's assessment, notification and audit-sink flags.
func addMonitorFlags(f *pflag.FlagSet, c *server.MonitorConfig) {
	f.StringArrayVar(&c.AuditSinks, "audit-sink", nil, "ship every audit event after commit to this syslog collector: syslog://host[:514] (UDP), tcp://host[:601], tls://host[:6514][?ca=FILE]; ?format=cef for CEF (repeatable)")
	f.BoolVar(&c.AuditSinkRequired, "audit-sink-required", false, "fail closed: refuse state-changing requests with 503 while an audit sink cannot be written")
	f.DurationVar(&c.AssessInterval, "assess-interval", 10*time.Minute, "how often every identity is re-evaluated for findings (changes are evaluated within seconds)")
	c.ExpiryThresholds = []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour}
	f.Var((*durationList)(&c.ExpiryThresholds), "expiry-thresholds", "expiry alert thresholds, e.g. 30d,7d,1d")
	c.AgentStaleAfter = 7 * 24 * time.Hour
	f.Var((*dayDuration)(&c.AgentStaleAfter), "agent-stale-after", "an active agent not seen for this long while its certificate is valid is a finding, e.g. 7d or 36h")
	f.StringSliceVar(&c.Owners, "owner", nil, "allowed owners: an identity owned by anyone else is a finding (repeatable; default any non-empty owner)")
	f.StringVar(&c.KeyBlocklist, "key-blocklist", "", "file of compromised keys (SPKI SHA-256 hex, one per line) to flag")
	f.StringVar(&c.TrustAnchors, "trust-anchors", "", "PEM file of other CAs whose certificates count as managed (not shadow)")
	f.DurationVar(&c.WebhookBackoff, "webhook-backoff", 30*time.Second, "wait before retrying a failed webhook delivery (doubles each time, up to 1h)")
	f.IntVar(&c.WebhookAttempts, "webhook-attempts", 8, "attempts before a webhook delivery becomes a dead letter")
}

// durationList is a comma-separated list of durations (Go syntax or days, 30d).
type durationList []time.Duration

func (d *durationList) String() string {
	var parts []string
	for _, x := range *d {
		if x%(24*time.Hour) == 0 {
			parts = append(parts, strconv.Itoa(int(x/(24*time.Hour)))+"d")
		} else {
			parts = append(parts, x.String())
		}
	}
	return strings.Join(parts, ",")
}

func (d *durationList) Set(s string) error {
	var out []time.Duration
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		v, err := policy.ParseDuration(p)
		if err != nil || v <= 0 {
			return fmt.Errorf("invalid duration %q", p)
		}
		out = append(out, time.Duration(v))
	}
	if len(out) == 0 {
		return errors.New("at least one threshold is required")
	}
	*d = out
	return nil
}

func (d *durationList) Type() string { return "durations" }

// dayDuration is one positive duration, Go syntax or days (7d).
type dayDuration time.Duration

func (d *dayDuration) String() string {
	l := durationList{time.Duration(*d)}
	return l.String()
}

func (d *dayDuration) Set(s string) error {
	var l durationList
	if err := l.Set(s); err != nil || len(l) != 1 {
		return fmt.Errorf("invalid duration %q (e.g. 7d or 36h)", s)
	}
	*d = dayDuration(l[0])
	return nil
}

func (d *dayDuration) Type() string { return "duration" }
