package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports pins the agent's place in the layout: it runs on machines,
// talks HTTPS, and must not pull in the server, the RA, the store or the API.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/sigil-pki/sigil/internal/agent").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"internal/server", "internal/ra", "internal/store", "internal/api", "internal/policy", "internal/ca", "internal/lint"} {
			banned = "github.com/sigil-pki/sigil/" + banned
			if dep == banned || strings.HasPrefix(dep, banned+"/") || strings.HasPrefix(dep, "modernc.org/sqlite") || strings.HasPrefix(dep, "github.com/jackc/pgx") {
				t.Errorf("internal/agent depends on %s", dep)
			}
		}
	}
}
