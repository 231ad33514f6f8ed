package siem

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
)

// dialTimeout and writeTimeout bound every network operation of a sink, so
// a hung collector cannot stall the shipper.
const (
	dialTimeout  = 5 * time.Second
	writeTimeout = 5 * time.Second
)

// Sink is a syslog collector reached over UDP, TCP or TLS. It is not safe
// for concurrent use: one shipper owns it.
type Sink struct {
	name    string // URL without user info or query: safe to log and store
	network string // udp, tcp or tls
	addr    string
	format  string // syslog (RFC 5424 with structured data) or cef (CEF as the syslog MSG)
	host    string
	tls     *tls.Config

	conn net.Conn
}

// ParseSink parses a sink URL:
//
//	syslog://host[:514]          UDP (the classic syslog transport)
//	udp://host[:514]             UDP
//	tcp://host[:601]             TCP, octet-counting framing (RFC 6587)
//	tls://host[:6514]            TLS (RFC 5425); ?ca=FILE trusts FILE's
//	                             certificates instead of the system roots,
//	                             ?server_name=NAME checks NAME
//
// Every scheme takes ?format=cef to send CEF as the syslog message.
func ParseSink(raw string) (*Sink, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("audit sink %q: %w", raw, err)
	}
	s := &Sink{format: FormatSyslog}
	port := ""
	switch strings.TrimPrefix(u.Scheme, "syslog+") {
	case "syslog", "udp":
		s.network, port = "udp", "514"
	case "tcp":
		s.network, port = "tcp", "601"
	case "tls":
		s.network, port = "tls", "6514"
	default:
		return nil, fmt.Errorf("audit sink %q: unknown scheme %q (use syslog, udp, tcp or tls)", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("audit sink %q: a host is required", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("audit sink %q: unexpected path %q", raw, u.Path)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	s.addr = net.JoinHostPort(u.Hostname(), port)
	q := u.Query()
	for k := range q {
		switch k {
		case "format", "ca", "server_name":
		default:
			return nil, fmt.Errorf("audit sink %q: unknown option %q", raw, k)
		}
	}
	switch f := q.Get("format"); f {
	case "", FormatSyslog:
	case FormatCEF:
		s.format = FormatCEF
	default:
		return nil, fmt.Errorf("audit sink %q: unknown format %q (use syslog or cef)", raw, f)
	}
	if s.network == "tls" {
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
		if n := q.Get("server_name"); n != "" {
			s.tls.ServerName = n
		}
		if ca := q.Get("ca"); ca != "" {
			pemBytes, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("audit sink %q: %w", raw, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemBytes) {
				return nil, fmt.Errorf("audit sink %q: no certificate in %s", raw, ca)
			}
			s.tls.RootCAs = pool
		}
	} else if q.Has("ca") || q.Has("server_name") {
		return nil, fmt.Errorf("audit sink %q: ca and server_name apply to tls:// only", raw)
	}
	s.name = s.network + "://" + s.addr
	if s.format == FormatCEF {
		s.name += "?format=cef"
	}
	s.host, _ = os.Hostname()
	return s, nil
}

// Name identifies the sink in logs, metrics and the store.
func (s *Sink) Name() string { return s.name }

// Message renders e as the sink sends it, before framing.
func (s *Sink) Message(e *audit.Event) []byte {
	if s.format == FormatCEF {
		// RFC 5424 header without structured data, CEF as MSG: what
		// ArcSight-style collectors expect over syslog.
		pri := facilityLogAudit*8 + severity(e.Result)
		return fmt.Appendf(nil, "<%d>1 %s %s %s - %s - %s", pri,
			e.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), headerField(s.host, 255), appName,
			headerField(e.Action, 32), CEF(e))
	}
	return Syslog(e, s.host)
}

func (s *Sink) dial(ctx context.Context) error {
	if s.conn != nil {
		return nil
	}
	d := &net.Dialer{Timeout: dialTimeout}
	var err error
	switch s.network {
	case "tls":
		td := &tls.Dialer{NetDialer: d, Config: s.tls}
		s.conn, err = td.DialContext(ctx, "tcp", s.addr)
	default:
		s.conn, err = d.DialContext(ctx, s.network, s.addr)
	}
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", s.name, err)
	}
	return nil
}

// Send writes events in order and returns how many were written. On error
// the connection is dropped, to be redialled by the next Send; the events
// from the returned count on were not written. A stream write that the
// kernel accepted counts as written: like every syslog sender, Sink cannot
// know whether a collector that then crashed stored it.
func (s *Sink) Send(ctx context.Context, events []*audit.Event) (int, error) {
	// A collector that closed the connection would still have our next
	// write accepted by the kernel and lost: look for its EOF first.
	if err := s.Check(ctx); err != nil {
		return 0, err
	}
	for i, e := range events {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := s.conn.Write(frame(streamOrDatagram(s.network), s.Message(e))); err != nil {
			s.Close()
			return i, fmt.Errorf("writing to %s: %w", s.name, err)
		}
	}
	if s.network == "udp" {
		// A collector that is not listening answers with ICMP port
		// unreachable, which Linux reports on the connected socket's next
		// operation: probe for it so a dead UDP sink is noticed.
		if err := probeUDP(s.conn); err != nil {
			s.Close()
			return len(events), fmt.Errorf("writing to %s: %w", s.name, err)
		}
	}
	return len(events), nil
}

func streamOrDatagram(network string) string {
	if network == "udp" {
		return "udp"
	}
	return "tcp"
}

// probeUDP reads with an immediate deadline: a pending ICMP error surfaces
// as ECONNREFUSED, a timeout means nothing was reported.
func probeUDP(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return err
}

// Check makes sure the sink is reachable while there is nothing to send:
// it connects if needed and, on TCP, notices a collector that closed the
// connection (a read that does not time out at once means EOF or an
// error), so a required sink's outage closes the gate without waiting for
// the next event. TLS connections are only checked by connecting (a read
// deadline on them is not probed). UDP is probed for ICMP errors.
func (s *Sink) Check(ctx context.Context) error {
	if s.conn != nil {
		var err error
		switch s.network {
		case "tcp":
			err = probeStream(s.conn)
		case "udp":
			err = probeUDP(s.conn)
		}
		if err == nil {
			return nil
		}
		s.Close()
	}
	return s.dial(ctx)
}

// probeStream reads with an immediate deadline: collectors never write to
// us, so anything but a timeout means the connection is gone.
func probeStream(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		return errors.New("unexpected data from the collector")
	}
	return err
}

// Close drops the connection.
func (s *Sink) Close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}
