package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/sigil-pki/sigil/internal/server"
)

func newServerCmd() *cobra.Command {
	var cfg server.Config
	var logLevel string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Sigil control plane (API over HTTPS; CRL, OCSP and CA certificates over HTTP)",
		Example: `  sigil server --dev --data ./sigil-data
  SIGIL_KEK_FILE=/etc/sigil/kek.key sigil server --data /var/lib/sigil --listen 0.0.0.0:8443 --http-listen 0.0.0.0:8080 --public-url http://ca.internal:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("invalid --log-level %q", logLevel)
			}
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			cfg.KEK = os.Getenv("SIGIL_KEK")
			cfg.KEKPassphrase = os.Getenv("SIGIL_KEK_PASSPHRASE")
			if cfg.DataDir == "" {
				cfg.DataDir = "/var/lib/sigil"
				if cfg.Dev {
					cfg.DataDir = "./sigil-data"
				}
			}
			// Issuance allocates much short-lived garbage; a larger heap
			// target costs a few MB and saves ~7% CPU per certificate
			// (docs/benchmarks.md). GOGC set by the operator wins.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(200)
			}
			s, err := server.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			s.Banner(cmd.OutOrStdout())
			return s.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.String("config", "", "YAML file of flag values (keys are these flag names); flags and SIGIL_* variables win (env SIGIL_CONFIG)")
	f.BoolVar(&cfg.Dev, "dev", false, "local zero-setup instance: creates the data directory and keeps the key-encryption key in it")
	f.StringVar(&cfg.DataDir, "data", "", "data directory (default ./sigil-data with --dev, else /var/lib/sigil)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8443", "HTTPS listen address (API)")
	f.StringVar(&cfg.HTTPListen, "http-listen", "127.0.0.1:8080", "plain HTTP listen address (CRL, OCSP, CA certificates)")
	f.StringVar(&cfg.PublicURL, "public-url", "", "base URL of the HTTP listener as relying parties reach it, put in certificates (default http://<http-listen>)")
	f.StringVar(&cfg.DB, "db", "", "store: empty for SQLite in the data directory, sqlite:PATH, or postgres://user@host/db (env SIGIL_DB)")
	f.StringVar(&cfg.KEKFile, "kek-file", "", "file holding the 32-byte key-encryption key for CA keys (or SIGIL_KEK, SIGIL_KEK_PASSPHRASE)")
	f.StringVar(&cfg.CAKeyType, "ca-key-type", "ecdsa-p256", "key type of a new CA: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, ed25519")
	f.StringVar(&cfg.CAName, "ca-name", "Sigil", "organisation name in a new CA's certificates")
	f.StringSliceVar(&cfg.TLSNames, "tls-name", nil, "extra DNS name or IP for the server's own TLS certificate (repeatable)")
	f.StringVar(&cfg.PprofListen, "pprof-listen", "", "serve Go profiling (net/http/pprof) on this address, e.g. 127.0.0.1:6060; off by default")
	f.DurationVar(&cfg.BackgroundInterval, "background-interval", time.Minute, "how often the background-job leader refreshes CRLs and each server checks its TLS certificate")
	f.StringSliceVar(&cfg.ACME.Resolve, "acme-resolve", nil, "ACME validation: resolve NAME to IP instead of DNS, NAME=IP (repeatable; labs and tests)")
	f.StringVar(&cfg.ACME.DNSResolver, "acme-dns-resolver", "", "ACME validation: DNS server (host[:port]) for lookups and dns-01 (default: the system resolver)")
	f.IntVar(&cfg.ACME.HTTPPort, "acme-http-port", 80, "ACME validation: port of http-01 requests")
	f.IntVar(&cfg.ACME.TLSPort, "acme-tls-port", 443, "ACME validation: port of tls-alpn-01 connections")
	f.IntVar(&cfg.ACME.OrdersPerAccount, "acme-orders-per-account", 1000, "ACME rate limit: new orders per account per --acme-rate-window (0: none)")
	f.IntVar(&cfg.ACME.OrdersPerName, "acme-orders-per-name", 100, "ACME rate limit: new orders per DNS name or IP address per --acme-rate-window, across replicas (0: none)")
	f.DurationVar(&cfg.ACME.RateWindow, "acme-rate-window", time.Hour, "ACME rate limit window")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	addMonitorFlags(f, &cfg.Monitor) // monitor.go
	return cmd
}

func newMigrateCmd() *cobra.Command {
	var cfg server.Config
	cmd := &cobra.Command{
		Use:     "migrate",
		Short:   "Apply pending schema migrations to the store and exit (servers also do it at start, under a lock)",
		Example: "  sigil migrate --db postgres://sigil@db.internal/sigil?sslmode=verify-full\n  sigil migrate --data ./sigil-data",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := server.Migrate(cmd.Context(), cfg); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "schema up to date")
			return nil
		},
	}
	cmd.Flags().StringVar(&cfg.DB, "db", "", "store: sqlite:PATH or postgres://... (default: SQLite in --data)")
	cmd.Flags().StringVar(&cfg.DataDir, "data", "./sigil-data", "data directory holding sigil.db when --db is not given")
	return cmd
}
