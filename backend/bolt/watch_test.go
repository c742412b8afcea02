package bolt

import (
	"context"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recv reads one notification or fails after a while.
func recv(t *testing.T, ch <-chan backend.Version) backend.Version {
	t.Helper()
	select {
	case v, ok := <-ch:
		require.True(t, ok, "watch channel closed unexpectedly")
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
		return 0
	}
}

// requireQuiet checks that ch has nothing to deliver.
func requireQuiet(t *testing.T, ch <-chan backend.Version) {
	t.Helper()
	select {
	case v, ok := <-ch:
		t.Fatalf("unexpected notification %d (open=%v)", v, ok)
	default:
	}
}

// requireClosed waits for ch to be closed, draining a pending value.
func requireClosed(t *testing.T, ch <-chan backend.Version) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed")
		}
	}
}

func TestWatch(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	ch, err := s.Watch(ctx, "k")
	require.NoError(t, err)
	other, err := s.Watch(ctx, "other")
	require.NoError(t, err)
	second, err := s.Watch(ctx, "k")
	require.NoError(t, err)

	v1, err := s.CompareAndPut(ctx, "k", 0, []byte("a"))
	require.NoError(t, err)
	// Notifications are sent before the writer is answered.
	assert.Equal(t, v1, recv(t, ch))
	assert.Equal(t, v1, recv(t, second))
	requireQuiet(t, other)

	// A failed write notifies nobody.
	_, err = s.CompareAndPut(ctx, "k", 0, []byte("conflict"))
	require.ErrorIs(t, err, backend.ErrConflict)
	requireQuiet(t, ch)

	// A slow receiver sees the latest version, coalesced.
	v := v1
	for range 5 {
		v, err = s.CompareAndPut(ctx, "k", v, []byte("b"))
		require.NoError(t, err)
	}
	_, err = s.Update(ctx, "k", func(backend.Entry) ([]byte, error) { return nil, backend.ErrSkipUpdate })
	require.NoError(t, err)
	assert.Equal(t, v, recv(t, ch))
	requireQuiet(t, ch)

	// A delete notifies with version 0.
	require.NoError(t, s.Delete(ctx, "k", v))
	assert.Equal(t, backend.Version(0), recv(t, ch))

	// Cancelling the watch context closes only that channel.
	wctx, cancel := context.WithCancel(ctx)
	cancelled, err := s.Watch(wctx, "k")
	require.NoError(t, err)
	cancel()
	requireClosed(t, cancelled)
	v, err = s.CompareAndPut(ctx, "k", 0, []byte("c"))
	require.NoError(t, err)
	assert.Equal(t, v, recv(t, ch))

	// Close closes every channel.
	require.NoError(t, s.Close())
	requireClosed(t, ch)
	requireClosed(t, second)
	requireClosed(t, other)
}

func TestWatchSeesEveryChangeEventually(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	ch, err := s.Watch(ctx, "k")
	require.NoError(t, err)

	const n = 200
	done := make(chan backend.Version, 1)
	go func() {
		var v backend.Version
		for range n {
			var err error
			v, err = s.Update(ctx, "k", func(backend.Entry) ([]byte, error) { return []byte("x"), nil })
			if err != nil {
				t.Errorf("update: %v", err)
				break
			}
		}
		done <- v
	}()
	last := <-done
	// Whatever was coalesced, the final notification is the final version.
	var got backend.Version
	for got != last {
		got = recv(t, ch)
		require.LessOrEqual(t, got, last)
	}
}
