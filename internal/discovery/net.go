package discovery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/store"
)

// NetOptions tune a network scan.
type NetOptions struct {
	// Concurrency is the number of handshakes in flight (default 256).
	Concurrency int
	// Timeout bounds each endpoint: dial, STARTTLS exchange and handshake
	// together (default 3s), so a tarpit or a slowloris server costs at most
	// this much of one worker.
	Timeout time.Duration
	// Rate caps new connections per second (0: unlimited).
	Rate float64
	// StartTLS: "auto" (by well-known port: 25/587 SMTP, 143 IMAP, 110 POP3,
	// 389 LDAP), "none", or one of "smtp", "imap", "pop3", "ldap" for every endpoint.
	StartTLS string
	// MaxChain is the number of presented certificates recorded per endpoint (default 16).
	MaxChain int
	// Done, if set, is called after each endpoint (from worker goroutines).
	Done func(Endpoint, error)
	// Dialer, if set, replaces the default net.Dialer (tests bind a source address).
	Dialer *net.Dialer
}

// tlsConfig accepts anything a server presents, from TLS 1.0 to 1.3 and with
// every cipher suite Go implements: the scanner records what exists; it does
// not judge it (that is assessment's job).
func tlsConfig(sni string) *tls.Config {
	suites := []uint16{}
	for _, s := range tls.CipherSuites() {
		suites = append(suites, s.ID)
	}
	for _, s := range tls.InsecureCipherSuites() {
		suites = append(suites, s.ID)
	}
	return &tls.Config{
		ServerName:         sni,
		InsecureSkipVerify: true, //nolint:gosec // discovery records every chain, trusted or not
		MinVersion:         tls.VersionTLS10,
		CipherSuites:       suites,
	}
}

// ScanNet handshakes with every endpoint of targets and adds each presented
// certificate, with its place in the chain, to col. It returns when all
// endpoints are done or ctx is cancelled (then with ctx's error; what was
// collected so far stays in col).
func ScanNet(ctx context.Context, targets *Targets, opt NetOptions, col *inventory.Collector) error {
	if opt.Concurrency <= 0 {
		opt.Concurrency = 256
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 3 * time.Second
	}
	if opt.MaxChain <= 0 {
		opt.MaxChain = 16
	}
	if opt.StartTLS == "" {
		opt.StartTLS = "auto"
	}
	switch opt.StartTLS {
	case "auto", "none", "smtp", "imap", "pop3", "ldap":
	default:
		return fmt.Errorf("unknown STARTTLS protocol %q (auto, none, smtp, imap, pop3, ldap)", opt.StartTLS)
	}
	dialer := opt.Dialer
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	work := make(chan Endpoint)
	var wg sync.WaitGroup
	for range opt.Concurrency {
		wg.Go(func() {
			for ep := range work {
				err := scanEndpoint(ctx, dialer, ep, opt, col)
				if ctx.Err() != nil {
					continue // cancelled mid-handshake: neither scanned nor an error
				}
				col.Scanned()
				var unreachable errUnreachable
				switch {
				case errors.As(err, &unreachable):
					col.Unreachable()
				case err != nil:
					col.Error(ep.String(), err)
				}
				if opt.Done != nil {
					opt.Done(ep, err)
				}
			}
		})
	}
	err := func() error {
		defer close(work)
		// The rate is kept on average: the n-th connection waits for
		// start + n/rate, so timer granularity (≈1 ms) does not cap it.
		start, sent := time.Now(), 0
		for ep := range targets.All() {
			if opt.Rate > 0 {
				due := start.Add(time.Duration(float64(sent) / opt.Rate * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return ctx.Err()
					}
				}
				sent++
			}
			select {
			case work <- ep:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}()
	wg.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// scanEndpoint makes one handshake under one deadline.
func scanEndpoint(ctx context.Context, dialer *net.Dialer, ep Endpoint, opt NetOptions, col *inventory.Collector) error {
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", ep.Addr())
	if err != nil {
		return errUnreachable{err}
	}
	defer conn.Close()
	// The deadline covers the STARTTLS exchange, which has no context.
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	if proto := startTLSProto(opt.StartTLS, ep.Port); proto != "" {
		if err := startTLS(conn, proto, ep); err != nil {
			return fmt.Errorf("starttls %s: %w", proto, unwrapOp(err))
		}
	}
	tc := tls.Client(conn, tlsConfig(ep.SNI))
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("tls handshake: %w", unwrapOp(err))
	}
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return errors.New("server presented no certificate")
	}
	version, suite := tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)
	for i, c := range st.PeerCertificates {
		if i == opt.MaxChain {
			col.Error(ep.String(), fmt.Errorf("chain of %d certificates: recorded the first %d", len(st.PeerCertificates), opt.MaxChain))
			break
		}
		col.Add(inventory.FromCertificate(c), inventory.Location{
			Kind: store.LocationNet, Host: ep.Host, Port: ep.Port, SNI: ep.SNI,
			TLSVersion: version, CipherSuite: suite, ChainIndex: i,
		})
	}
	return nil
}

// errUnreachable: nothing accepted the connection. Not a scan error: in a
// range most addresses are empty, and listing each would make memory grow
// with the range.
type errUnreachable struct{ err error }

func (e errUnreachable) Error() string { return "dial: " + unwrapOp(e.err).Error() }

// unwrapOp drops net.OpError's repetition of the addresses (the target is
// already named in the scan error).
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
