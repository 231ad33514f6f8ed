package agent

import (
	"math/rand/v2"
	"time"
)

// RenewAt is when to renew a certificate valid from nb to na: at fraction
// of its lifetime, moved earlier by up to jitter of the lifetime (uniform),
// so a fleet issued at once does not renew at once. u is a uniform random
// number in [0, 1) (injected for tests).
func RenewAt(nb, na time.Time, fraction, jitter, u float64) time.Time {
	life := na.Sub(nb)
	f := fraction - jitter*u
	if f < 0.05 {
		f = 0.05
	}
	return nb.Add(time.Duration(float64(life) * f))
}

// Backoff is the wait before retry number n (0-based) of a failed request
// for a certificate of lifetime life: exponential from 1s, capped at a tenth
// of the lifetime (between 2s and 5m) so several retries fit before expiry,
// with equal jitter (half fixed, half random) so a fleet that failed
// together does not retry together.
func Backoff(n int, life time.Duration, u float64) time.Duration {
	maxWait := min(max(life/10, 2*time.Second), 5*time.Minute)
	d := time.Second
	for i := 0; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	return d/2 + time.Duration(float64(d/2)*u)
}

func uniform() float64 { return rand.Float64() }
