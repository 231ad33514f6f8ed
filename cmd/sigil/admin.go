package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/ca"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/policy"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/server"
)

func newProfileCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "profile", Short: "Manage policy profiles (declarative YAML or JSON)"}
	var file string
	apply := &cobra.Command{
		Use:     "apply -f FILE",
		Short:   "Create or update the profiles of a document; a document with one bad profile changes nothing",
		Example: "  sigil profile apply -f examples/profiles.yaml\n  cat profiles.yaml | sigil profile apply -f -",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if file == "-" {
				data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20+1))
			} else if file != "" {
				data, err = os.ReadFile(file)
			} else {
				return errors.New("-f FILE is required")
			}
			if err != nil {
				return err
			}
			// Validate locally first: a clear message without a round trip.
			if _, err := policy.ParseDocument(data); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var resp struct {
				Profiles []ra.ProfileChange `json:"profiles"`
			}
			if err := c.Do(cmd.Context(), "POST", "/api/v1/profiles", data, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(tw *tabwriter.Writer) {
				for _, p := range resp.Profiles {
					fmt.Fprintf(tw, "profile/%s\t%s\n", p.Name, p.Action)
				}
			})
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "profile document (YAML or JSON), - for stdin")
	list := &cobra.Command{
		Use: "list", Short: "List profiles", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var doc policy.Document
			if err := c.Do(cmd.Context(), "GET", "/api/v1/profiles", nil, &doc); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), doc, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tISSUER\tKEY TYPES\tDEFAULT TTL\tMAX TTL\tDNS")
				for _, p := range doc.Profiles {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, orDefault(p.Issuer), strings.Join(p.KeyTypes, ","), p.DefaultTTL, p.MaxTTL, strings.Join(p.DNS, ","))
				}
			})
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a profile (certificates issued under it are kept)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return c.Do(cmd.Context(), "DELETE", "/api/v1/profiles/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	cmd.AddCommand(apply, list, del)
	return cmd
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens (roles: admin, operator, auditor)"}
	var req api.TokenRequest
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create an API token; its secret is printed once",
		Example: "  sigil token create --role operator --ttl 720h --name ci --profile web",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := identity.ParseRole(req.Role); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var resp api.TokenResponse
			if err := c.Do(cmd.Context(), "POST", "/api/v1/tokens", req, &resp); err != nil {
				return err
			}
			if g.output == "json" {
				return g.print(cmd.OutOrStdout(), resp, nil)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Secret)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s (role %s) created; the secret above is shown only once\n", resp.ID, resp.Role)
			return nil
		},
	}
	cf := create.Flags()
	cf.StringVar(&req.Role, "role", "", "admin, operator or auditor (required)")
	cf.StringVar(&req.TTL, "ttl", "", "lifetime, e.g. 720h or 30d (default: no expiry)")
	cf.StringVar(&req.Name, "name", "", "a name to recognise the token by")
	cf.StringSliceVar(&req.Profiles, "profile", nil, "restrict to these profiles (repeatable)")
	list := &cobra.Command{
		Use: "list", Short: "List tokens (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var resp struct {
				Items []*identity.Token `json:"items"`
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/tokens", nil, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp.Items, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tNAME\tROLE\tPROFILES\tEXPIRES\tREVOKED")
				for _, t := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, strings.Join(t.Profiles, ","), fmtTime(t.ExpiresAt), fmtTime(t.RevokedAt))
				}
			})
		},
	}
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a token at once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return c.Do(cmd.Context(), "DELETE", "/api/v1/tokens/"+url.PathEscape(args[0]), nil, nil)
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify the hash-chained audit log"}
	verify := &cobra.Command{
		Use: "verify", Short: "Check the audit hash chain end to end; names the first bad event", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var v api.VerifyResponse
			if err := c.Do(cmd.Context(), "GET", "/api/v1/audit/verify", nil, &v); err != nil {
				return err
			}
			if g.output == "json" {
				if err := g.print(cmd.OutOrStdout(), v, nil); err != nil {
					return err
				}
			} else if v.OK {
				fmt.Fprintf(cmd.OutOrStdout(), "audit chain OK: %d events verified\n", v.Events)
			}
			if !v.OK {
				return fmt.Errorf("%w: %s", errRemote, v.Error)
			}
			return nil
		},
	}
	var actor, action, since, until string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List audit events", Args: cobra.NoArgs,
		Example: "  sigil audit list --action cert. --since 24h\n  sigil audit list --actor system -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"actor": actor, "action": action, "since": since, "until": until} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var resp struct {
				Items []*audit.Event `json:"items"`
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/audit?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp.Items, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tOBJECT\tRESULT")
				for _, e := range resp.Items {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format(time.RFC3339), e.Actor, e.Action, e.Object, e.Result)
				}
			})
		},
	}
	lf := list.Flags()
	lf.StringVar(&actor, "actor", "", "only this actor (e.g. token:<id>, system, anonymous)")
	lf.StringVar(&action, "action", "", "only this action, or a prefix ending in '.' (e.g. cert.)")
	lf.StringVar(&since, "since", "", "from this time (RFC 3339) or this long ago (24h, 7d)")
	lf.StringVar(&until, "until", "", "up to this time (RFC 3339) or this long ago")
	lf.IntVar(&limit, "limit", 0, "at most this many events (default 1000)")
	cmd.AddCommand(verify, list, newAuditExportCmd(g))
	return cmd
}

func newCACmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "Inspect the certificate authorities"}
	list := &cobra.Command{
		Use: "list", Short: "List issuers (root and intermediates)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var resp struct {
				Items []api.IssuerView `json:"items"`
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/ca", nil, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp.Items, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tSUBJECT\tKEY\tNOT AFTER\tSHA256")
				for _, i := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", i.ID, i.Subject, i.KeyType, i.NotAfter.Format(time.RFC3339), i.SHA256)
				}
			})
		},
	}
	fingerprint := &cobra.Command{
		Use:   "fingerprint [ROOT.pem]",
		Short: "Print the SHA-256 fingerprint of the root certificate (as openssl x509 -fingerprint -sha256 does)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := g.root
			if len(args) == 1 {
				file = args[0]
			}
			if file == "" {
				return errors.New("give the root certificate file, or set --root / SIGIL_ROOT")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			certs, err := ca.ParseCertificatesPEM(data)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(certs[0].Raw)
			hexs := make([]string, len(sum))
			for i, b := range sum {
				hexs[i] = fmt.Sprintf("%02X", b)
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(hexs, ":"))
			return nil
		},
	}
	cmd.AddCommand(list, fingerprint, newCAImportCmd())
	return cmd
}

func newCAImportCmd() *cobra.Command {
	var cfg server.Config
	var certFile, keyFile, chainFile string
	req := server.ImportRequest{}
	cmd := &cobra.Command{
		Use:   "import --data DIR --id NAME --cert CA.pem --key CA.key",
		Short: "Add an existing CA (certificate and key) as an issuer; the key is sealed under the KEK. Restart the server to use it",
		Example: `  sigil ca import --data ./sigil-data --id corp-issuing --cert corp-int.pem --key corp-int.key --chain corp-root.pem
  sigil ca import --data ./sigil-data --id corp-issuing --cert corp-int.pem --key corp-int.key --default`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if certFile == "" || keyFile == "" || req.ID == "" {
				return errors.New("--id, --cert and --key are required")
			}
			if req.CertPEM, err = os.ReadFile(certFile); err != nil {
				return err
			}
			if req.KeyPEM, err = os.ReadFile(keyFile); err != nil {
				return err
			}
			if chainFile != "" {
				if req.ChainPEM, err = os.ReadFile(chainFile); err != nil {
					return err
				}
			}
			req.KeyPassword = []byte(os.Getenv("SIGIL_CA_KEY_PASSWORD"))
			cfg.KEK = os.Getenv("SIGIL_KEK")
			cfg.KEKPassphrase = os.Getenv("SIGIL_KEK_PASSPHRASE")
			iss, err := server.ImportCA(cmd.Context(), cfg, req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported issuer %s (parent %q, default %t); restart the server to use it\n", iss.ID, iss.ParentID, iss.IsDefault)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data", "./sigil-data", "the server's data directory")
	f.StringVar(&cfg.DB, "db", "", "the server's store, as given to sigil server --db")
	f.StringVar(&cfg.KEKFile, "kek-file", "", "key-encryption key file (or SIGIL_KEK, SIGIL_KEK_PASSPHRASE; default <data>/kek.key if present)")
	f.StringVar(&req.ID, "id", "", "issuer id, used in URLs (/crl/<id>.crl) and profiles (issuer: <id>)")
	f.StringVar(&certFile, "cert", "", "CA certificate (PEM)")
	f.StringVar(&keyFile, "key", "", "CA private key (PEM; password in SIGIL_CA_KEY_PASSWORD if encrypted)")
	f.StringVar(&chainFile, "chain", "", "certificates above the CA up to its root (PEM), if not already issuers here")
	f.BoolVar(&req.MakeDefault, "default", false, "make it the default issuer")
	return cmd
}
