package core

// Retrying transient engine errors, with full-jitter exponential backoff.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// retryable reports whether an error is a transient engine failure worth
// retrying (as opposed to bad input, a closed store or corrupt data).
func retryable(err error) bool { return errors.Is(err, backend.ErrUnavailable) }

// retryIO runs fn until it succeeds, fails with an error that is not
// transient (see retryable), or ctx ends.
func retryIO(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !retryable(err) {
			return err
		}
		if err := sleepJitter(ctx, attempt+4); err != nil {
			return fmt.Errorf("%w (last error: %w)", err, fn())
		}
	}
}

// sleepJitter waits a full-jitter exponential backoff: uniform in
// [0, min(maxBackoff, baseBackoff<<attempt)].
func sleepJitter(ctx context.Context, attempt int) error {
	const baseBackoff, maxBackoff = 100 * time.Microsecond, 50 * time.Millisecond
	ceil := maxBackoff
	if attempt < 20 {
		ceil = min(maxBackoff, baseBackoff<<attempt)
	}
	t := time.NewTimer(rand.N(ceil) + time.Microsecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
