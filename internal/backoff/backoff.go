// Package backoff holds the module's waits between retries: a full-jitter
// exponential backoff and a plain sleep, both cut short by their context.
// Adapters, the core and the test helpers share it (adapters may not
// import core).
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// The full-jitter ceiling starts at Base and doubles with each attempt up
// to Max.
const (
	Base = 100 * time.Microsecond
	Max  = 50 * time.Millisecond
)

// Jitter waits a uniformly random time below min(Max, Base<<attempt) (and
// at least a microsecond), or until ctx ends, whose error it then returns.
func Jitter(ctx context.Context, attempt int) error {
	ceil := Max
	if attempt >= 0 && attempt < 20 {
		ceil = min(Max, Base<<attempt)
	}
	return Sleep(ctx, rand.N(ceil)+time.Microsecond)
}

// Sleep waits d, or until ctx ends, whose error it then returns.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
