package main

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/keys"
)

func newCertCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "Issue, list, show and revoke certificates"}
	cmd.AddCommand(newCertIssueCmd(g), newCertListCmd(g), newCertShowCmd(g), newCertRevokeCmd(g))
	return cmd
}

func newCertIssueCmd(g *globals) *cobra.Command {
	var (
		req                         api.IssueRequest
		csrFile, out, chain, keyOut string
		names, labels               []string
		keyType                     string
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a certificate for a CSR, or for a key generated here (never sent)",
		Example: `  sigil cert issue --profile web --csr req.pem --out crt.pem --chain chain.pem
  sigil cert issue --profile web --name api.prod.internal --key-out key.pem --out crt.pem --chain chain.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Profile == "" {
				return errors.New("--profile is required")
			}
			var err error
			if req.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			var keyPEM []byte
			switch {
			case csrFile != "" && len(names) > 0:
				return errors.New("use either --csr or --name, not both")
			case csrFile != "":
				b, err := os.ReadFile(csrFile)
				if err != nil {
					return err
				}
				req.CSR = string(b)
			case len(names) > 0:
				if keyOut == "" {
					return errors.New("--key-out is required with --name: the private key is generated here and written there")
				}
				csrPEM, kp, err := makeCSR(keyType, names)
				if err != nil {
					return err
				}
				req.CSR, keyPEM = string(csrPEM), kp
			default:
				return errors.New("give --csr FILE, or --name NAME (repeatable) with --key-out FILE")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var resp api.IssueResponse
			if err := c.Do(cmd.Context(), "POST", "/api/v1/certificates", req, &resp); err != nil {
				return err
			}
			if keyPEM != nil {
				if err := keys.WriteFileAtomic(keyOut, keyPEM, 0o600); err != nil {
					return fmt.Errorf("writing the private key: %w", err)
				}
			}
			if out != "" {
				if err := keys.WriteFileAtomic(out, []byte(resp.PEM), 0o644); err != nil {
					return err
				}
			}
			if chain != "" {
				if err := keys.WriteFileAtomic(chain, []byte(resp.Chain), 0o644); err != nil {
					return err
				}
			}
			if out == "" && g.output != "json" {
				fmt.Fprint(cmd.OutOrStdout(), resp.PEM)
				return nil
			}
			return g.print(cmd.OutOrStdout(), resp, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "issued\t%s\nnames\t%s\nnot after\t%s\n", resp.SerialHex, strings.Join(allNames(resp.Certificate), ", "), resp.NotAfter.Format(time.RFC3339))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Profile, "profile", "", "profile to issue under (required)")
	f.StringVar(&csrFile, "csr", "", "PEM CSR to sign (made by anyone, e.g. openssl req)")
	f.StringSliceVar(&names, "name", nil, "DNS name, IP, URI or e-mail to certify; a key is generated locally (repeatable)")
	f.StringVar(&keyType, "key-type", identity.KeyECDSAP256, "key type with --name: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, ed25519")
	f.StringVar(&keyOut, "key-out", "", "where to write the generated private key (0600)")
	f.StringVar(&out, "out", "", "where to write the certificate (PEM); default stdout")
	f.StringVar(&chain, "chain", "", "where to write the intermediate chain (PEM)")
	f.StringVar(&req.TTL, "ttl", "", "validity, e.g. 24h or 30d (default: the profile's)")
	f.StringVar(&req.Owner, "owner", "", "owner recorded with the certificate")
	f.StringSliceVar(&labels, "label", nil, "label key=value (repeatable)")
	return cmd
}

// makeCSR generates a key and a CSR whose SANs are sorted by type.
func makeCSR(keyType string, names []string) (csrPEM, keyPEM []byte, err error) {
	key, err := keys.GenerateKey(keyType)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.CertificateRequest{}
	for _, n := range names {
		switch {
		case net.ParseIP(n) != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(n))
		case strings.Contains(n, "://"):
			u, err := url.Parse(n)
			if err != nil {
				return nil, nil, fmt.Errorf("invalid URI %q: %w", n, err)
			}
			tmpl.URIs = append(tmpl.URIs, u)
		case strings.Contains(n, "@"):
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, n)
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, n)
			if tmpl.Subject.CommonName == "" && len(n) <= 64 {
				tmpl.Subject = pkix.Name{CommonName: n}
			}
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating CSR: %w", err)
	}
	if keyPEM, err = keys.MarshalPrivateKeyPEM(key); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), keyPEM, nil
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid label %q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

func allNames(c *identity.Certificate) []string {
	var out []string
	out = append(out, c.DNSNames...)
	out = append(out, c.IPAddresses...)
	out = append(out, c.URIs...)
	return append(out, c.Emails...)
}

func newCertListCmd(g *globals) *cobra.Command {
	var expiring, status, profile string
	var limit int
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List certificates",
		Example: "  sigil cert list --expiring 30d -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"expiring": expiring, "status": status, "profile": profile} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", fmt.Sprint(limit))
			}
			var resp struct {
				Items []api.CertView `json:"items"`
			}
			if err := c.Do(cmd.Context(), "GET", "/api/v1/certificates?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp.Items, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "SERIAL\tSTATE\tPROFILE\tNAMES\tNOT AFTER")
				for _, v := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.SerialHex, v.State, v.Profile, strings.Join(allNames(v.Certificate), ","), v.NotAfter.Format(time.RFC3339))
				}
			})
		},
	}
	cmd.Flags().StringVar(&expiring, "expiring", "", "only valid certificates expiring within this window, e.g. 30d")
	cmd.Flags().StringVar(&status, "status", "", "issued, revoked, planned, expired, valid or all")
	cmd.Flags().StringVar(&profile, "profile", "", "only this profile")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many")
	return cmd
}

func newCertShowCmd(g *globals) *cobra.Command {
	var pemOut bool
	cmd := &cobra.Command{
		Use:     "show SERIAL",
		Short:   "Show a certificate (serial in hex as openssl prints it, with or without colons)",
		Example: "  sigil cert show 3A:F0:...\n  sigil cert show 3af0... --pem > crt.pem",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, err := identity.ParseSerial(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var v api.CertView
			if err := c.Do(cmd.Context(), "GET", "/api/v1/certificates/"+string(serial), nil, &v); err != nil {
				return err
			}
			if pemOut {
				fmt.Fprint(cmd.OutOrStdout(), v.PEM)
				return nil
			}
			return g.print(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
				r := v.Certificate
				rows := [][2]string{
					{"serial", v.SerialHex}, {"state", v.State}, {"profile", r.Profile}, {"issuer", r.IssuerID},
					{"common name", r.CommonName}, {"names", strings.Join(allNames(r), ", ")},
					{"key", r.KeyType}, {"spki sha256", r.SPKIFingerprint}, {"sha256", r.Fingerprint},
					{"not before", r.NotBefore.Format(time.RFC3339)}, {"not after", r.NotAfter.Format(time.RFC3339)},
					{"requester", r.Requester}, {"owner", r.Owner},
				}
				if !r.RevokedAt.IsZero() {
					rows = append(rows, [2]string{"revoked", r.RevokedAt.Format(time.RFC3339) + " (" + r.RevocationReason.String() + ")"})
				}
				for _, row := range rows {
					fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
				}
			})
		},
	}
	cmd.Flags().BoolVar(&pemOut, "pem", false, "print the certificate PEM only")
	return cmd
}

func newCertRevokeCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     "revoke SERIAL",
		Short:   "Revoke a certificate (CRL and OCSP reflect it at once)",
		Example: "  sigil cert revoke 3A:F0:... --reason keyCompromise",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, err := identity.ParseSerial(args[0])
			if err != nil {
				return err
			}
			if _, err := identity.ParseReason(reason); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var v api.CertView
			if err := c.Do(cmd.Context(), "POST", "/api/v1/certificates/"+string(serial)+"/revoke", api.RevokeRequest{Reason: reason}, &v); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "revoked\t%s\nreason\t%s\nat\t%s\n", v.SerialHex, v.RevocationReason, v.RevokedAt.Format(time.RFC3339))
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "unspecified", "RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, affiliationChanged, privilegeWithdrawn, cACompromise, unspecified")
	return cmd
}
