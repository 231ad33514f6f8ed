package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sigil-pki/sigil/internal/fail"
)

// decodeVia runs decodeJSON inside a real handler, as issueCert does, and
// returns the error and the recorded response (a problem when err != nil).
func decodeVia(body []byte, limit int64) (IssueRequest, *httptest.ResponseRecorder, error) {
	var req IssueRequest
	var derr error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if derr = decodeJSON(w, r, limit, &req); derr != nil {
			writeProblem(w, slog.New(slog.NewTextHandler(io.Discard, nil)), derr)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/certificates", bytes.NewReader(body)))
	return req, rec, derr
}

const testLimit = 1 << 10

func TestDecodeJSON(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		limit  int64
		status int    // 0: accepted
		detail string // part of the problem's detail
	}{
		{"valid", `{"profile":"web","csr":"x","ttl":"24h","labels":{"a":"b"}}`, testLimit, 0, ""},
		{"valid with surrounding whitespace", " \n{\"profile\":\"web\"}\n\t ", testLimit, 0, ""},
		{"empty body", ``, testLimit, 400, "invalid JSON body"},
		{"whitespace only", "  \n ", testLimit, 400, "invalid JSON body"},
		{"truncated", `{"profile":`, testLimit, 400, "invalid JSON body"},
		{"not JSON", `profile=web`, testLimit, 400, "invalid JSON body"},
		{"unknown field", `{"profile":"web","evil":true}`, testLimit, 400, "unknown field"},
		{"wrong type", `{"profile":5}`, testLimit, 400, "invalid JSON body"},
		{"array", `[{"profile":"web"}]`, testLimit, 400, "invalid JSON body"},
		{"second object", `{"profile":"web"}{"profile":"x"}`, testLimit, 400, "unexpected data after the object"},
		{"trailing garbage", `{"profile":"web"} x`, testLimit, 400, "unexpected data after the object"},
		// json.Decoder.More reports false before ']' and '}', so decodeJSON
		// must not rely on it alone for trailing data.
		{"trailing ]", `{"profile":"web"}]`, testLimit, 400, "after the object"},
		{"trailing }", `{"profile":"web"}}`, testLimit, 400, "after the object"},
		{"deep nesting", strings.Repeat("[", 10001) + strings.Repeat("]", 10001), 32 << 10, 400, "exceeded max depth"},
		{"invalid UTF-8 in string", "{\"profile\":\"\xff\xfe\"}", testLimit, 0, ""},
		{"over the limit", `{"profile":"` + strings.Repeat("a", testLimit) + `"}`, testLimit, 413, "over the 1024-byte limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, rec, err := decodeVia([]byte(tc.body), tc.limit)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want %d", tc.status)
			}
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d (%v)", rec.Code, tc.status, err)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("problem body: %v: %s", err, rec.Body)
			}
			if p.Status != tc.status || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("problem %+v, want status %d and detail containing %q", p, tc.status, tc.detail)
			}
		})
	}
}

// FuzzDecodeJSON drives request-body decoding (what POST /api/v1/certificates
// does before it reaches the RA): it never panics, refusals are Malformed
// (400) or TooLarge (413) problems, and what it accepts is exactly one JSON
// value no larger than the limit.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"profile":"web","csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n","ttl":"24h"}`,
		`{"profile":"web","csr":"x","owner":"o","labels":{"team":"a"}}`,
		`{"profile":"web","ttl":"30d"}`,
		`{"profile":"web"}{"profile":"web"}`,
		`{"profile":"web"}]`,
		`{"evil":1}`,
		`{"labels":{"a":[[[[[]]]]]}}`,
		`null`,
		`"\u0000"`,
		``,
		`{"profile":"` + strings.Repeat("a", testLimit) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, rec, err := decodeVia(body, testLimit)
		if err != nil {
			switch k := fail.KindOf(err); {
			case k == fail.TooLarge && rec.Code == 413 && len(body) > testLimit:
			case k == fail.Malformed && rec.Code == 400:
			default:
				t.Fatalf("refusal of kind %v, status %d: %v", k, rec.Code, err)
			}
			var fe *fail.Error
			if !errors.As(err, &fe) || fe.Msg == "" || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("refusal is not a problem with a detail: %v", err)
			}
			return
		}
		if len(body) > testLimit {
			t.Fatalf("accepted %d bytes over the %d-byte limit", len(body), testLimit)
		}
		if !json.Valid(body) {
			t.Fatalf("accepted a body that is not exactly one JSON value: %q", body)
		}
		// What was accepted survives the TTL parse without panicking.
		if req.TTL != "" {
			_, _ = parseDuration(req.TTL)
		}
	})
}
