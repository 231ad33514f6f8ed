package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sigil-pki/sigil/internal/bench"
	"github.com/sigil-pki/sigil/internal/identity"
)

func newBenchAgentsCmd(g *globals) *cobra.Command {
	o := bench.AgentsOptions{}
	var quiet bool
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "Fleet benchmark: start a server, enrol N simulated agents, renew them over mTLS through a server outage",
		Long: `One process simulates N agents against a sigil server it starts itself (this binary, in a
temporary --dev data directory, on loopback): join tokens are created, every agent generates its
key and enrols, then each renews over mTLS when due (--renew-at of the lifetime, with --jitter).
The server is stopped when the first renewal is due and restarted --outage later (default a third
of the lifetime); agents retry with exponential backoff and jitter. Reported: enrolled, renewed,
expired (must be 0), the spread of renewals after the outage, renewal latency, and, with --burst,
the peak rate of mTLS renewals when every agent renews at once; the server's peak RSS.`,
		Example: "  sigil bench agents --n 10000 --ttl 3m --renew-at 0.5 --burst\n  sigil bench agents --n 100 --ttl 1m --renew-at 0.2 --outage 20s",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Server = []string{exe, "server"}
			if !quiet {
				o.Log = cmd.ErrOrStderr()
			}
			res, err := bench.Agents(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := g.print(cmd.OutOrStdout(), res, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "agents\t%d enrolled of %d in %.1fs (%.0f/s)\n", res.Enrolled, res.N, res.EnrollSeconds, res.EnrollPerSecond)
				fmt.Fprintf(tw, "lifetime, outage\t%s, %s\n", time.Duration(res.TTLSeconds*1e9), time.Duration(res.OutageSeconds*1e9))
				fmt.Fprintf(tw, "renewed\t%d (%d failed attempts during/after the outage)\n", res.Renewed, res.FailedAttempts)
				fmt.Fprintf(tw, "expired\t%d\n", res.Expired)
				fmt.Fprintf(tw, "after the outage\tpeak %d renewals/s; 90%% within %.1fs; all within %.1fs; least time left %.1fs\n", res.PeakRenewalsPerSecond, res.Renewal90SpanSeconds, res.RenewalSpanSeconds, res.MinMarginSeconds)
				fmt.Fprintf(tw, "renewal latency\tp50 %.1f ms, p99 %.1f ms\n", res.RenewalP50ms, res.RenewalP99ms)
				if o.Burst {
					fmt.Fprintf(tw, "burst\t%d mTLS renewals in %.1fs: %.0f renewals/s (%d errors)\n", res.BurstRenewals, res.BurstSeconds, res.BurstPerSecond, res.BurstErrors)
					fmt.Fprintf(tw, "burst server CPU\t%.1f s: %.0f renewals per server-core-second\n", res.BurstServerCPUSeconds, res.BurstPerServerCore)
				}
				fmt.Fprintf(tw, "server RSS\tpeak %.0f MB, at end %.0f MB\n", res.ServerPeakRSSMB, res.ServerRSSMB)
				if res.FirstError != "" {
					fmt.Fprintf(tw, "first error\t%s\n", res.FirstError)
				}
			}); err != nil {
				return err
			}
			if res.Expired > 0 || res.Enrolled < res.N {
				return fmt.Errorf("%w: %d of %d certificates expired", errRemote, res.Expired, res.N)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.N, "n", 1000, "number of simulated agents")
	f.IntVar(&o.Concurrency, "concurrency", 64, "parallel requests")
	f.DurationVar(&o.TTL, "ttl", 3*time.Minute, "certificate lifetime (at least 1m)")
	f.DurationVar(&o.Outage, "outage", 0, "how long the server is down from the first renewal due (default ttl/3)")
	f.Float64Var(&o.RenewAt, "renew-at", 0.5, "renew at this fraction of the lifetime (2/3 would leave exactly the outage)")
	f.Float64Var(&o.Jitter, "jitter", 0.1, "renew earlier by up to this fraction of the lifetime, at random")
	f.BoolVar(&o.Burst, "burst", false, "then renew every agent at once to measure peak mTLS renewals/s")
	f.StringVar(&o.KeyType, "key-type", identity.KeyECDSAP256, "agent key type")
	f.StringVar(&o.DataDir, "data", "", "server data directory (default: a temporary one, removed afterwards)")
	f.BoolVar(&quiet, "quiet", false, "no progress lines")
	f.StringSliceVar(&o.ServerFlags, "server-flag", nil, "extra flag for the server it starts, e.g. --server-flag=--pprof-listen=127.0.0.1:6060 (repeatable)")
	return cmd
}
