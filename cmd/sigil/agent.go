package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sigil-pki/sigil/internal/agent"
	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/store"
)

const defaultAgentState = "/var/lib/sigil-agent"

func newAgentCmd(g *globals) *cobra.Command {
	var (
		configFile, logLevel string
		once                 bool
		cfg                  agent.Config
		cc                   agent.CertConfig
		jitter               float64
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the agent: enrol with a join token, keep certificates renewed, deploy them, react to revocation",
		Long: `sigil agent enrols this machine with a single-use join token (the key is generated here and never
leaves it), pins the server's root by fingerprint, and then renews its certificate over mTLS at a
point of its lifetime, writing the files atomically and running the --on-change hook. It polls the
server every --check-interval: a revoked certificate is re-keyed at once; a disabled machine stops.

Subcommands: status (this machine's state directory); list, show, disable (the server's view).`,
		Example: `  sigil agent --server https://ca.internal:8443 --root-fingerprint <sha256> \
    --join-token <token> --name web-01.prod.internal \
    --cert /etc/ssl/web.crt --key /etc/ssl/web.key --chain /etc/ssl/chain.pem \
    --on-change "systemctl reload nginx" --state /var/lib/sigil-agent
  sigil agent --config /etc/sigil/agent.yaml
  sigil agent --config /etc/sigil/agent.yaml --once`,
		Args: cobra.NoArgs,
		// The agent's --config is its own YAML document (several
		// certificates), not flag values: skip the root's config handling.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if _, err := bindEnv(cmd); err != nil {
				return err
			}
			if g.output != "table" && g.output != "json" {
				return fmt.Errorf("unknown output format %q (use table or json)", g.output)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cfg
			if configFile != "" {
				fc, err := agent.LoadConfig(configFile)
				if err != nil {
					return err
				}
				c = *fc
				f := cmd.Flags()
				if f.Changed("root-fingerprint") {
					c.RootFingerprint = cfg.RootFingerprint
				}
				if f.Changed("state") || c.StateDir == "" {
					c.StateDir = cfg.StateDir
				}
				if f.Changed("check-interval") {
					c.CheckInterval = cfg.CheckInterval
				}
				if f.Changed("renew-at") {
					c.RenewAt = cfg.RenewAt
				}
				if cc.Name != "" {
					if len(c.Certificates) > 0 {
						return errors.New("--name with --config: list the certificates in the config file")
					}
					c.Certificates = []agent.CertConfig{cc}
				}
			} else if cc.Name != "" {
				c.Certificates = []agent.CertConfig{cc}
			}
			if g.server != "" {
				c.Server = g.server
			}
			if cmd.Flags().Changed("jitter") {
				c.Jitter = &jitter
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("invalid --log-level %q", logLevel)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			a, err := agent.New(&c, log)
			if err != nil {
				return err
			}
			return a.Run(cmd.Context(), once)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "agent configuration file (YAML; several certificates)")
	f.StringVar(&cfg.RootFingerprint, "root-fingerprint", "", "SHA-256 of the root certificate (hex, colons optional), as sigil ca fingerprint prints it; needed on first start only")
	f.StringVar(&cfg.StateDir, "state", defaultAgentState, "state directory: pinned root, current key and certificate, status")
	f.DurationVar(&cfg.CheckInterval, "check-interval", 30*time.Second, "how often to ask the server whether the certificate was revoked")
	f.Float64Var(&cfg.RenewAt, "renew-at", 2.0/3, "renew at this fraction of the certificate's lifetime")
	f.Float64Var(&jitter, "jitter", 0.1, "renew earlier by up to this fraction of the lifetime, at random")
	f.BoolVar(&once, "once", false, "enrol or renew if due, then exit; non-zero exit on failure")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&cc.Name, "name", "", "machine name, bound to the join token")
	f.StringSliceVar(&cc.SANs, "san", nil, "extra names to request (must be bound to the join token; repeatable)")
	f.StringVar(&cc.JoinToken, "join-token", "", "single-use join token (first start only)")
	f.StringVar(&cc.JoinTokenFile, "join-token-file", "", "file holding the join token")
	f.StringVar(&cc.Cert, "cert", "", "where to write the certificate (PEM)")
	f.StringVar(&cc.Key, "key", "", "where to write the private key (PEM, 0600)")
	f.StringVar(&cc.Chain, "chain", "", "where to write the intermediate chain (PEM)")
	f.StringVar(&cc.FullChain, "fullchain", "", "where to write the certificate followed by the intermediates (PEM; nginx ssl_certificate)")
	f.StringVar(&cc.OnChange, "on-change", "", "command (sh -c) to run after the files change, e.g. \"systemctl reload nginx\"")
	f.StringVar(&cc.KeyType, "key-type", "ecdsa-p256", "key type: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, ed25519")
	f.BoolVar(&cc.ReuseKey, "reuse-key", false, "keep the key across renewals (default: a new key every time)")
	f.StringVar(&cc.Owner, "owner", "", "owner (user name or uid) of the written files")
	f.StringVar(&cc.Group, "group", "", "group (name or gid) of the written files")
	cmd.AddCommand(newAgentStatusCmd(g), newAgentListCmd(g), newAgentShowCmd(g), newAgentDisableCmd(g))
	return cmd
}

func newAgentStatusCmd(g *globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what this machine's agent holds: certificates, expiry, next renewal, last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := agent.ReadState(dir)
			if err != nil {
				return err
			}
			now := time.Now()
			return g.print(cmd.OutOrStdout(), st, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "server\t%s\nroot sha256\t%s\n\n", st.Server, st.RootFingerprint)
				fmt.Fprintln(tw, "NAME\tSERIAL\tEXPIRES\tNEXT RENEWAL\tRENEWALS\tSTATE\tLAST ERROR")
				for _, c := range st.Certificates {
					state := "ok"
					switch {
					case c.Stopped != "":
						state = "STOPPED: " + c.Stopped
					case c.Serial == "":
						state = "not enrolled"
					case !now.Before(c.NotAfter):
						state = "EXPIRED"
					case c.CertStatus == "revoked" && c.StatusFrom == "ocsp":
						state = "REVOKED (ocsp), re-keying"
					case c.CertStatus == "revoked":
						state = "REVOKED (server), re-keying"
					case c.HookPending:
						state = "hook pending: " + c.HookError
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", c.Name, c.Serial, relTime(c.NotAfter, now), relTime(c.NextRenewal, now), c.Renewals, state, c.LastError)
				}
			})
		},
	}
	cmd.Flags().StringVar(&dir, "state", defaultAgentState, "the agent's state directory")
	return cmd
}

func relTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	if d < 0 {
		return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), -d)
	}
	return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), d)
}

func printMachines(g *globals, cmd *cobra.Command, v any, ms []*store.Machine) error {
	return g.print(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "NAME\tPROFILE\tSTATE\tATTESTATION\tCURRENT SERIAL\tFIRST SEEN\tLAST SEEN")
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Profile, m.State, m.Attestation, m.CurrentSerial.OpenSSL(), fmtTime(m.FirstSeen), fmtTime(m.LastSeen))
		}
	})
}

func newAgentListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the machines enrolled by agents (server side)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var resp struct {
				Items []*store.Machine `json:"items"`
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/agents", nil, &resp); err != nil {
				return err
			}
			return printMachines(g, cmd, resp.Items, resp.Items)
		},
	}
}

func newAgentShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show one enrolled machine (server side)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var m store.Machine
			if err := c.Do(cmd.Context(), "GET", "/api/v1/agents/"+url.PathEscape(args[0]), nil, &m); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), m, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "name\t%s\nprofile\t%s\nnames\t%s\nstate\t%s\nattestation\t%s\njoin token\t%s\ncurrent serial\t%s\nfirst seen\t%s\nlast seen\t%s\ndisabled at\t%s\n",
					m.Name, m.Profile, strings.Join(m.Names, ", "), m.State, m.Attestation, m.JoinTokenID, m.CurrentSerial.OpenSSL(), fmtTime(m.FirstSeen), fmtTime(m.LastSeen), fmtTime(m.DisabledAt))
			})
		},
	}
}

func newAgentDisableCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "disable NAME", Short: "Disable a machine: revoke its certificates and refuse its renewals", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var resp api.DisableResponse
			if err := c.Do(cmd.Context(), "POST", "/api/v1/agents/"+url.PathEscape(args[0])+"/disable", nil, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "machine/%s\tdisabled\t%d certificate(s) revoked\n", resp.Name, len(resp.Revoked))
			})
		},
	}
}

func newJoinTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "join-token", Short: "Manage single-use join tokens for sigil agent enrolment"}
	var req api.JoinTokenRequest
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create a single-use join token bound to names and a profile; printed once",
		Example: "  sigil join-token create --profile web --name web-01.prod.internal --ttl 15m",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Profile == "" || len(req.Names) == 0 {
				return errors.New("--profile and --name are required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var resp api.JoinTokenResponse
			if err := c.Do(cmd.Context(), "POST", "/api/v1/join-tokens", req, &resp); err != nil {
				return err
			}
			if g.output == "json" {
				return g.print(cmd.OutOrStdout(), resp, nil)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "join token %s for %s (profile %s) expires %s; it works once and is shown only now\n",
				resp.ID, strings.Join(resp.Names, ", "), resp.Profile, resp.ExpiresAt.Format(time.RFC3339))
			return nil
		},
	}
	cf := create.Flags()
	cf.StringVar(&req.Profile, "profile", "", "profile the machine's certificates are issued under (required)")
	cf.StringSliceVar(&req.Names, "name", nil, "name the machine may obtain; the first is the machine name (required, repeatable)")
	cf.StringVar(&req.TTL, "ttl", "15m", "how long the token may be used")
	list := &cobra.Command{
		Use: "list", Short: "List join tokens (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var resp struct {
				Items []*store.JoinToken `json:"items"`
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/join-tokens", nil, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp.Items, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tPROFILE\tNAMES\tEXPIRES\tUSED\tREVOKED")
				for _, t := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Profile, strings.Join(t.Names, ","), fmtTime(t.ExpiresAt), fmtTime(t.UsedAt), fmtTime(t.RevokedAt))
				}
			})
		},
	}
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke an unused join token", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "DELETE", "/api/v1/join-tokens/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "join token %s revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
