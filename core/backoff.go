package core

// Retrying transient engine errors, with full-jitter exponential backoff.

import (
	"context"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/backoff"
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
		if serr := sleepJitter(ctx, attempt+4); serr != nil {
			return fmt.Errorf("%w (last error: %w)", serr, err)
		}
	}
}

// sleepJitter waits a full-jitter exponential backoff (backoff.Jitter).
func sleepJitter(ctx context.Context, attempt int) error { return backoff.Jitter(ctx, attempt) }
