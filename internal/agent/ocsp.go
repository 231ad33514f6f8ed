package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSP is the agent's second way of learning of a revocation: when the
// status endpoint (on the mTLS API listener) cannot be reached, the
// agent asks the OCSP responder named in its certificate (the server's
// plain-HTTP listener). Only a signed "revoked" answer changes anything.

// maxOCSPResponse bounds what the agent reads from a responder.
const maxOCSPResponse = 64 << 10

// ocspTimeout bounds one OCSP exchange.
const ocspTimeout = 10 * time.Second

// firstCert parses the first certificate of a PEM bundle.
func firstCert(bundle []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		if b, bundle = pem.Decode(bundle); b == nil {
			return nil, errors.New("no certificate in the chain")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// OCSPStatus asks the responder in leaf's AIA extension about leaf, and
// returns its answer once it is checked: signed by issuer (or by a
// responder certificate issuer delegated OCSP signing to) and about leaf.
func OCSPStatus(ctx context.Context, leaf, issuer *x509.Certificate) (*ocsp.Response, error) {
	if err := leaf.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("ocsp: the chain's first certificate did not issue ours: %w", err)
	}
	var server string
	for _, s := range leaf.OCSPServer {
		if u, err := url.Parse(s); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			server = s
			break
		}
	}
	if server == "" {
		return nil, errors.New("ocsp: the certificate names no OCSP responder")
	}
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return nil, fmt.Errorf("ocsp: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, ocspTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, server, bytes.NewReader(req))
	if err != nil {
		return nil, fmt.Errorf("ocsp: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	// A fresh connection, no proxy from the environment and no redirects:
	// the answer is checked by signature, but the agent talks only to the
	// responder its certificate names.
	tr := &http.Transport{DialContext: (&net.Dialer{Timeout: ocspTimeout}).DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("ocsp: contacting %s: %w", server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOCSPResponse+1))
	if err != nil {
		return nil, fmt.Errorf("ocsp: reading the answer of %s: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ocsp: %s said %d", server, resp.StatusCode)
	}
	if len(body) > maxOCSPResponse {
		return nil, fmt.Errorf("ocsp: the answer of %s is over %d bytes", server, maxOCSPResponse)
	}
	return CheckOCSPResponse(body, leaf, issuer)
}

// CheckOCSPResponse parses a DER OCSP response and accepts it only if it
// is about leaf and signed by issuer, or by a certificate issuer signed
// for OCSP signing (RFC 6960 §4.2.2.2: a certificate without that purpose,
// e.g. another leaf of the same CA, may not speak for the CA).
func CheckOCSPResponse(der []byte, leaf, issuer *x509.Certificate) (*ocsp.Response, error) {
	r, err := ocsp.ParseResponseForCert(der, leaf, issuer)
	if err != nil {
		return nil, fmt.Errorf("ocsp: %w", err)
	}
	if r.SerialNumber == nil || r.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		return nil, errors.New("ocsp: the answer is about another certificate")
	}
	if r.Certificate != nil && !r.Certificate.Equal(issuer) && !slices.Contains(r.Certificate.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return nil, errors.New("ocsp: the answer is signed by a certificate not delegated OCSP signing")
	}
	return r, nil
}
