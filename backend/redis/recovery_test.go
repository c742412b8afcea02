package redis

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

func TestRecoversAfterServerKillAndRestart(t *testing.T) {
	local := redistest.StartLocal(t, redistest.LocalOptions{AOF: true, Fsync: "always"})
	s := openStore(t, local.Server(), func(o *Options) { o.DialTimeout = 200 * time.Millisecond })
	ctx := testCtx(t)

	v1 := mustPut(t, s, "k", 0, "before")
	w, err := s.Watch(ctx, "k")
	require.NoError(t, err)

	local.Kill()

	down, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err = s.Get(down, "k")
	require.ErrorIs(t, err, backend.ErrUnavailable)
	_, err = s.CompareAndPut(down, "k", v1, []byte("during"))
	require.ErrorIs(t, err, backend.ErrUnavailable)
	t.Logf("while down (%s): %v", time.Since(start), err)

	local.Start()

	var e backend.Entry
	require.Eventually(t, func() bool {
		e, err = s.Get(ctx, "k")
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "no recovery: %v", err)
	require.Equal(t, backend.Entry{Value: []byte("before"), Version: v1}, e)

	// The watch resubscribes by itself; its first word after the gap is 0
	// ("re-read"), then versions flow again.
	require.Equal(t, backend.Version(0), recvVersion(t, w, 20*time.Second))
	v2 := mustPut(t, s, "k", v1, "after")
	require.Eventually(t, func() bool {
		select {
		case v := <-w:
			return v == v2
		default:
			return false
		}
	}, 10*time.Second, 10*time.Millisecond)
}
