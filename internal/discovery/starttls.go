package discovery

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// startTLSProto picks the STARTTLS dialect for an endpoint ("" for direct TLS).
func startTLSProto(mode string, port int) string {
	switch mode {
	case "none":
		return ""
	case "auto":
		switch port {
		case 25, 587:
			return "smtp"
		case 143:
			return "imap"
		case 110:
			return "pop3"
		case 389:
			return "ldap"
		}
		return ""
	}
	return mode
}

// maxLine bounds one line of a STARTTLS greeting: a hostile server cannot
// make the scanner buffer without limit (the connection deadline bounds time).
const maxLine = 4096

type lineReader struct{ r *bufio.Reader }

func (l lineReader) line() (string, error) {
	var b strings.Builder
	for {
		frag, isPrefix, err := l.r.ReadLine()
		if err != nil {
			return "", err
		}
		b.Write(frag)
		if b.Len() > maxLine {
			return "", errors.New("line too long")
		}
		if !isPrefix {
			return b.String(), nil
		}
	}
}

// startTLS runs the plaintext upgrade exchange of proto on conn. The TLS
// handshake must start right after, so nothing may be buffered past the
// server's last answer: each protocol waits for that answer only.
func startTLS(conn net.Conn, proto string, ep Endpoint) error {
	br := bufio.NewReaderSize(conn, 1) // never reads ahead into the TLS handshake
	lr := lineReader{br}
	switch proto {
	case "smtp":
		if err := smtpReply(lr, "220"); err != nil {
			return fmt.Errorf("greeting: %w", err)
		}
		name := ep.SNI
		if name == "" {
			name = "sigil-scan"
		}
		if _, err := fmt.Fprintf(conn, "EHLO %s\r\n", name); err != nil {
			return err
		}
		if err := smtpReply(lr, "250"); err != nil {
			return fmt.Errorf("EHLO: %w", err)
		}
		if _, err := io.WriteString(conn, "STARTTLS\r\n"); err != nil {
			return err
		}
		return smtpReply(lr, "220")
	case "imap":
		l, err := lr.line()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, "* OK") {
			return fmt.Errorf("unexpected greeting %q", clipStr(l))
		}
		if _, err := io.WriteString(conn, "a1 STARTTLS\r\n"); err != nil {
			return err
		}
		for {
			l, err := lr.line()
			if err != nil {
				return err
			}
			if strings.HasPrefix(l, "a1 ") {
				if !strings.HasPrefix(l, "a1 OK") {
					return fmt.Errorf("refused: %q", clipStr(l))
				}
				return nil
			}
		}
	case "pop3":
		l, err := lr.line()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, "+OK") {
			return fmt.Errorf("unexpected greeting %q", clipStr(l))
		}
		if _, err := io.WriteString(conn, "STLS\r\n"); err != nil {
			return err
		}
		if l, err = lr.line(); err != nil {
			return err
		}
		if !strings.HasPrefix(l, "+OK") {
			return fmt.Errorf("refused: %q", clipStr(l))
		}
		return nil
	case "ldap":
		// ExtendedRequest StartTLS (RFC 4511 §4.14), message ID 1.
		oid := "1.3.6.1.4.1.1466.20037"
		req := append([]byte{0x30, byte(5 + 2 + len(oid)), 0x02, 0x01, 0x01, 0x77, byte(2 + len(oid)), 0x80, byte(len(oid))}, oid...)
		if _, err := conn.Write(req); err != nil {
			return err
		}
		return ldapResponse(br)
	}
	return fmt.Errorf("unknown protocol %q", proto)
}

// smtpReply reads a (multi-line) reply and checks its code.
func smtpReply(lr lineReader, code string) error {
	for {
		l, err := lr.line()
		if err != nil {
			return err
		}
		if len(l) < 3 || l[:3] != code {
			return fmt.Errorf("unexpected reply %q", clipStr(l))
		}
		if len(l) == 3 || l[3] == ' ' {
			return nil
		}
	}
}

// ldapResponse reads the ExtendedResponse and checks resultCode 0.
func ldapResponse(br *bufio.Reader) error {
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return err
	}
	if hdr[0] != 0x30 {
		return errors.New("not an LDAP message")
	}
	n := int(hdr[1])
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 2 {
			return errors.New("bad LDAP length")
		}
		lb := make([]byte, k)
		if _, err := io.ReadFull(br, lb); err != nil {
			return err
		}
		n = 0
		for _, b := range lb {
			n = n<<8 | int(b)
		}
	}
	if n > maxLine {
		return errors.New("LDAP response too long")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return err
	}
	// messageID INTEGER, then [APPLICATION 24] ExtendedResponse whose first
	// element is resultCode ENUMERATED.
	if len(body) < 3 || body[0] != 0x02 || int(body[1])+2 > len(body) {
		return errors.New("malformed LDAP response")
	}
	rest := body[2+int(body[1]):]
	if len(rest) < 2 || rest[0] != 0x78 {
		return errors.New("not an LDAP extended response")
	}
	skip := 2
	if rest[1]&0x80 != 0 {
		skip += int(rest[1] & 0x7f)
	}
	if skip > len(rest) {
		return errors.New("malformed LDAP response")
	}
	rest = rest[skip:]
	if len(rest) < 3 || rest[0] != 0x0a || rest[1] != 1 {
		return errors.New("malformed LDAP result")
	}
	if rest[2] != 0 {
		return fmt.Errorf("StartTLS refused (result code %d)", rest[2])
	}
	return nil
}

func clipStr(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
