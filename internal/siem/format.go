// Package siem turns audit events into what security information and event
// management systems ingest: JSON lines, RFC 5424 syslog and ArcSight CEF,
// and ships them to syslog collectors over UDP, TCP (RFC 6587 octet
// counting) or TLS (RFC 5425).
package siem

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/sigil-pki/sigil/internal/audit"
)

// Formats understood by Format.
const (
	FormatJSONL  = "jsonl"
	FormatSyslog = "syslog"
	FormatCEF    = "cef"
)

// Syslog constants. Facility 13 is "log audit" (RFC 5424 table 1).
const (
	facilityLogAudit = 13
	appName          = "sigil"
	// sdID is the structured-data ID: name@PEN. 32473 is the private
	// enterprise number reserved for documentation (RFC 5612); a site
	// with its own PEN can rewrite it in its collector.
	sdID = "sigil@32473"
	// maxUDPMessage keeps a datagram under the IPv4 UDP payload limit;
	// longer messages have their MSG part truncated (RFC 5426 3.2).
	maxUDPMessage = 65000
)

// productVersion is the CEF device version: the module version of the
// running binary ("dev" in a development build).
var productVersion = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
})

// severity maps an audit result to a syslog severity: refusals and errors
// must stand out in a SIEM.
func severity(result string) int {
	switch result {
	case audit.ResultRefused:
		return 4 // warning
	case audit.ResultError:
		return 3 // error
	}
	return 6 // informational
}

func cefSeverity(result string) int {
	switch result {
	case audit.ResultRefused:
		return 6
	case audit.ResultError:
		return 8
	}
	return 3
}

// Format renders e in one of the formats, without a trailing newline.
// host is the syslog HOSTNAME ("-" when empty).
func Format(format string, e *audit.Event, host string) ([]byte, error) {
	switch format {
	case FormatJSONL:
		return json.Marshal(e)
	case FormatSyslog:
		return Syslog(e, host), nil
	case FormatCEF:
		return []byte(CEF(e)), nil
	}
	return nil, fmt.Errorf("unknown format %q (use jsonl, syslog or cef)", format)
}

// Syslog renders e as one RFC 5424 message: the event's fields as
// structured data (so a collector can index them without parsing the
// message) and the whole event as JSON in MSG.
func Syslog(e *audit.Event, host string) []byte {
	var b strings.Builder
	pri := facilityLogAudit*8 + severity(e.Result)
	fmt.Fprintf(&b, "<%d>1 %s %s %s - %s [%s", pri,
		e.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		headerField(host, 255), appName, headerField(e.Action, 32), sdID)
	param := func(name, value string) {
		b.WriteString(" ")
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(escapeSD(value))
		b.WriteString(`"`)
	}
	param("seq", strconv.FormatInt(e.Seq, 10))
	param("actor", e.Actor)
	param("action", e.Action)
	if e.Object != "" {
		param("object", e.Object)
	}
	param("result", e.Result)
	param("hash", e.Hash)
	b.WriteString("] ")
	msg, _ := json.Marshal(e) // an Event always marshals
	b.Write(msg)
	return []byte(b.String())
}

// headerField makes s a valid RFC 5424 header field: 1..max printable
// US-ASCII characters without spaces, "-" (NILVALUE) when empty.
func headerField(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		if c > 32 && c < 127 {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// escapeSD escapes a PARAM-VALUE: '"', '\' and ']' must be escaped with a
// backslash (RFC 5424 6.3.3). Invalid UTF-8 is replaced so the message stays
// valid UTF-8.
func escapeSD(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsAny(s, `"\]`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == '"' || r == '\\' || r == ']' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// CEF renders e as one ArcSight Common Event Format line (CEF:0).
func CEF(e *audit.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CEF:0|Sigil|Sigil|%s|%s|%s|%d|",
		cefHeader(productVersion()), cefHeader(e.Action), cefHeader(e.Action+" "+e.Result), cefSeverity(e.Result))
	ext := [][2]string{
		{"rt", strconv.FormatInt(e.Time.UnixMilli(), 10)},
		{"suser", e.Actor},
		{"act", e.Action},
		{"outcome", e.Result},
		{"cn1Label", "seq"},
		{"cn1", strconv.FormatInt(e.Seq, 10)},
	}
	if e.Object != "" {
		ext = append(ext, [2]string{"cs1Label", "object"}, [2]string{"cs1", e.Object})
	}
	ext = append(ext, [2]string{"cs2Label", "hash"}, [2]string{"cs2", e.Hash})
	if e.Detail != "" {
		ext = append(ext, [2]string{"msg", e.Detail})
	}
	for i, kv := range ext {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(cefValue(kv[1]))
	}
	return b.String()
}

// cefHeader escapes a header field: '\' and '|' are escaped; a header
// cannot hold a line break, so those become spaces.
func cefHeader(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\r", " ", "\n", " ")
	return r.Replace(strings.ToValidUTF8(s, "\uFFFD"))
}

// cefValue escapes an extension value: '\' and '=' are escaped, line breaks
// written as \n and \r.
func cefValue(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\r\n", `\n`, "\n", `\n`, "\r", `\r`)
	return r.Replace(strings.ToValidUTF8(s, "\uFFFD"))
}

// frame prepares a message for a transport: octet counting (RFC 6587 3.4.1,
// RFC 5425) on streams, the bare message on UDP (truncated if needed).
func frame(network string, msg []byte) []byte {
	if network == "udp" {
		if len(msg) > maxUDPMessage {
			msg = msg[:maxUDPMessage]
		}
		return msg
	}
	return append([]byte(strconv.Itoa(len(msg))+" "), msg...)
}
