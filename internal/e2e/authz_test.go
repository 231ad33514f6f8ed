package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/client"
)

var tokenRE = regexp.MustCompile(`^sgl_([0-9a-f]{16})_[A-Za-z0-9_-]+$`)

// createToken runs `sigil token create` as admin and returns the token and its ID.
func (in *instance) createToken(args ...string) (string, string) {
	in.t.Helper()
	out, errOut, code := in.cli(append([]string{"token", "create"}, args...)...)
	if code != 0 {
		in.t.Fatalf("token create %v: exit %d: %s", args, code, errOut)
	}
	tok := strings.TrimSpace(out)
	m := tokenRE.FindStringSubmatch(tok)
	if m == nil || strings.Count(out, "\n") != 1 {
		in.t.Fatalf("token create printed %q; want one sgl_<id>_<secret> line", out)
	}
	if !strings.Contains(errOut, "token "+m[1]) {
		in.t.Errorf("token create stderr %q does not name token %s", errOut, m[1])
	}
	return tok, m[1]
}

// TestAuthorization: role enforcement, expiry and revocation of tokens, as
// the CLI user sees them.
func TestAuthorization(t *testing.T) {
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	in.applyProfiles()
	work := t.TempDir()
	profiles := writeFile(t, work, "profiles.yaml", []byte(testProfiles))
	operator, opID := in.createToken("--role", "operator", "--ttl", "720h")
	auditor, audID := in.createToken("--role", "auditor", "--name", "compliance")

	issueArgs := func(name string) []string {
		return []string{"cert", "issue", "--profile", "web", "--name", name, "--key-out", filepath.Join(work, name+".key"), "--out", filepath.Join(work, name+".crt")}
	}
	for _, c := range []struct {
		name   string
		token  string
		args   []string
		status string // "": allowed
	}{
		{"operator issues", operator, issueArgs("op.test"), ""},
		{"operator lists certificates", operator, []string{"cert", "list"}, ""},
		{"operator applies profiles", operator, []string{"profile", "apply", "-f", profiles}, "403"},
		{"operator creates a token", operator, []string{"token", "create", "--role", "admin"}, "403"},
		{"operator lists tokens", operator, []string{"token", "list"}, "403"},
		{"operator verifies audit", operator, []string{"audit", "verify"}, "403"},
		{"auditor verifies audit", auditor, []string{"audit", "verify"}, ""},
		{"auditor lists audit", auditor, []string{"audit", "list"}, ""},
		{"auditor lists tokens", auditor, []string{"token", "list"}, ""},
		{"auditor issues", auditor, issueArgs("aud.test"), "403"},
		{"auditor applies profiles", auditor, []string{"profile", "apply", "-f", profiles}, "403"},
		{"auditor creates a token", auditor, []string{"token", "create", "--role", "operator"}, "403"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := in.cliToken(c.token, c.args...)
			if c.status == "" {
				if code != 0 {
					t.Fatalf("exit %d: %s%s", code, errOut, out)
				}
				return
			}
			if code != 2 || !strings.Contains(errOut, c.status) {
				t.Fatalf("exit %d, stderr %q; want exit 2 with %s", code, errOut, c.status)
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("error is not one line: %q", errOut)
			}
		})
	}
	if strings.Contains(in.mustCLI("audit", "verify"), "OK") == false {
		t.Fatal("audit chain does not verify")
	}
	// Every refusal above was audited, under the token that asked.
	var evs []audit.Event
	if err := json.Unmarshal([]byte(in.mustCLI("audit", "list", "-o", "json")), &evs); err != nil {
		t.Fatal(err)
	}
	refused := map[string]int{}
	for _, e := range evs {
		if e.Result == audit.ResultRefused {
			refused[e.Actor]++
		}
	}
	if refused["token:"+opID] != 4 || refused["token:"+audID+"(compliance)"] != 3 {
		t.Errorf("refused events by actor = %v; want 4 for the operator, 3 for the auditor", refused)
	}

	t.Run("short ttl expires", func(t *testing.T) {
		start := time.Now()
		short, _ := in.createToken("--role", "auditor", "--ttl", "1s")
		c, err := client.New(in.srv.APIURL, short, filepath.Join(in.dir, "root.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Do(context.Background(), "GET", "/api/v1/whoami", nil, nil); err != nil && time.Since(start) < 900*time.Millisecond {
			t.Fatalf("fresh 1s token refused: %v", err)
		}
		time.Sleep(time.Until(start.Add(2 * time.Second)))
		_, errOut, code := in.cliToken(short, "audit", "list")
		if code != 2 || !strings.Contains(errOut, "401") {
			t.Fatalf("expired token: exit %d, %q; want exit 2 with 401", code, errOut)
		}
	})

	t.Run("revoked token stops at once", func(t *testing.T) {
		tok, id := in.createToken("--role", "operator")
		if _, errOut, code := in.cliToken(tok, "cert", "list"); code != 0 {
			t.Fatalf("fresh token: exit %d %s", code, errOut)
		}
		in.mustCLI("token", "revoke", id)
		if _, errOut, code := in.cliToken(tok, "cert", "list"); code != 2 || !strings.Contains(errOut, "401") {
			t.Fatalf("revoked token: exit %d, %q; want exit 2 with 401", code, errOut)
		}
		if _, errOut, code := in.cli("token", "revoke", "0123456789abcdef"); code != 2 || !strings.Contains(errOut, "404") {
			t.Errorf("revoking an unknown token: exit %d, %q; want 2 with 404", code, errOut)
		}
	})

	t.Run("missing token", func(t *testing.T) {
		out, errOut, code := in.cliToken("", "cert", "list")
		if code != 1 || out != "" {
			t.Fatalf("exit %d, stdout %q; want exit 1 and nothing on stdout", code, out)
		}
		if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 || !strings.Contains(errOut, "SIGIL_TOKEN") {
			t.Errorf("stderr %q: want one line naming SIGIL_TOKEN", errOut)
		}
	})

	t.Run("bad token", func(t *testing.T) {
		if _, errOut, code := in.cliToken("sgl_0123456789abcdef_nope", "cert", "list"); code != 2 || !strings.Contains(errOut, "401") {
			t.Errorf("unknown token: exit %d, %q; want 2 with 401", code, errOut)
		}
	})
}
