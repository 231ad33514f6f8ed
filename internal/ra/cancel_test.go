package ra_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sigil-pki/sigil/internal/audit"
	"github.com/sigil-pki/sigil/internal/identity"
	"github.com/sigil-pki/sigil/internal/ra"
	"github.com/sigil-pki/sigil/internal/store"
)

// TestConcurrentIssueWithCancellation: clients that give up at random
// moments (request contexts cancelled mid-issuance) must not break what the
// store and the audit log say about everybody else: every certificate
// returned is recorded as issued, every issued record has exactly one
// success event and vice versa, and the chain verifies.
func TestConcurrentIssueWithCancellation(t *testing.T) {
	const workers, each = 16, 12
	e := newEnv(t)
	before := e.head()

	type result struct {
		name       string
		out        *ra.Issued
		err        error
		cancelable bool
	}
	results := make(chan result, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("c%d-%d.test", w, i)
				req := ra.IssueRequest{Profile: "web", CSR: csr(t, name)}
				ctx, cancel := context.WithCancel(e.ctx)
				cancelable := (w+i)%2 == 0
				if cancelable {
					// Half the callers give up after a random moment.
					d := time.Duration(rand.IntN(4000)) * time.Microsecond
					time.AfterFunc(d, cancel)
				}
				out, err := e.ra.Issue(ctx, ra.Caller{}, req)
				cancel()
				results <- result{name, out, err, cancelable}
			}
		})
	}
	wg.Wait()
	close(results)

	returned := map[identity.Serial]*ra.Issued{}
	failed, failedNames := 0, map[string]error{}
	for r := range results {
		if r.err != nil {
			failed++
			failedNames[r.name] = r.err
			if !r.cancelable {
				// Another client's cancellation must not fail this one.
				t.Errorf("an issuance nobody cancelled failed: %v (cause: %v)", r.err, errors.Unwrap(r.err))
			}
			if r.out != nil {
				t.Errorf("Issue returned both a certificate and %v", r.err)
			}
			continue
		}
		returned[r.out.Record.Serial] = r.out
	}
	t.Logf("%d issued, %d gave up", len(returned), failed)

	// Every certificate handed out is recorded as issued, byte for byte.
	for s, out := range returned {
		rec, err := e.st.GetCertificate(e.ctx, s)
		if err != nil || rec.Status != identity.StatusIssued || !bytes.Equal(rec.DER, parseCert(t, out.CertPEM).Raw) {
			t.Errorf("returned certificate %s: stored %v, %v", s, rec, err)
		}
	}
	// The audit log and the inventory agree.
	successes := map[string]int{}
	evs, err := e.st.ListAudit(e.ctx, store.AuditFilter{AfterSeq: before, Action: "cert.issue"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Result == audit.ResultSuccess {
			successes[ev.Object]++
		}
	}
	issued := e.certs(identity.StatusIssued)
	for _, rec := range issued {
		// Issued and audited as success, yet its requester was told it failed.
		if err, ok := failedNames[rec.CommonName]; ok {
			t.Errorf("certificate %s for %s is issued and audited, but Issue returned %v", rec.Serial, rec.CommonName, err)
		}
		if successes[string(rec.Serial)] != 1 {
			t.Errorf("issued certificate %s has %d success events", rec.Serial, successes[string(rec.Serial)])
		}
	}
	for obj, n := range successes {
		rec, err := e.st.GetCertificate(e.ctx, identity.Serial(obj))
		if err != nil || rec.Status != identity.StatusIssued || n != 1 {
			t.Errorf("audit says %s was issued (%d events) but the store has %v, %v", obj, n, rec, err)
		}
	}
	if len(issued) < len(returned) {
		t.Errorf("%d issued records for %d returned certificates", len(issued), len(returned))
	}
	e.verifyChain()
	// And the store still works.
	e.issue("after-cancellations.test")
	e.verifyChain()
}

// TestCancelledWriterDoesNotFailOthers: a caller that gives up while its
// write is running must fail alone. A trigger makes one token insert slow;
// that caller's context expires during the statement while two ordinary
// issuances queue behind it. They must succeed, and the slow caller's token
// must not exist.
func TestCancelledWriterDoesNotFailOthers(t *testing.T) {
	e := newEnv(t)
	db := e.db()
	if _, err := db.ExecContext(e.ctx, `CREATE TRIGGER slow_token BEFORE INSERT ON tokens
		WHEN NEW.name = 'slowpoke'
		BEGIN SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000) SELECT x FROM c); END`); err != nil {
		t.Fatal(err)
	}
	tokensBefore, _ := e.st.ListTokens(e.ctx)

	slowDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(e.ctx, 500*time.Millisecond)
		defer cancel()
		_, _, err := e.ra.CreateToken(ctx, ra.Caller{}, ra.TokenRequest{Role: identity.RoleAuditor, Name: "slowpoke"})
		slowDone <- err
	}()
	time.Sleep(100 * time.Millisecond) // the slow caller is inside its insert, holding the writer

	type result struct {
		name string
		err  error
	}
	results := make(chan result, 2)
	for _, name := range []string{"queued-1.test", "queued-2.test"} {
		req := ra.IssueRequest{Profile: "web", CSR: csr(t, name)}
		go func() {
			_, err := e.ra.Issue(e.ctx, ra.Caller{}, req)
			results <- result{name, err}
		}()
	}
	if err := <-slowDone; err == nil {
		t.Error("the slow caller succeeded after its deadline")
	}
	for range 2 {
		if r := <-results; r.err != nil {
			t.Errorf("%s: an issuance that nobody cancelled failed: %v (cause: %v)", r.name, r.err, errors.Unwrap(r.err))
		}
	}
	if _, err := db.ExecContext(e.ctx, `DROP TRIGGER slow_token`); err != nil {
		t.Fatal(err)
	}
	if n := len(e.certs(identity.StatusIssued)); n != 2 {
		t.Errorf("%d certificates issued, want 2", n)
	}
	if ts, _ := e.st.ListTokens(e.ctx); len(ts) != len(tokensBefore) {
		t.Errorf("%d tokens, want %d: the cancelled token was stored", len(ts), len(tokensBefore))
	}
	e.verifyChain()
	e.issue("afterwards.test")
	e.verifyChain()
}
