package core

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// stalling holds every CompareAndPut made while it stalls until the call's
// context ends (the call fails) or unstall is called (the call goes on); it
// counts the calls it held.
type stalling struct {
	backend.Store
	stall   atomic.Bool
	held    atomic.Int64
	release chan struct{}
}

func newStalling(s backend.Store) *stalling {
	return &stalling{Store: s, release: make(chan struct{})}
}

// unstall lets held and later calls through.
func (s *stalling) unstall() {
	s.stall.Store(false)
	close(s.release)
}

func (s *stalling) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if s.stall.Load() {
		s.held.Add(1)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.release:
		}
	}
	return s.Store.CompareAndPut(ctx, key, expect, value)
}

// TestDirectFlushCallerLeaves: a lone Publish writes its batch on its own
// goroutine (the pipeline is idle). When its context ends while that write
// hangs, Publish still returns (the message stays queued), and the run
// goroutine publishes the message once the store answers again: exactly
// once, with its seq.
func TestDirectFlushCallerLeaves(t *testing.T) {
	ctx := testCtx(t)
	store := newStalling(newMem(t))
	pub := newClient(t, store)
	_, err := pub.Publish(ctx, "t", []byte("one"))
	require.NoError(t, err)

	store.stall.Store(true)
	short, cancel := context.WithCancel(ctx)
	go func() {
		for store.held.Load() == 0 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		cancel() // the caller gives up while its own write hangs
	}()
	_, err = pub.Publish(short, "t", []byte("two"))
	var pe *PublishError
	require.ErrorAs(t, err, &pe)
	require.True(t, pe.StillQueued, "%v", err)
	require.True(t, errors.Is(err, context.Canceled), "%v", err)
	require.EqualValues(t, 2, pe.FirstSeq)

	// The pipeline's goroutine may be retrying the batch into the stall
	// already: let it through.
	store.unstall()
	rs, err := pub.Retry(ctx, pe)
	require.NoError(t, err)
	require.EqualValues(t, 2, rs[0].Seq)
	_, err = pub.Publish(ctx, "t", []byte("three"))
	require.NoError(t, err)
	require.Equal(t, []string{"one", "two", "three"}, readAll(t, ctx, store, "t", 3))
}
