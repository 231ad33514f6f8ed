package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sigil-pki/sigil/internal/api"
	"github.com/sigil-pki/sigil/internal/identity"
)

// TestConcurrentAPIIssuance: 200 issuances from 32 parallel clients through
// the real HTTPS server all succeed with unique serials, are all listed as
// issued, and leave an audit chain that verifies.
func TestConcurrentAPIIssuance(t *testing.T) {
	const total, workers = 200, 32
	in := startServer(t, filepath.Join(t.TempDir(), "data"))
	in.applyProfiles()
	ctx := context.Background()

	type listing struct {
		Count int            `json:"count"`
		Items []api.CertView `json:"items"`
	}
	var before listing
	if err := in.api.Do(ctx, "GET", "/api/v1/certificates?status=issued", nil, &before); err != nil {
		t.Fatal(err)
	}

	csrs := make(chan []byte, total)
	for i := range total {
		csrs <- newCSR(t, identity.KeyECDSAP256, fmt.Sprintf("host-%d.test", i))
	}
	close(csrs)
	var (
		mu      sync.Mutex
		serials = map[identity.Serial]int{}
		errs    []error
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for csr := range csrs {
				var resp api.IssueResponse
				err := in.api.Do(ctx, "POST", "/api/v1/certificates", api.IssueRequest{Profile: "web", CSR: string(csr), TTL: "24h"}, &resp)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					serials[resp.Serial]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(serials) != total {
		t.Errorf("%d distinct serials from %d issuances", len(serials), total)
	}
	for s, n := range serials {
		if n != 1 {
			t.Errorf("serial %s returned %d times", s, n)
		}
	}

	var after listing
	if err := in.api.Do(ctx, "GET", "/api/v1/certificates?status=issued", nil, &after); err != nil {
		t.Fatal(err)
	}
	if after.Count != before.Count+total || len(after.Items) != after.Count {
		t.Errorf("issued count %d (before %d), want %d", after.Count, before.Count, before.Count+total)
	}
	var web listing
	if err := in.api.Do(ctx, "GET", "/api/v1/certificates?status=issued&profile=web", nil, &web); err != nil {
		t.Fatal(err)
	}
	for _, c := range web.Items {
		if serials[c.Serial] != 1 {
			t.Errorf("listed certificate %s was not returned by an issuance", c.Serial)
		}
	}
	if web.Count != total {
		t.Errorf("%d issued under web, want %d", web.Count, total)
	}
	var planned listing
	if err := in.api.Do(ctx, "GET", "/api/v1/certificates?status=planned", nil, &planned); err != nil || planned.Count != 0 {
		t.Errorf("%d certificates left planned (%v)", planned.Count, err)
	}

	out := in.mustCLI("audit", "verify")
	if !strings.Contains(out, "OK") {
		t.Fatalf("audit verify: %s", out)
	}
	var events struct {
		Count int `json:"count"`
	}
	if err := in.api.Do(ctx, "GET", "/api/v1/audit?action=cert.issue&limit=100000", nil, &events); err != nil {
		t.Fatal(err)
	}
	if events.Count != before.Count+total {
		t.Errorf("%d cert.issue events, want %d", events.Count, before.Count+total)
	}
}
