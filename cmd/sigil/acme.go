package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sigil-pki/sigil/internal/api"
)

func newACMECmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "acme", Short: "Serve policy profiles over ACME (RFC 8555) and manage External Account Binding keys"}
	setProfile := func(enable bool) *cobra.Command {
		var profile string
		var eab bool
		use, short := "disable --profile NAME", "Stop serving a profile's ACME directory (accounts and orders are kept)"
		if enable {
			use, short = "enable --profile NAME [--eab-required]", "Serve a profile at https://HOST:PORT/acme/<profile>/directory"
		}
		c := &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			Example: "  sigil acme enable --profile web --eab-required\n  sigil acme disable --profile web",
			RunE: func(cmd *cobra.Command, args []string) error {
				if profile == "" {
					return errors.New("--profile is required")
				}
				c, err := g.client()
				if err != nil {
					return err
				}
				var out api.ACMEProfileView
				body := map[string]bool{"enabled": enable, "eab_required": eab}
				if err := c.Do(cmd.Context(), "PUT", "/api/v1/acme/profiles/"+url.PathEscape(profile), body, &out); err != nil {
					return err
				}
				return g.print(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
					if out.Enabled {
						fmt.Fprintf(tw, "ACME enabled for profile %s (EAB required: %v)\ndirectory: %s/acme/%s/directory\n", out.Profile, out.EABRequired, strings.TrimSuffix(c.BaseURL, "/"), out.Profile)
					} else {
						fmt.Fprintf(tw, "ACME disabled for profile %s\n", out.Profile)
					}
				})
			},
		}
		c.Flags().StringVar(&profile, "profile", "", "policy profile")
		if enable {
			c.Flags().BoolVar(&eab, "eab-required", false, "require an External Account Binding key (sigil acme eab create) for new accounts")
		}
		return c
	}
	list := &cobra.Command{
		Use: "list", Short: "List profiles with ACME settings", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var out []api.ACMEProfileView
			if err := c.Do(cmd.Context(), "GET", "/api/v1/acme/profiles", nil, &out); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "PROFILE\tENABLED\tEAB REQUIRED\tDIRECTORY")
				for _, p := range out {
					fmt.Fprintf(tw, "%s\t%v\t%v\t%s/acme/%s/directory\n", p.Profile, p.Enabled, p.EABRequired, strings.TrimSuffix(c.BaseURL, "/"), p.Profile)
				}
			})
		},
	}
	renewEarly := &cobra.Command{
		Use: "renew-early SERIAL...", Short: "Ask ACME clients to renew certificates now: their ARI renewal window opens at once", Args: cobra.MinimumNArgs(1),
		Example: "  sigil acme renew-early 3f2a9c...  # clients polling renewal info (certbot, cert-manager, lego) renew at their next check",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var out struct {
				Marked int `json:"marked"`
			}
			if err := c.Do(cmd.Context(), "POST", "/api/v1/acme/renew-early", map[string][]string{"serials": args}, &out); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "%d certificate(s) marked for early renewal\n", out.Marked)
			})
		},
	}
	cmd.AddCommand(setProfile(true), setProfile(false), list, renewEarly, newEABCmd(g))
	return cmd
}

func newEABCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "eab", Short: "External Account Binding keys: which ACME clients may create accounts, and for which owner"}
	var profile, owner string
	create := &cobra.Command{
		Use: "create --profile NAME [--owner OWNER]", Short: "Create a key; its HMAC is shown once", Args: cobra.NoArgs,
		Example: "  sigil acme eab create --profile web --owner team-a\n  certbot ... --eab-kid KID --eab-hmac-key HMAC",
		RunE: func(cmd *cobra.Command, args []string) error {
			if profile == "" {
				return errors.New("--profile is required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var out api.EABKeyView
			if err := c.Do(cmd.Context(), "POST", "/api/v1/acme/eab", map[string]string{"profile": profile, "owner": owner}, &out); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "kid:\t%s\nhmac key:\t%s\nprofile:\t%s\nowner:\t%s\n", out.KID, out.HMACKey, out.Profile, out.Owner)
				fmt.Fprintln(tw, "The HMAC key is not shown again.")
			})
		},
	}
	create.Flags().StringVar(&profile, "profile", "", "profile the key's accounts use")
	create.Flags().StringVar(&owner, "owner", "", "owner recorded on the certificates of the bound account")
	var listProfile string
	list := &cobra.Command{
		Use: "list [--profile NAME]", Short: "List EAB keys (never their HMAC)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var out []api.EABKeyView
			if err := c.Do(cmd.Context(), "GET", "/api/v1/acme/eab?profile="+url.QueryEscape(listProfile), nil, &out); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), out, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "KID\tPROFILE\tOWNER\tCREATED\tSTATE\tACCOUNT")
				for _, k := range out {
					state := "unused"
					switch {
					case !k.RevokedAt.IsZero():
						state = "revoked"
					case k.AccountID != "":
						state = "bound"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Profile, k.Owner, k.CreatedAt.Format(time.RFC3339), state, k.AccountID)
				}
			})
		},
	}
	list.Flags().StringVar(&listProfile, "profile", "", "only this profile's keys")
	revoke := &cobra.Command{
		Use: "revoke KID", Short: "Revoke a key: it can bind no new account (a bound account keeps working)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "DELETE", "/api/v1/acme/eab/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "EAB key %s revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
