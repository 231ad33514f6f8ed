package acme

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/sigil-pki/sigil/internal/store"
)

// limiter counts new orders per account and per name in fixed windows
// (aligned on multiples of the window), in the store: every replica counts
// in the same rows, inside the order's own transaction, so N replicas allow
// the limit once, not N times, and a refused or failed order counts nothing.
type limiter struct {
	perAccount, perName int
	window              time.Duration
	now                 func() time.Time
}

func newLimiter(perAccount, perName int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{perAccount: perAccount, perName: perName, window: window, now: now}
}

// take counts one order in tx, or refuses it with rateLimited and
// Retry-After (the end of the window).
func (l *limiter) take(ctx context.Context, tx store.Tx, account string, names []string) error {
	type key struct {
		k     string
		limit int
		what  string
	}
	var keys []key
	if l.perAccount > 0 {
		keys = append(keys, key{"a:" + account, l.perAccount, "this account"})
	}
	if l.perName > 0 {
		for _, n := range names {
			keys = append(keys, key{"n:" + n, l.perName, n})
		}
	}
	if len(keys) == 0 {
		return nil
	}
	// One lock order for every transaction: no deadlock between two orders
	// sharing names.
	slices.SortFunc(keys, func(a, b key) int {
		switch {
		case a.k < b.k:
			return -1
		case a.k > b.k:
			return 1
		}
		return 0
	})
	now := l.now().UTC()
	start := now.Truncate(l.window)
	for _, k := range keys {
		n, ok, err := tx.TakeACMERate(ctx, k.k, start, k.limit)
		if err != nil {
			return fmt.Errorf("counting new orders: %w", err)
		}
		if !ok {
			retry := int(start.Add(l.window).Sub(now)/time.Second) + 1
			p := prob("rateLimited", http.StatusTooManyRequests, "too many new orders for %s (%d of %d in %s); retry after %d s", k.what, n, k.limit, l.window, retry)
			p.retryAfter = retry
			return p
		}
	}
	return nil
}

// purge forgets windows that ended at least one window ago.
func (l *limiter) purge(ctx context.Context, tx store.Tx) error {
	_, err := tx.PurgeACMERates(ctx, l.now().Add(-2*l.window))
	return err
}
