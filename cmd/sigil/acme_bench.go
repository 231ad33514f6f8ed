package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sigil-pki/sigil/internal/bench"
	"github.com/sigil-pki/sigil/internal/client"
)

func newBenchACMECmd(g *globals) *cobra.Command {
	o := bench.ACMEOptions{}
	cmd := &cobra.Command{
		Use:   "acme",
		Short: "Run complete ACME orders (account, order, http-01, finalize, download) and report orders/s, latency and server CPU per order",
		Long: `Each order is what a new ACME client does: a new account, a new order for one name, the
http-01 challenge answered by this process on --http-listen (loopback), finalize with a CSR and the
certificate download. The server must validate there and must not require EAB for the profile:

  sigil server --acme-http-port 5002 --acme-resolve '*.test=127.0.0.1' ...
  sigil acme enable --profile web
  sigil bench acme --profile web --orders 3000 --concurrency 32 --http-listen 127.0.0.1:5002

Names come from --name-pattern and must be allowed by the profile; each run should use fresh
names (the server's per-name rate limit counts them, see --acme-orders-per-name). No API token is
needed (ACME authenticates by account key); server CPU is read from /metrics.`,
		Example: "  sigil bench acme --orders 3000 --concurrency 32 --http-listen 127.0.0.1:5002\n  sigil bench acme --profile web --orders 500 --concurrency 8 --name-pattern 'run2-%d.test'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client.New(g.server, g.token, g.root)
			if err != nil {
				return err
			}
			res, err := bench.ACME(cmd.Context(), c, o)
			if err != nil {
				return err
			}
			if err := g.print(cmd.OutOrStdout(), res, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "orders\t%d (%d errors)\n", res.Orders, res.Errors)
				fmt.Fprintf(tw, "concurrency\t%d\n", res.Concurrency)
				fmt.Fprintf(tw, "elapsed\t%s\n", res.Elapsed.Round(1e6))
				fmt.Fprintf(tw, "throughput\t%.0f complete orders/s\n", res.PerSecond)
				fmt.Fprintf(tw, "latency\tp50 %.1f ms, p90 %.1f ms, p99 %.1f ms (whole order)\n", res.P50ms, res.P90ms, res.P99ms)
				fmt.Fprintf(tw, "http-01 fetches\t%d\n", res.Validations)
				fmt.Fprintf(tw, "bench client CPU\t%.2f s (same machine: not available to the server)\n", res.ClientCPU)
				if res.ServerCPU >= 0 {
					fmt.Fprintf(tw, "server CPU\t%.2f s, %.0f µs per order, %.0f orders per core-second\n", res.ServerCPU, res.CPUPerOrderUS, res.PerCoreSecond)
				}
				if res.FirstError != "" {
					fmt.Fprintf(tw, "first error\t%s\n", res.FirstError)
				}
			}); err != nil {
				return err
			}
			if res.Errors > 0 {
				return fmt.Errorf("%w: %d of %d orders failed", errRemote, res.Errors, res.Orders)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Profile, "profile", "web", "ACME profile (directory /acme/<profile>/directory)")
	f.IntVar(&o.Orders, "orders", 1000, "number of complete orders")
	f.IntVar(&o.Concurrency, "concurrency", 32, "parallel clients")
	f.StringVar(&o.HTTPListen, "http-listen", "127.0.0.1:5002", "address this process answers http-01 on (the server's --acme-http-port)")
	f.StringVar(&o.NamePattern, "name-pattern", "acme-%d.test", "DNS name pattern with one %d")
	return cmd
}
