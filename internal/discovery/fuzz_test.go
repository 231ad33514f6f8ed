package discovery

import (
	"encoding/pem"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

func FuzzParseFile(f *testing.F) {
	for _, s := range [][]byte{
		nil, {0x30}, {0x30, 0x82, 0x01, 0x00}, {0xfe, 0xed, 0xfe, 0xed},
		// A JKS with one trusted entry whose "certificate" is 3 bytes.
		{0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 0,
			0, 5, 'X', '.', '5', '0', '9', 0, 0, 0, 3, 0x30, 0x01, 0x00},
		[]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		[]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+\n-----END PRIVATE KEY-----\n"),
		[]byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"),
		[]byte("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n"),
		[]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host\n"),
		[]byte("|1|abc=|def= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"),
		[]byte("key=AKIAIOSFODNN7EXAMPLE ghp_0123456789abcdefghijABCDEFGHIJ012345 xoxb-1234567890-abc"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{"file", "known_hosts", "authorized_keys"} {
			found, _ := ParseFile(name, data, ParseOptions{SSH: true, Secrets: true, Passwords: []string{"x"}})
			for _, fd := range found {
				id := fd.Identity
				if len(id.Fingerprint) != 64 {
					t.Fatalf("bad fingerprint %q", id.Fingerprint)
				}
				if id.Kind != store.KindX509 && id.DER != nil {
					t.Fatalf("%s carries bytes", id.Kind)
				}
			}
		}
		// The same bytes as a PEM body.
		ParseFile("f", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: data}), ParseOptions{})
		ParseFile("f", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: data}), ParseOptions{})
	})
}

func FuzzParseTargets(f *testing.F) {
	for _, s := range []string{"10.0.0.0/24", "host:443", "[::1]:8443", "fd00::/120", "a.b.c", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseTargets([]string{s}, []int{443}, nil)
		if err != nil {
			return
		}
		if ts.Count() < 1 {
			t.Fatalf("%q: count %d", s, ts.Count())
		}
		n := 0
		for range ts.All() {
			if n++; n > 3 {
				break
			}
		}
		if n == 0 {
			t.Fatalf("%q: no endpoints", s)
		}
	})
}

// FuzzStartTLS feeds arbitrary server answers to each STARTTLS dialect:
// an error or success, never a panic or a hang.
func FuzzStartTLS(f *testing.F) {
	f.Add([]byte("220 x\r\n250 ok\r\n220 go\r\n"))
	f.Add([]byte("* OK\r\na1 OK\r\n"))
	f.Add([]byte("+OK\r\n+OK\r\n"))
	f.Add([]byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00})
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, answer []byte) {
		for _, proto := range []string{"smtp", "imap", "pop3", "ldap"} {
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				go io.Copy(io.Discard, server)
				_, _ = server.Write(answer)
			}()
			_ = client.SetDeadline(time.Now().Add(time.Second))
			_ = startTLS(client, proto, Endpoint{Host: "h", Port: 25})
			client.Close()
		}
	})
}
