package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sigil-pki/sigil/internal/bench"
	"github.com/sigil-pki/sigil/internal/identity"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Load-test a running server"}
	o := bench.IssueOptions{}
	issue := &cobra.Command{
		Use:     "issue",
		Short:   "Issue certificates through the API and report certificates/s, latency and server CPU per certificate",
		Example: "  sigil bench issue --profile web --count 20000 --concurrency 64\n  sigil bench issue --profile web --count 2000 --concurrency 1",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := bench.Issue(cmd.Context(), c, o)
			if err != nil {
				return err
			}
			if err := g.print(cmd.OutOrStdout(), res, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "certificates\t%d (%d errors)\n", res.Count, res.Errors)
				fmt.Fprintf(tw, "concurrency\t%d\n", res.Concurrency)
				fmt.Fprintf(tw, "elapsed\t%s\n", res.Elapsed.Round(1e6))
				fmt.Fprintf(tw, "throughput\t%.0f certificates/s\n", res.PerSecond)
				fmt.Fprintf(tw, "latency\tp50 %.3f ms, p90 %.3f ms, p99 %.3f ms\n", res.P50ms, res.P90ms, res.P99ms)
				if res.ServerCPU >= 0 {
					fmt.Fprintf(tw, "server CPU\t%.2f s, %.0f µs per certificate, %.0f certificates per core-second\n", res.ServerCPU, res.CPUPerCertUS, res.PerCoreSecond)
				}
				if res.FirstError != "" {
					fmt.Fprintf(tw, "first error\t%s\n", res.FirstError)
				}
			}); err != nil {
				return err
			}
			if res.Errors > 0 {
				return fmt.Errorf("%w: %d of %d requests failed", errRemote, res.Errors, res.Count)
			}
			return nil
		},
	}
	f := issue.Flags()
	f.StringVar(&o.Profile, "profile", "web", "profile to issue under")
	f.IntVar(&o.Count, "count", 2000, "number of certificates")
	f.IntVar(&o.Concurrency, "concurrency", 64, "parallel requests")
	f.StringVar(&o.KeyType, "key-type", identity.KeyECDSAP256, "key type of the CSRs")
	f.StringVar(&o.NamePattern, "name-pattern", "bench-%d.test", "DNS name pattern with one %d")
	f.IntVar(&o.DistinctCSR, "distinct-csrs", 64, "how many different CSRs (keys) to cycle through")
	// A CPU profile of the load generator itself: on one machine its cost
	// is the other half of what a benchmark measures.
	var cpuProfile string
	var stop func()
	cmd.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this load generator to the file (go tool pprof)")
	cmd.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		// Cobra runs only the nearest hook: the root's (environment, config
		// file, output format) first.
		if err := cmd.Root().PersistentPreRunE(cmd, args); err != nil {
			return err
		}
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		stop = func() { pprof.StopCPUProfile(); f.Close() }
		return nil
	}
	cmd.PersistentPostRun = func(*cobra.Command, []string) {
		if stop != nil {
			stop()
		}
	}
	cmd.AddCommand(issue, newBenchAgentsCmd(g), newBenchACMECmd(g))
	return cmd
}
