// Package siemtest is a syslog collector on a real loopback socket, for the
// tests of the audit shipper and of the server that runs it.
package siemtest

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// Collector receives RFC 5424 messages over UDP, or over TCP with octet
// counting (RFC 6587), as a SIEM's collector would.
type Collector struct {
	Addr string // host:port it listens on

	mu    sync.Mutex
	msgs  []*rfc5424.SyslogMessage
	errs  []error
	close func()
	conns []net.Conn
}

func (c *Collector) add(m syslog.Message, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	c.msgs = append(c.msgs, m.(*rfc5424.SyslogMessage))
}

// ListenUDP collects datagrams on a free loopback port until the test ends.
func ListenUDP(t testing.TB) *Collector {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{Addr: pc.LocalAddr().String(), close: func() { pc.Close() }}
	t.Cleanup(c.Stop)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			c.add(rfc5424.NewParser().Parse(append([]byte(nil), buf[:n]...)))
		}
	}()
	return c
}

// ListenTCP collects octet-counted messages on addr ("127.0.0.1:0" for a
// free port) until Stop or the end of the test.
func ListenTCP(t testing.TB, addr string) *Collector {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, ln)
}

// Serve collects octet-counted messages from the connections ln accepts
// (a TLS listener for RFC 5425) until Stop or the end of the test.
func Serve(t testing.TB, ln net.Listener) *Collector {
	c := &Collector{Addr: ln.Addr().String(), close: func() { ln.Close() }}
	t.Cleanup(c.Stop)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			c.mu.Unlock()
			go func() {
				defer conn.Close()
				octetcounting.NewParser(syslog.WithListener(func(r *syslog.Result) { c.add(r.Message, r.Error) })).Parse(conn)
			}()
		}
	}()
	return c
}

// Stop closes the socket and every connection, as a collector that goes
// down would.
func (c *Collector) Stop() {
	c.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}

// Messages returns what arrived, in order.
func (c *Collector) Messages() []*rfc5424.SyslogMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*rfc5424.SyslogMessage(nil), c.msgs...)
}

// Actions returns the MSGID (Sigil's audit action) of every message.
func (c *Collector) Actions() []string {
	var out []string
	for _, m := range c.Messages() {
		if m.MsgID != nil {
			out = append(out, *m.MsgID)
		}
	}
	return out
}

// Errors returns the messages that did not parse.
func (c *Collector) Errors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

// WaitFor waits up to 10 s for exactly want (MSGIDs, in order).
func (c *Collector) WaitFor(t testing.TB, want []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		got := c.Actions()
		if strings.Join(got, ",") == strings.Join(want, ",") {
			return
		}
		if len(got) > len(want) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("collector got %v (errors %v), want %v", c.Actions(), c.Errors(), want)
}
