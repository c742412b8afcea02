package redis

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

func TestWatchDeliversAfterCompareAndPut(t *testing.T) {
	s, _ := anyStore(t)
	ctx := testCtx(t)
	w, err := s.Watch(ctx, "k")
	require.NoError(t, err)

	v1 := mustPut(t, s, "k", 0, "a")
	require.Equal(t, v1, recvVersion(t, w, 5*time.Second))
	v2 := mustPut(t, s, "k", v1, "b")
	require.Equal(t, v2, recvVersion(t, w, 5*time.Second))
	require.NoError(t, s.Delete(ctx, "k", v2))
	require.Equal(t, backend.Version(0), recvVersion(t, w, 5*time.Second))

	// A conflict writes nothing and notifies nothing.
	v3 := mustPut(t, s, "k", 0, "c")
	require.Equal(t, v3, recvVersion(t, w, 5*time.Second))
	_, err = s.CompareAndPut(ctx, "k", v1, []byte("stale"))
	require.ErrorIs(t, err, backend.ErrConflict)
	select {
	case v := <-w:
		t.Fatalf("unexpected notification %d", v)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestWatchIsMultiplexedAndPerKey(t *testing.T) {
	s, srv := anyStore(t)
	ctx := testCtx(t)
	a1, err := s.Watch(ctx, "a")
	require.NoError(t, err)
	a2, err := s.Watch(ctx, "a")
	require.NoError(t, err)
	bctx, cancelB := context.WithCancel(ctx)
	b, err := s.Watch(bctx, "b")
	require.NoError(t, err)

	// A second store (another connection) writes; both watchers of a hear it.
	other := openStore(t, srv, func(o *Options) { o.Prefix = s.Prefix() })
	v := mustPut(t, other, "a", 0, "x")
	require.Equal(t, v, recvVersion(t, a1, 5*time.Second))
	require.Equal(t, v, recvVersion(t, a2, 5*time.Second))
	select {
	case got := <-b:
		t.Fatalf("watcher of b got %d for a write to a", got)
	case <-time.After(100 * time.Millisecond):
	}

	// Cancelling b's context closes its channel and drops the subscription.
	cancelB()
	select {
	case _, ok := <-b:
		require.False(t, ok)
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed after cancel")
	}
	admin := srv.Client(t)
	require.Eventually(t, func() bool {
		n, err := admin.PubSubNumSub(ctx, s.RedisKey("b")).Result()
		return err == nil && n[s.RedisKey("b")] == 0
	}, 5*time.Second, 20*time.Millisecond, "b is unsubscribed")
	n, err := admin.PubSubNumSub(ctx, s.RedisKey("a")).Result()
	require.NoError(t, err)
	require.Equal(t, int64(1), n[s.RedisKey("a")], "one connection carries both watchers of a")

	// Watching b again works.
	b2, err := s.Watch(ctx, "b")
	require.NoError(t, err)
	vb := mustPut(t, s, "b", 0, "y")
	require.Equal(t, vb, recvVersion(t, b2, 5*time.Second))
}

func TestWatchCoalescesForSlowReceivers(t *testing.T) {
	s, _ := anyStore(t)
	ctx := testCtx(t)
	w, err := s.Watch(ctx, "k")
	require.NoError(t, err)
	var v backend.Version
	for i := range 50 {
		v = mustPut(t, s, "k", v, string(rune('a'+i%26)))
	}
	// The writer never blocked; the receiver sees at most a couple of
	// notifications, the last of which is the last version.
	deadline := time.After(5 * time.Second)
	for {
		select {
		case got := <-w:
			require.LessOrEqual(t, got, v)
			if got == v {
				return
			}
		case <-deadline:
			t.Fatalf("never saw version %d", v)
		}
	}
}
