package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sigil-pki/sigil/internal/discovery"
	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/store"
)

func newInventoryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "inventory", Short: "Query and curate the inventory of machine identities"}
	cmd.AddCommand(newInventoryListCmd(g), newInventoryShowCmd(g), newInventorySetOwnerCmd(g), newInventoryImportCmd(g))
	return cmd
}

func newInventoryListCmd(g *globals) *cobra.Command {
	var (
		kind, source, owner, label, issuer, keyAlg, location, spki string
		expiring, seenWithin, after                                string
		issuerUnknown, expired, all                                bool
		limit                                                      int
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List identities (filters combine with AND)",
		Example: `  sigil inventory list --kind x509 --issuer-unknown --seen-within 7d
  sigil inventory list --expiring 30d --owner team-payments
  sigil inventory list --location 10.20.0.5:443
  sigil inventory list --location /etc/ssl --all -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"kind": kind, "source": source, "owner": owner, "label": label,
				"issuer": issuer, "key_algorithm": keyAlg, "location": location, "spki": spki, "expiring": expiring,
				"seen_within": seenWithin, "after": after} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if issuerUnknown {
				q.Set("issuer_unknown", "true")
			}
			if expired {
				q.Set("expired", "true")
			}
			q.Set("limit", strconv.Itoa(limit))
			c, err := g.client()
			if err != nil {
				return err
			}
			var items []inventory.Identity
			next := ""
			for {
				p, err := c.ListInventory(cmd.Context(), q)
				if err != nil {
					return err
				}
				items, next = append(items, p.Items...), p.Next
				if !all || next == "" {
					break
				}
				q.Set("after", next)
			}
			return g.print(cmd.OutOrStdout(), map[string]any{"items": items, "count": len(items), "next": next}, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "FINGERPRINT\tKIND\tSOURCE\tSUBJECT\tISSUER\tNOT AFTER\tKEY\tOWNER\tLAST SEEN")
				for _, id := range items {
					what := id.Subject
					if id.Kind == store.KindSecret {
						what = id.RuleID
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", short(id.Fingerprint), id.Kind, id.Source,
						clipCell(what, 40), clipCell(id.Issuer, 40), date(id.NotAfter), keyDesc(id), clipCell(id.Owner, 20),
						id.LastSeen.UTC().Format(time.RFC3339))
				}
				if next != "" {
					_ = tw.Flush()
					fmt.Fprintf(cmd.OutOrStdout(), "more: --after %s (or --all)\n", next)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "x509, ssh-key, ssh-cert, private-key or secret")
	f.StringVar(&source, "source", "", "issued, discovered or imported")
	f.StringVar(&owner, "owner", "", "owner")
	f.StringVar(&label, "label", "", "label key or key=value")
	f.StringVar(&issuer, "issuer", "", "exact issuer DN")
	f.BoolVar(&issuerUnknown, "issuer-unknown", false, "certificates neither issued by Sigil nor from an imported CA")
	f.StringVar(&keyAlg, "key-algorithm", "", "RSA, ECDSA, Ed25519…")
	f.StringVar(&location, "location", "", "host, host:port, or a directory (/etc/ssl)")
	f.StringVar(&spki, "spki", "", "SPKI SHA-256: every identity using that public key")
	f.StringVar(&expiring, "expiring", "", "still valid and expiring within, e.g. 30d")
	f.BoolVar(&expired, "expired", false, "already expired")
	f.StringVar(&seenWithin, "seen-within", "", "last seen within, e.g. 7d")
	f.StringVar(&after, "after", "", "page cursor (the 'more:' fingerprint of the previous page)")
	f.IntVar(&limit, "limit", 100, "page size (max 1000)")
	f.BoolVar(&all, "all", false, "follow every page")
	return cmd
}

func keyDesc(id inventory.Identity) string {
	if id.KeyAlgorithm == "" {
		return "-"
	}
	if id.KeySize > 0 {
		return fmt.Sprintf("%s %d", id.KeyAlgorithm, id.KeySize)
	}
	return id.KeyAlgorithm
}

// fingerprintArg accepts hex (any case, colons) or "SHA256:…" and returns hex.
func fingerprintArg(s string) (string, error) {
	fp := inventory.NormalizeFingerprint(s)
	if fp == "" {
		return "", fmt.Errorf("%q is not a SHA-256 fingerprint (hex, or SHA256:… for SSH keys)", s)
	}
	return fp, nil
}

func newInventoryShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show FINGERPRINT",
		Short: "Show an identity and every place it was seen",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fp, err := fingerprintArg(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			id, err := c.GetInventory(cmd.Context(), fp)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), id, func(tw *tabwriter.Writer) { showIdentity(tw, id) })
		},
	}
}

func showIdentity(tw *tabwriter.Writer, id *inventory.Identity) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Fingerprint", id.Fingerprint)
	row("SSH fingerprint", id.SSHFingerprint)
	row("Kind", string(id.Kind))
	origin := "foreign"
	if id.Source == store.SourceIssued {
		origin = "issued by this Sigil (serial " + id.IssuedSerial + ")"
	}
	row("Source", string(id.Source)+" — "+origin)
	row("Subject", id.Subject)
	row("Issuer", id.Issuer)
	row("SANs", strings.Join(id.SANs, ", "))
	row("Serial", id.Serial)
	if !id.NotAfter.IsZero() {
		row("Validity", id.NotBefore.UTC().Format(time.RFC3339)+" to "+id.NotAfter.UTC().Format(time.RFC3339))
	}
	if id.IsCA {
		row("CA", "yes")
	}
	row("Signature", id.SignatureAlg)
	row("Key", keyDesc(*id))
	row("SPKI SHA-256", id.SPKISHA256)
	row("Rule", id.RuleID)
	row("Owner", id.Owner)
	var labels []string
	for k, v := range id.Labels {
		labels = append(labels, k+"="+v)
	}
	row("Labels", strings.Join(labels, ", "))
	row("First seen", id.FirstSeen.UTC().Format(time.RFC3339))
	row("Last seen", id.LastSeen.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "Locations:\t%d\n", len(id.Locations))
	_ = tw.Flush()
	if len(id.Locations) > 0 {
		fmt.Fprintln(tw, "\n  WHERE\tKIND\tDETAIL\tFIRST SEEN\tLAST SEEN")
		for _, l := range id.Locations {
			detail := l.Detail
			if l.Kind == store.LocationNet {
				detail = strings.TrimSpace(fmt.Sprintf("%s %s chain#%d", l.TLSVersion, l.CipherSuite, l.ChainIndex))
			} else if l.FileOwner != "" {
				detail = fmt.Sprintf("%s (mode %04o, owner %s)", l.Detail, l.FileMode, l.FileOwner)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", l.String(), l.Kind, detail,
				l.FirstSeen.UTC().Format(time.RFC3339), l.LastSeen.UTC().Format(time.RFC3339))
		}
	}
}

func newInventorySetOwnerCmd(g *globals) *cobra.Command {
	var (
		owner  string
		labels []string
	)
	cmd := &cobra.Command{
		Use:     "set-owner FINGERPRINT",
		Short:   "Assign an owner and labels (key=value; key= removes a label)",
		Example: `  sigil inventory set-owner 3f9a… --owner team-payments --label env=prod`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fp, err := fingerprintArg(args[0])
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("owner") && len(labels) == 0 {
				return errors.New("give --owner and/or --label")
			}
			ls := map[string]string{}
			for _, kv := range labels {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("invalid label %q: want key=value (key= removes it)", kv)
				}
				ls[k] = v
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("owner") {
				cur, err := c.GetInventory(cmd.Context(), fp)
				if err != nil {
					return err
				}
				owner = cur.Owner
			}
			id, err := c.SetInventoryOwner(cmd.Context(), fp, owner, ls)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), id, func(tw *tabwriter.Writer) { showIdentity(tw, id) })
		},
	}
	cmd.Flags().StringVar(&owner, "owner", "", "owner (team, person, service)")
	cmd.Flags().StringSliceVar(&labels, "label", nil, "label key=value (repeatable)")
	return cmd
}

func newInventoryImportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE|DIR...",
		Short: "Import certificates from other CAs (PEM bundles, DER files, directories) as source imported",
		Example: `  sigil inventory import partner-ca-bundle.pem
  sigil inventory import /etc/ssl/vendor-certs/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := hostname()
			col := inventory.NewCollector()
			for _, root := range args {
				err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					if !d.Type().IsRegular() {
						return nil
					}
					data, err := os.ReadFile(path)
					if err != nil {
						return err
					}
					abs, _ := filepath.Abs(path)
					found, errs := discovery.ParseFile(path, data, discovery.ParseOptions{})
					for _, e := range errs {
						return fmt.Errorf("%s: %w", path, e)
					}
					for _, fd := range found {
						if fd.Identity.Kind != store.KindX509 {
							continue // certificates only: keys are never imported
						}
						col.Add(fd.Identity, inventory.Location{Kind: store.LocationFS, Host: host, Path: abs,
							ChainIndex: fd.Index, Detail: "imported"})
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			rep := col.Report("import", host)
			if len(rep.Identities) == 0 {
				return errors.New("no certificate found")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			sum, err := c.ImportInventory(cmd.Context(), rep)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), sum, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "imported %d certificates (%d new, %d already issued by Sigil)\n", sum.Identities, sum.NewIdentities, sum.Issued)
			})
		},
	}
}
