package acme_test

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sigil-pki/sigil/internal/store/postgres/pgtest"
)

// mirror returns a client for c's account that talks to replica e2.
func mirror(c *client, e2 *env) *client {
	m := &client{e: e2, key: c.key, jwk: c.jwk, tp: c.tp, dir: map[string]any{}}
	for k, v := range c.dir {
		if s, ok := v.(string); ok {
			v = strings.Replace(s, c.e.api, e2.api, 1)
		}
		m.dir[k] = v
	}
	m.kid = strings.Replace(c.kid, c.e.api, e2.api, 1)
	return m
}

func orderFor(name string) map[string]any {
	return map[string]any{"identifiers": []map[string]string{{"type": "dns", "value": name}}}
}

// TestRateLimitsAcrossReplicas: two replicas on one PostgreSQL database
// share the per-account and per-name counts, so the limits hold for the
// pair, not per replica; refused orders are not stored.
func TestRateLimitsAcrossReplicas(t *testing.T) {
	if os.Getenv("SIGIL_TEST_POSTGRES_DSN") == "" {
		t.Skip("SIGIL_TEST_POSTGRES_DSN is not set: skipping the PostgreSQL replica test")
	}
	db := pgtest.FreshDatabase(t)
	e1 := newEnv(t, envOpts{db: db, perAccount: 3, perName: 2})
	e2 := newEnv(t, envOpts{db: db, dataDir: e1.dir, perAccount: 3, perName: 2})

	a1 := newClient(t, e1)
	a1.register(nil)
	a2 := mirror(a1, e2)
	a1.newOrder("x1.test")
	a2.newOrder("x2.test")
	a1.newOrder("x3.test")
	for i, c := range []*client{a2, a1} {
		resp, body := c.post(c.url("newOrder"), orderFor("x4.test"))
		wantProblem(t, "fourth order of the account on replica "+strconv.Itoa(2-i), resp, body, "rateLimited")
		if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra <= 0 || ra > 3601 {
			t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
	}
	ids, err := e1.srv.Store().ListACMEOrderIDs(t.Context(), a1.kid[strings.LastIndex(a1.kid, "/")+1:], 100)
	if err != nil || len(ids) != 3 {
		t.Fatalf("stored orders of the limited account: %d %v, want 3", len(ids), err)
	}

	// Per name: x1.test was ordered once on replica 1; one more order for
	// it is allowed (on replica 2), the third is not (on replica 1).
	b := newClient(t, e2)
	b.register(nil)
	b.newOrder("x1.test")
	c := newClient(t, e1)
	c.register(nil)
	resp, body := c.post(c.url("newOrder"), orderFor("x1.test"))
	wantProblem(t, "third order naming x1.test", resp, body, "rateLimited")
	if !strings.Contains(string(body), "x1.test") {
		t.Errorf("the problem should name the limited name: %s", body)
	}
	c.newOrder("x5.test") // other names are not limited

	// Concurrent orders of one account on both replicas: exactly the
	// limit (3) are created, whatever the interleaving.
	d := newClient(t, e1)
	d.register(nil)
	// Connections dialled for the burst but never used stay "new" on the
	// server, which then waits 5 s for them at shutdown: close them first.
	t.Cleanup(func() { e1.http.CloseIdleConnections(); e2.http.CloseIdleConnections() })
	codes := make(chan int, 8)
	var wg sync.WaitGroup
	for i := range 8 {
		m := mirror(d, []*env{e1, e2}[i%2])
		wg.Go(func() {
			resp, _ := m.post(m.url("newOrder"), orderFor("y"+strconv.Itoa(i)+".test"))
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	created, limited := 0, 0
	for code := range codes {
		switch code {
		case 201:
			created++
		case 429:
			limited++
		}
	}
	if created != 3 || limited != 5 {
		t.Fatalf("8 concurrent orders over two replicas: %d created, %d rate-limited; want 3 and 5", created, limited)
	}
}
