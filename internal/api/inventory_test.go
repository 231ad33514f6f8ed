package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/fail"
	"github.com/sigil-pki/sigil/internal/inventory"
	"github.com/sigil-pki/sigil/internal/store"
)

// FuzzDiscoveryResults feeds arbitrary bodies through the decoding and
// checking POST /api/v1/discovery/results does before anything is stored:
// every body is either a valid batch or a 400/413 problem, never a panic.
func FuzzDiscoveryResults(f *testing.F) {
	for _, s := range []string{
		`{"scanner":"net","identities":[],"locations":[]}`,
		`{"scanner":"fs","host":"h","identities":[{"kind":"secret","fingerprint":"` + string(bytes.Repeat([]byte("a"), 64)) + `","rule_id":"x"}],"locations":[{"fingerprint":"` + string(bytes.Repeat([]byte("a"), 64)) + `","kind":"fs","path":"/x"}]}`,
		`{"identities":[{"kind":"x509","der":"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"}]}`,
		`{"identities":[{"kind":"ssh-key","fingerprint":"SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"}],"locations":[{"fingerprint":"SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU","kind":"agent","host":"a","port":-1}]}`,
		`{"identities":null,"errors":[{"target":"t","error":"e"}],"unreachable":5}`,
		`[]`, `{"identities":[{"kind":"x509","der":5}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var rep inventory.Report
		var derr error
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			derr = decodeJSON(w, r, 1<<20, &rep)
		})
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/api/v1/discovery/results", bytes.NewReader(body)))
		if derr != nil {
			if k := fail.KindOf(derr); k != fail.Malformed && k != fail.TooLarge {
				t.Fatalf("decode error of kind %v: %v", k, derr)
			}
			return
		}
		b, err := inventory.Prepare(context.Background(), nil, &rep, store.SourceDiscovered, time.Unix(1, 0))
		if err != nil {
			if fail.KindOf(err) != fail.Malformed {
				t.Fatalf("Prepare error of kind %v: %v", fail.KindOf(err), err)
			}
			return
		}
		for _, l := range b.Locations {
			if l.Port < 0 || l.Port > 65535 {
				t.Fatalf("port %d accepted", l.Port)
			}
		}
	})
}
