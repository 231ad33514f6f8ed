// Package client is a small Go client for Sigil's /api/v1, used by the CLI
// (and later the agent). It knows HTTP and JSON, nothing of the server's internals.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Client talks to one Sigil server.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// New builds a client. rootFile is the PEM trust anchor for the server's TLS
// certificate (Sigil's root.pem); empty means the system roots.
func New(server, token, rootFile string) (*Client, error) {
	if server == "" {
		return nil, errors.New("no server: set --server or SIGIL_SERVER (e.g. https://127.0.0.1:8443)")
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("invalid server URL %q: want https://host:port", server)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if rootFile != "" {
		pemBytes, err := os.ReadFile(rootFile)
		if err != nil {
			return nil, fmt.Errorf("reading root certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("no certificate found in %s", rootFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = 256
	return &Client{
		BaseURL: strings.TrimRight(server, "/"),
		Token:   token,
		HTTP:    &http.Client{Transport: tr, Timeout: 60 * time.Second},
	}, nil
}

// Problem is an RFC 9457 problem returned by the server.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Rule   string `json:"rule,omitempty"`
}

// Error is a non-2xx answer from the server.
type Error struct {
	Status  int
	Problem Problem
}

func (e *Error) Error() string {
	d := e.Problem.Detail
	if d == "" {
		d = e.Problem.Title
	}
	if d == "" {
		d = http.StatusText(e.Status)
	}
	return fmt.Sprintf("server said %d: %s", e.Status, d)
}

// Do sends a request with a JSON body (or raw bytes for []byte) and decodes
// a JSON answer into out (if non-nil).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/yaml"
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd, ctype = bytes.NewReader(buf), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("contacting %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		_ = json.Unmarshal(data, &e.Problem)
		return e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding the answer: %w", err)
		}
	}
	return nil
}
