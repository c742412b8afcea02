package backoff

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
	require.ErrorIs(t, Jitter(ctx, 30), context.Canceled)
	require.NoError(t, Sleep(context.Background(), time.Microsecond))
	require.NoError(t, Jitter(context.Background(), 0))
	require.NoError(t, Jitter(context.Background(), -1), "a negative attempt waits at most Max")
}
