package ra_test

import (
	"bytes"
	"context"
	"database/sql/driver"
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
	"modernc.org/sqlite"
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

// sqlHooks lets a trigger call back into the test at an exact point of a
// statement: sigil_test_hook(name) runs the hook registered under name.
var (
	sqlHooksOnce sync.Once
	sqlHooksMu   sync.Mutex
	sqlHooks     = map[string]func(){}
)

func setSQLHook(name string, f func()) {
	sqlHooksMu.Lock()
	defer sqlHooksMu.Unlock()
	sqlHooks[name] = f
}

// registerSQLHook must run before the store is opened: the driver adds
// functions to connections it opens afterwards.
func registerSQLHook() {
	sqlHooksOnce.Do(func() {
		sqlite.MustRegisterScalarFunction("sigil_test_hook", 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			name, _ := args[0].(string)
			sqlHooksMu.Lock()
			f := sqlHooks[name]
			sqlHooksMu.Unlock()
			if f != nil {
				f()
			}
			return int64(0), nil
		})
	})
}

// TestCancelledWriterDoesNotFailOthers: a caller that gives up while its
// write is running must fail alone. Its context is cancelled from inside its
// own token insert (a trigger calls back into the test), while three
// bystanders wait for the writer. Everyone but the cancelled caller must
// succeed, and nobody may be told it failed while its token was stored and
// audited (SQLite rolls back a whole transaction when a write in it is
// interrupted, and writers may share one).
func TestCancelledWriterDoesNotFailOthers(t *testing.T) {
	registerSQLHook()
	for _, c := range []struct {
		name   string
		holder bool // another writer holds the transaction first, so the cancelled caller joins its group
	}{
		{"cancelled caller joins a shared transaction", true},
		{"cancelled caller writes alone, others queued", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			db := e.db()
			// The hook runs first; the count gives SQLite's progress
			// handler (which delivers the cancellation) steps to run on.
			if _, err := db.ExecContext(e.ctx, `CREATE TRIGGER hook_token BEFORE INSERT ON tokens BEGIN
				SELECT sigil_test_hook(NEW.name);
				SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x FROM c);
				END`); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(e.ctx)
			defer cancel()
			entered, release := make(chan struct{}), make(chan struct{})
			block := func() { close(entered); <-release }
			cancelSelf := func() {
				cancel()
				time.Sleep(50 * time.Millisecond) // the driver's watcher flags the statement
			}
			first := "cancelled"
			if c.holder {
				first = "holder"
				setSQLHook("holder", block)
				setSQLHook("cancelled", cancelSelf)
			} else {
				setSQLHook("cancelled", func() { block(); cancelSelf() })
			}
			defer setSQLHook("holder", nil)
			defer setSQLHook("cancelled", nil)

			type result struct {
				name string
				err  error
			}
			results := make(chan result, 5)
			run := func(ctx context.Context, name string) {
				go func() {
					_, _, err := e.ra.CreateToken(ctx, ra.Caller{}, ra.TokenRequest{Role: identity.RoleAuditor, Name: name})
					results <- result{name, err}
				}()
			}
			names := []string{first}
			if c.holder {
				run(e.ctx, "holder")
			} else {
				run(ctx, "cancelled")
			}
			<-entered // the first writer is inside its insert, holding the writer
			if c.holder {
				names = append(names, "cancelled")
				run(ctx, "cancelled")
				time.Sleep(20 * time.Millisecond)
			}
			for i := range 3 {
				names = append(names, fmt.Sprintf("bystander-%d", i))
				run(e.ctx, names[len(names)-1])
			}
			time.Sleep(100 * time.Millisecond) // everyone queues for the writer
			close(release)

			got := map[string]error{}
			for range names {
				r := <-results
				got[r.name] = r.err
			}
			stored := map[string]bool{}
			ts, err := e.st.ListTokens(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range ts {
				stored[tok.Name] = true
			}
			for _, name := range names {
				err := got[name]
				switch {
				case name == "cancelled":
					if err == nil || stored[name] {
						t.Errorf("cancelled caller: err %v, stored %v; want an error and nothing stored", err, stored[name])
					}
				case err != nil && stored[name]:
					t.Errorf("%s was told it failed (%v), yet its token is stored and audited", name, err)
				case err != nil:
					t.Errorf("%s, which nobody cancelled, failed: %v", name, err)
				case !stored[name]:
					t.Errorf("%s succeeded but its token is not stored", name)
				}
			}
			if _, err := db.ExecContext(e.ctx, `DROP TRIGGER hook_token`); err != nil {
				t.Fatal(err)
			}
			e.verifyChain()
			e.issue("afterwards.test")
			e.verifyChain()
		})
	}
}
