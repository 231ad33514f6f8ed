package acme

import (
	"net/http"
	"sync"
	"time"
)

// limiter counts new orders per account and per name in fixed windows.
// Counts are per replica: with N replicas a client can reach N times a
// limit (docs/acme.md).
type limiter struct {
	perAccount, perName int
	window              time.Duration
	now                 func() time.Time

	mu     sync.Mutex
	start  time.Time
	counts map[string]int
}

func newLimiter(perAccount, perName int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{perAccount: perAccount, perName: perName, window: window, now: now, counts: map[string]int{}}
}

// take counts one order, or refuses it with rateLimited and Retry-After.
func (l *limiter) take(account string, names []string) *Problem {
	if l.perAccount <= 0 && l.perName <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.start) >= l.window {
		l.start, l.counts = now, map[string]int{}
	}
	retry := int(l.start.Add(l.window).Sub(now)/time.Second) + 1
	limited := func(what string) *Problem {
		p := prob("rateLimited", http.StatusTooManyRequests, "too many new orders for %s; retry after %d s", what, retry)
		p.retryAfter = retry
		return p
	}
	if l.perAccount > 0 && l.counts["a:"+account] >= l.perAccount {
		return limited("this account")
	}
	if l.perName > 0 {
		for _, n := range names {
			if l.counts["n:"+n] >= l.perName {
				return limited(n)
			}
		}
	}
	l.counts["a:"+account]++
	for _, n := range names {
		l.counts["n:"+n]++
	}
	return nil
}
