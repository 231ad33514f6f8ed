package agent

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/keys"
)

// The state directory lets a restarted agent carry on without a token:
//
//	root.pem              the pinned root (trusted from then on)
//	agent.json            server, fingerprint, per-certificate status (sigil agent status reads it)
//	certs/<name>.pem      the current key, certificate and chain, in one file (0600)
//
// Each file is replaced atomically; the identity file holds key and
// certificate together so a crash never pairs a new key with an old certificate.

const (
	stateFile = "agent.json"
	rootFile  = "root.pem"
)

// State is what agent.json holds.
type State struct {
	Server          string                `json:"server"`
	RootFingerprint string                `json:"root_fingerprint"`
	Certificates    map[string]*CertState `json:"certificates"`
	UpdatedAt       time.Time             `json:"updated_at"`
	PID             int                   `json:"pid,omitempty"`
}

// CertState is the agent's record of one certificate.
type CertState struct {
	Name         string    `json:"name"`
	Serial       string    `json:"serial,omitempty"`
	NotBefore    time.Time `json:"not_before,omitzero"`
	NotAfter     time.Time `json:"not_after,omitzero"`
	NextRenewal  time.Time `json:"next_renewal,omitzero"`
	LastRenewal  time.Time `json:"last_renewal,omitzero"`
	Renewals     int       `json:"renewals"`
	Rekeys       int       `json:"rekeys_after_revocation"`
	MachineState string    `json:"machine_state,omitempty"` // as the server last said
	CertStatus   string    `json:"cert_status,omitempty"`
	LastCheck    time.Time `json:"last_check,omitzero"`
	// StatusFrom says who last told CertStatus: "server" (the status
	// endpoint) or "ocsp" (the responder, asked while the endpoint was
	// unreachable); LastOCSPCheck is when the responder last answered.
	StatusFrom    string    `json:"status_from,omitempty"`
	LastOCSPCheck time.Time `json:"last_ocsp_check,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	HookPending   bool      `json:"hook_pending,omitempty"`
	HookError     string    `json:"hook_error,omitempty"`
	// Stopped says why the agent stopped renewing (machine disabled,
	// certificate revoked for key compromise, expired): a human must act.
	Stopped string `json:"stopped,omitempty"`
	Cert    string `json:"cert,omitempty"`
	Key     string `json:"key,omitempty"`
	Chain   string `json:"chain,omitempty"`
	// FullChain is the certificate followed by its chain.
	FullChain string `json:"fullchain,omitempty"`
}

// ReadState reads agent.json from a state directory.
func ReadState(dir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no agent state in %s (has sigil agent run with --state %s?)", dir, dir)
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.Certificates == nil {
		st.Certificates = map[string]*CertState{}
	}
	return &st, nil
}

func writeState(dir string, st *State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return keys.WriteFileAtomic(filepath.Join(dir, stateFile), append(data, '\n'), 0o600)
}

// identity is a key with its current certificate.
type identity struct {
	key   crypto.Signer
	leaf  *x509.Certificate
	cert  []byte // PEM leaf
	chain []byte // PEM intermediates
}

func (id *identity) tlsCert() *tls.Certificate {
	return &tls.Certificate{Certificate: [][]byte{id.leaf.Raw}, PrivateKey: id.key, Leaf: id.leaf}
}

func identityPath(dir, name string) string {
	return filepath.Join(dir, "certs", safeName(name)+".pem")
}

// safeName keeps a machine name usable as a file name.
func safeName(n string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '_'
	}, n)
}

func saveIdentity(dir, name string, id *identity) error {
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		return err
	}
	keyPEM, err := keys.MarshalPrivateKeyPEM(id.key)
	if err != nil {
		return err
	}
	var b []byte
	b = append(b, keyPEM...)
	b = append(b, id.cert...)
	b = append(b, id.chain...)
	return keys.WriteFileAtomic(identityPath(dir, name), b, 0o600)
}

// loadIdentity returns nil, nil when the machine has not enrolled yet.
func loadIdentity(dir, name string) (*identity, error) {
	data, err := os.ReadFile(identityPath(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	id := &identity{}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case strings.Contains(b.Type, "PRIVATE KEY"):
			if id.key, err = keys.ParsePrivateKeyPEM(pem.EncodeToMemory(b), nil); err != nil {
				return nil, fmt.Errorf("%s: %w", identityPath(dir, name), err)
			}
		case b.Type == "CERTIFICATE" && id.leaf == nil:
			if id.leaf, err = x509.ParseCertificate(b.Bytes); err != nil {
				return nil, fmt.Errorf("%s: %w", identityPath(dir, name), err)
			}
			id.cert = pem.EncodeToMemory(b)
		case b.Type == "CERTIFICATE":
			id.chain = append(id.chain, pem.EncodeToMemory(b)...)
		}
	}
	if id.key == nil || id.leaf == nil {
		return nil, fmt.Errorf("%s holds no key and certificate", identityPath(dir, name))
	}
	return id, nil
}

func loadRoot(dir string) (*x509.Certificate, error) {
	data, err := os.ReadFile(filepath.Join(dir, rootFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s holds no certificate", filepath.Join(dir, rootFile))
	}
	return x509.ParseCertificate(b.Bytes)
}

func marshalKey(id *identity) ([]byte, error) { return keys.MarshalPrivateKeyPEM(id.key) }
