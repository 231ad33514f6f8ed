package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sigil-pki/sigil/internal/keys"
)

// Config is the agent's configuration (flags, or agent.yaml).
type Config struct {
	Server          string `yaml:"server"`
	RootFingerprint string `yaml:"root-fingerprint"`
	StateDir        string `yaml:"state"`
	// CheckInterval is how often the agent asks the server whether its
	// certificates are still good (revocation response time); default 30s.
	CheckInterval time.Duration `yaml:"check-interval"`
	// RenewAt is the fraction of the lifetime at which to renew (default
	// 2/3); Jitter moves it earlier by up to that fraction (default 0.1).
	RenewAt      float64      `yaml:"renew-at"`
	Jitter       *float64     `yaml:"jitter"`
	Certificates []CertConfig `yaml:"certificates"`
}

// CertConfig is one certificate the agent keeps.
type CertConfig struct {
	Name          string   `yaml:"name"` // the machine name bound to the join token
	SANs          []string `yaml:"sans"` // extra bound names to request
	JoinToken     string   `yaml:"join-token"`
	JoinTokenFile string   `yaml:"join-token-file"`
	Cert          string   `yaml:"cert"`
	Key           string   `yaml:"key"`
	Chain         string   `yaml:"chain"`
	// FullChain gets the certificate followed by the intermediates in one
	// file: what nginx's ssl_certificate wants.
	FullChain string `yaml:"fullchain"`
	OnChange  string `yaml:"on-change"`
	KeyType   string `yaml:"key-type"`
	ReuseKey  bool   `yaml:"reuse-key"`
	Owner     string `yaml:"owner"`
	Group     string `yaml:"group"`
}

// LoadConfig reads an agent.yaml strictly: unknown keys are errors.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("config %s is over 1 MiB", path)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// Validate fills defaults and checks the configuration up front.
func (c *Config) Validate() error {
	if c.Server == "" {
		return errors.New("no server: set --server (https://host:port)")
	}
	if u, err := url.Parse(c.Server); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("invalid server URL %q: want https://host:port", c.Server)
	}
	if c.StateDir == "" {
		return errors.New("no state directory: set --state (e.g. /var/lib/sigil-agent)")
	}
	if c.RootFingerprint != "" {
		if _, err := ParseFingerprint(c.RootFingerprint); err != nil {
			return err
		}
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = 30 * time.Second
	}
	if c.CheckInterval < time.Second {
		return fmt.Errorf("check-interval %s is under 1s", c.CheckInterval)
	}
	if c.RenewAt == 0 {
		c.RenewAt = 2.0 / 3
	}
	if c.RenewAt < 0.1 || c.RenewAt > 0.95 {
		return fmt.Errorf("renew-at %.2f is outside 0.1..0.95 (a fraction of the lifetime)", c.RenewAt)
	}
	if c.Jitter == nil {
		j := 0.1
		c.Jitter = &j
	}
	if *c.Jitter < 0 || *c.Jitter >= c.RenewAt {
		return fmt.Errorf("jitter %.2f must be in [0, renew-at)", *c.Jitter)
	}
	if len(c.Certificates) == 0 {
		return errors.New("no certificate to keep: set --name (or certificates: in the config file)")
	}
	var names []string
	for i := range c.Certificates {
		cc := &c.Certificates[i]
		cc.Name = strings.ToLower(strings.TrimSpace(cc.Name))
		if cc.Name == "" {
			return fmt.Errorf("certificate %d: no name", i+1)
		}
		if slices.Contains(names, cc.Name) {
			return fmt.Errorf("certificate %s is listed twice", cc.Name)
		}
		names = append(names, cc.Name)
		if cc.KeyType == "" {
			cc.KeyType = "ecdsa-p256"
		}
		if !slices.Contains(keys.SupportedKeyTypes(), cc.KeyType) {
			return fmt.Errorf("certificate %s: unknown key type %q (use one of %v)", cc.Name, cc.KeyType, keys.SupportedKeyTypes())
		}
		if cc.JoinToken != "" && cc.JoinTokenFile != "" {
			return fmt.Errorf("certificate %s: set join-token or join-token-file, not both", cc.Name)
		}
		if cc.JoinTokenFile != "" {
			b, err := os.ReadFile(cc.JoinTokenFile)
			if err != nil {
				return fmt.Errorf("certificate %s: reading the join token: %w", cc.Name, err)
			}
			cc.JoinToken = strings.TrimSpace(string(b))
		}
		if p := cc.FullChain; p != "" && (p == cc.Key || p == cc.Cert || p == cc.Chain) {
			return fmt.Errorf("certificate %s: fullchain %s is also the key, cert or chain path", cc.Name, p)
		}
		if _, err := LookupOwnership(cc.Owner, cc.Group); err != nil {
			return fmt.Errorf("certificate %s: %w", cc.Name, err)
		}
	}
	return nil
}

// names are what the certificate asks for: the machine name first.
func (cc *CertConfig) names() []string {
	out := []string{cc.Name}
	for _, s := range cc.SANs {
		s = strings.ToLower(strings.TrimSpace(s))
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
