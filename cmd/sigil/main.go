// Command sigil is Sigil's single binary: the server, and the CLI that talks
// to it. This package only parses flags and wires packages together.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sigil-pki/sigil/internal/client"
)

// Exit codes: 0 ok, 1 usage or local error, 2 server or remote error.
const (
	exitLocal  = 1
	exitRemote = 2
)

var version = "dev"

type globals struct {
	server, token, root, output string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sigil: "+oneLine(err.Error()))
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	var ce *client.Error
	var ue *url.Error // the HTTP client's errors: the server could not be reached
	switch {
	case errors.Is(err, errThreshold):
		return exitThreshold
	case errors.As(err, &ce), errors.As(err, &ue), errors.Is(err, errRemote):
		return exitRemote
	}
	return exitLocal
}

// errThreshold marks a check that found results at or above the caller's
// threshold (sigil findings list --fail-on): exit code 3, for CI gates.
var errThreshold = errors.New("threshold reached")

// exitThreshold is the exit code of errThreshold.
const exitThreshold = 3

// errRemote marks failures that the server reported in a 2xx answer (e.g. a
// broken audit chain).
var errRemote = errors.New("remote check failed")

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "sigil",
		Short:         "Sigil: machine identity lifecycle — internal CA, policy, issuance, revocation, audit",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			fromEnv, err := bindEnv(cmd)
			if err != nil {
				return err
			}
			if f := cmd.Flags().Lookup("config"); f != nil && f.Value.String() != "" {
				if err := applyConfig(cmd, f.Value.String(), fromEnv); err != nil {
					return err
				}
			}
			// Checked before anything is sent: a bad format must not fail
			// after a certificate was issued.
			if g.output != "table" && g.output != "json" {
				return fmt.Errorf("unknown output format %q (use table or json)", g.output)
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "Sigil server URL (env SIGIL_SERVER), e.g. https://127.0.0.1:8443")
	pf.StringVar(&g.token, "token", "", "API token (env SIGIL_TOKEN)")
	pf.StringVar(&g.root, "root", "", "root CA certificate (PEM) to trust for the server (env SIGIL_ROOT)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json (env SIGIL_OUTPUT)")
	// One command per line: each domain adds its own.
	root.AddCommand(
		newServerCmd(),
		newCertCmd(g),
		newProfileCmd(g),
		newTokenCmd(g),
		newAuditCmd(g),
		newCACmd(g),
		newBenchCmd(g),
		newMigrateCmd(),
		newStoreCmd(),
		newScanCmd(g),
		newInventoryCmd(g),
		newACMECmd(g),
		newAgentCmd(g),
		newJoinTokenCmd(g),
		newFindingsCmd(g),
		newReportCmd(g),
		newNotifyCmd(g),
	)
	return root
}

// bindEnv fills flags the user did not set from SIGIL_<FLAG_NAME> (dashes
// become underscores): env < flags. Only the global flags and the server's
// own flags are bound: a SIGIL_NAME or SIGIL_PROFILE meant for one command
// must not silently change what another command does.
func bindEnv(cmd *cobra.Command) (map[string]bool, error) {
	var err error
	fromEnv := map[string]bool{}
	set := func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := "SIGIL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && v != "" {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("invalid %s=%q: %w", name, v, serr)
			}
			fromEnv[f.Name] = true
		}
	}
	if cmd.Name() == "server" || cmd.Name() == "migrate" || cmd.CommandPath() == "sigil ca import" {
		cmd.LocalFlags().VisitAll(set)
	}
	cmd.InheritedFlags().VisitAll(set)
	return fromEnv, err
}

func (g *globals) client() (*client.Client, error) {
	if g.token == "" {
		return nil, errors.New("no API token: set --token or SIGIL_TOKEN")
	}
	return client.New(g.server, g.token, g.root)
}

// print writes v as JSON, or calls table to write a table.
func (g *globals) print(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		table(tw)
		return tw.Flush()
	}
	return fmt.Errorf("unknown output format %q (use table or json)", g.output)
}
