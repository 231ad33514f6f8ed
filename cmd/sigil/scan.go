package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sigil-pki/sigil/internal/client"
	"github.com/sigil-pki/sigil/internal/discovery"
	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/store"
)

func newScanCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "scan", Short: "Discover certificates, keys and secrets on networks and file systems"}
	cmd.AddCommand(newScanNetCmd(g), newScanFSCmd(g), newScanScheduleCmd(g))
	return cmd
}

// scanFlags are shared by scan net and scan fs.
type scanFlags struct {
	quiet  bool
	report bool
}

func (f *scanFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar")
	cmd.Flags().BoolVar(&f.report, "report", false, "send the results to the server's inventory (default when --server/SIGIL_SERVER is set; --report=false to keep them local)")
}

// reporting decides whether results go to the server.
func (f *scanFlags) reporting(cmd *cobra.Command, g *globals) bool {
	if cmd.Flags().Changed("report") {
		return f.report
	}
	return g.server != ""
}

func newScanNetCmd(g *globals) *cobra.Command {
	var (
		sf      scanFlags
		ports   []int
		sniFile string
		sni     []string
		opt     discovery.NetOptions
	)
	cmd := &cobra.Command{
		Use:   "net TARGET...",
		Short: "Handshake with TLS endpoints (CIDRs, hosts, host:port) and record every presented certificate",
		Example: `  sigil scan net 10.20.0.0/24 --ports 443,8443,6443,993 --sni-file names.txt --concurrency 256 --timeout 3s
  sigil scan net web1.internal:8443 mail.internal:25 -o json --report=false`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sniFile != "" {
				names, err := readLines(sniFile)
				if err != nil {
					return err
				}
				sni = append(sni, names...)
			}
			targets, err := discovery.ParseTargets(args, ports, sni)
			if err != nil {
				return err
			}
			report := sf.reporting(cmd, g)
			var c *client.Client
			if report {
				if c, err = g.client(); err != nil {
					return err
				}
			}
			col := inventory.NewCollector()
			var done atomic.Int64
			opt.Done = func(discovery.Endpoint, error) { done.Add(1) }
			stop := startProgress(cmd.ErrOrStderr(), !sf.quiet, "endpoints", targets.Count(), &done, col)
			start := time.Now()
			scanErr := discovery.ScanNet(cmd.Context(), targets, opt, col)
			stop()
			return finishScan(cmd, g, c, col.Report("net", hostname()), time.Since(start), scanErr, netTable)
		},
	}
	sf.add(cmd)
	f := cmd.Flags()
	f.IntSliceVar(&ports, "ports", nil, "ports for targets without their own (default 443)")
	f.StringVar(&sniFile, "sni-file", "", "file of server names (one a line) to send as SNI to every endpoint")
	f.StringSliceVar(&sni, "sni", nil, "server name to send as SNI to every endpoint (repeatable)")
	f.IntVar(&opt.Concurrency, "concurrency", 256, "handshakes in flight")
	f.DurationVar(&opt.Timeout, "timeout", 3*time.Second, "per endpoint: connect, STARTTLS and handshake together")
	f.Float64Var(&opt.Rate, "rate", 0, "new connections per second (0: unlimited)")
	f.StringVar(&opt.StartTLS, "starttls", "auto", "auto (SMTP 25/587, IMAP 143, POP3 110, LDAP 389), none, smtp, imap, pop3 or ldap")
	return cmd
}

func newScanFSCmd(g *globals) *cobra.Command {
	var (
		sf        scanFlags
		opt       discovery.FSOptions
		noSecrets bool
		maxSize   string
	)
	cmd := &cobra.Command{
		Use:   "fs PATH...",
		Short: "Find certificates, private keys, keystores, SSH keys and known secrets in files",
		Example: `  sigil scan fs /etc /srv /home --ssh
  sigil scan fs /opt/app --p12-password changeit -o json --report=false`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseSize(maxSize)
			if err != nil {
				return err
			}
			opt.MaxSize, opt.Secrets = n, !noSecrets
			report := sf.reporting(cmd, g)
			var c *client.Client
			if report {
				if c, err = g.client(); err != nil {
					return err
				}
			}
			if opt.Host == "" {
				opt.Host = hostname()
			}
			col := inventory.NewCollector()
			var done atomic.Int64
			opt.Done = func(string) { done.Add(1) }
			stop := startProgress(cmd.ErrOrStderr(), !sf.quiet, "files", -1, &done, col)
			start := time.Now()
			scanErr := discovery.ScanFS(cmd.Context(), args, opt, col)
			stop()
			return finishScan(cmd, g, c, col.Report("fs", opt.Host), time.Since(start), scanErr, fsTable)
		},
	}
	sf.add(cmd)
	f := cmd.Flags()
	f.BoolVar(&opt.SSH, "ssh", false, "also OpenSSH keys and certificates, authorized_keys and known_hosts")
	f.BoolVar(&noSecrets, "no-secrets", false, "do not look for well-known secrets (API tokens, cloud keys)")
	f.StringVar(&maxSize, "max-size", "4MiB", "skip larger files")
	f.StringSliceVar(&opt.Passwords, "p12-password", nil, "password to try on PKCS#12 files and encrypted keys, after the empty one (repeatable)")
	f.StringVar(&opt.Host, "host", "", "host name recorded with each file (default: this machine's)")
	f.IntVar(&opt.Workers, "workers", 0, "files parsed in parallel (default: CPUs)")
	return cmd
}

// finishScan prints (and reports) the results, partial ones included when
// the scan was interrupted.
func finishScan(cmd *cobra.Command, g *globals, c *client.Client, rep *inventory.Report, took time.Duration, scanErr error,
	table func(*tabwriter.Writer, *inventory.Report)) error {
	var sum *inventory.Summary
	var reportErr error
	if c != nil {
		// Sent even after Ctrl-C: partial results are kept.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 2*time.Minute)
		s, err := c.ReportDiscovery(ctx, rep)
		cancel()
		if err != nil {
			reportErr = err
		} else {
			sum = &s
		}
	}
	out := struct {
		*inventory.Report
		Server *inventory.Summary `json:"server,omitempty"`
	}{rep, sum}
	err := g.print(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
		table(tw, rep)
		_ = tw.Flush()
		w := cmd.OutOrStdout()
		fmt.Fprintf(w, "\nscanned %d %s in %s: %d identities, %d locations, %d errors", rep.Scanned,
			map[string]string{"net": "endpoints", "fs": "files"}[rep.Scanner], took.Round(time.Millisecond),
			len(rep.Identities), len(rep.Locations), len(rep.Errors))
		if rep.Scanner == "net" {
			fmt.Fprintf(w, ", %d unreachable", rep.Unreachable)
		}
		fmt.Fprintln(w)
		printErrors(w, rep.Errors, 10)
		if sum != nil {
			fmt.Fprintf(w, "reported to the server: %d identities (%d new, %d issued by Sigil), %d locations (%d new)\n",
				sum.Identities, sum.NewIdentities, sum.Issued, sum.Locations, sum.NewLocations)
		}
	})
	if err != nil {
		return err
	}
	if reportErr != nil {
		return fmt.Errorf("reporting to the server: %w", reportErr)
	}
	if scanErr != nil {
		if errors.Is(scanErr, context.Canceled) {
			return errors.New("scan interrupted: partial results above")
		}
		return scanErr
	}
	return nil
}

func printErrors(w io.Writer, errs []inventory.ScanError, n int) {
	if len(errs) == 0 {
		return
	}
	fmt.Fprintf(w, "errors (first %d of %d):\n", min(n, len(errs)), len(errs))
	for _, e := range errs[:min(n, len(errs))] {
		fmt.Fprintf(w, "  %s: %s\n", e.Target, oneLine(e.Error))
	}
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}

func date(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02")
}

func clipCell(s string, n int) string {
	if len(s) > n {
		return s[:n-1] + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}

func netTable(tw *tabwriter.Writer, rep *inventory.Report) {
	ids := map[string]inventory.Identity{}
	for _, id := range rep.Identities {
		ids[id.Fingerprint] = id
	}
	fmt.Fprintln(tw, "ENDPOINT\tSNI\tCHAIN\tSUBJECT\tISSUER\tNOT AFTER\tTLS\tFINGERPRINT")
	locs := append([]inventory.Location(nil), rep.Locations...)
	sort.SliceStable(locs, func(i, j int) bool {
		a, b := locs[i], locs[j]
		if a.Host != b.Host || a.Port != b.Port || a.SNI != b.SNI {
			return fmt.Sprintf("%s:%05d/%s", a.Host, a.Port, a.SNI) < fmt.Sprintf("%s:%05d/%s", b.Host, b.Port, b.SNI)
		}
		return a.ChainIndex < b.ChainIndex
	})
	for _, l := range locs {
		id := ids[l.Fingerprint]
		fmt.Fprintf(tw, "%s:%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", l.Host, l.Port, clipCell(l.SNI, 30), l.ChainIndex,
			clipCell(id.Subject, 40), clipCell(id.Issuer, 40), date(id.NotAfter), l.TLSVersion, short(l.Fingerprint))
	}
}

func fsTable(tw *tabwriter.Writer, rep *inventory.Report) {
	ids := map[string]inventory.Identity{}
	for _, id := range rep.Identities {
		ids[id.Fingerprint] = id
	}
	fmt.Fprintln(tw, "PATH\tKIND\tSUBJECT / RULE\tKEY\tNOT AFTER\tMODE\tOWNER\tDETAIL\tFINGERPRINT")
	for _, l := range rep.Locations {
		id := ids[l.Fingerprint]
		what := id.Subject
		if id.Kind == store.KindSecret {
			what = id.RuleID
		}
		key := id.KeyAlgorithm
		if id.KeySize > 0 {
			key = fmt.Sprintf("%s %d", key, id.KeySize)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%04o\t%s\t%s\t%s\n", l.Path, id.Kind, clipCell(what, 40), clipCell(key, 12),
			date(id.NotAfter), l.FileMode, clipCell(l.FileOwner, 12), clipCell(l.Detail, 40), short(l.Fingerprint))
	}
}

// startProgress draws a progress line on w while a scan runs, when w is a
// terminal and enabled; total < 0 means unknown. The returned func stops it.
func startProgress(w io.Writer, enabled bool, unit string, total int64, done *atomic.Int64, col *inventory.Collector) func() {
	f, ok := w.(*os.File)
	if !enabled || !ok || !isTerminal(f) {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	draw := func() {
		n := done.Load()
		ids, _, errs := col.Counts()
		line := fmt.Sprintf("%d %s", n, unit)
		if total > 0 {
			const width = 30
			frac := float64(n) / float64(total)
			filled := int(frac * width)
			line = fmt.Sprintf("[%s%s] %5.1f%% %d/%d %s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
				100*frac, n, total, unit)
		}
		fmt.Fprintf(f, "\r%s, %d identities, %d errors\033[K", line, ids, errs)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				draw()
			case <-stop:
				draw()
				fmt.Fprintln(f)
				return
			}
		}
	}()
	return func() { close(stop); <-finished }
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// parseSize reads 4MiB, 512KiB, 10MB, 1000 (bytes).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(num, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != strings.TrimSpace(num) {
		return 0, fmt.Errorf("invalid size %q (e.g. 4MiB, 512KiB)", s)
	}
	return n * mult, nil
}

func newScanScheduleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "schedule", Short: "Network scans the server runs periodically"}
	var s client.ScanSchedule
	var timeout time.Duration
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create or replace a scheduled network scan",
		Example: `  sigil scan schedule create --name dc1 --targets 10.20.0.0/24 --ports 443 --every 6h`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if s.Name == "" || len(s.Targets) == 0 || s.Every == "" {
				return errors.New("--name, --targets and --every are required")
			}
			if _, err := discovery.ParseTargets(s.Targets, s.Ports, s.SNI); err != nil {
				return err
			}
			if timeout > 0 {
				s.Timeout = timeout.String()
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			out, err := c.CreateScanSchedule(cmd.Context(), &s)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "schedule %s: every %s, next run %s\n", out.Name, out.Every, out.NextRun.Format(time.RFC3339))
			})
		},
	}
	f := create.Flags()
	f.StringVar(&s.Name, "name", "", "schedule name")
	f.StringSliceVar(&s.Targets, "targets", nil, "CIDRs, hosts, host:port (comma-separated or repeated)")
	f.IntSliceVar(&s.Ports, "ports", nil, "ports (default 443)")
	f.StringSliceVar(&s.SNI, "sni", nil, "SNI names to try on every endpoint")
	f.StringVar(&s.Every, "every", "", "interval, e.g. 6h or 1d")
	f.DurationVar(&timeout, "timeout", 0, "per-endpoint timeout (default 3s)")
	f.IntVar(&s.Concurrency, "concurrency", 0, "handshakes in flight (default 64 on the server)")

	list := &cobra.Command{
		Use: "list", Short: "List scheduled scans", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ss, err := c.ListScanSchedules(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), map[string]any{"items": ss, "count": len(ss)}, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tTARGETS\tPORTS\tEVERY\tNEXT RUN\tLAST RUN\tLAST RESULT")
				for _, s := range ss {
					last := "-"
					if !s.LastRun.IsZero() {
						last = s.LastRun.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, clipCell(strings.Join(s.Targets, ","), 40),
						clipCell(strings.Trim(fmt.Sprint(s.Ports), "[]"), 20), s.Every, s.NextRun.UTC().Format(time.RFC3339), last,
						clipCell(s.LastResult, 60))
				}
			})
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a scheduled scan", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteScanSchedule(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted schedule %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}
