package libp2p

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

func TestSmoke(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	start := time.Now()
	sw := newTestSwarm(t, ctx, 20, nil)
	t.Logf("swarm of 20 up in %v", time.Since(start))
	start = time.Now()
	a := openStore(t, ctx, sw, nil)
	b := openStore(t, ctx, sw, nil)
	t.Logf("two clients joined in %v (table %d)", time.Since(start), a.n.dht.RoutingTable().Size())
	start = time.Now()
	v, err := a.CompareAndPut(ctx, "k", 0, []byte("one"))
	require.NoError(t, err)
	t.Logf("create in %v", time.Since(start))
	start = time.Now()
	e, err := b.Get(ctx, "k")
	require.NoError(t, err)
	t.Logf("get in %v", time.Since(start))
	require.Equal(t, backend.Entry{Value: []byte("one"), Version: v}, e)
	_, err = b.CompareAndPut(ctx, "k", 0, []byte("two"))
	cur, ok := backend.CurrentEntry(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, v, cur.Version)
	_, err = b.CompareAndPut(ctx, "absent", 5, []byte("x"))
	require.ErrorIs(t, err, backend.ErrConflict)
	_, err = b.Get(ctx, "absent")
	require.ErrorIs(t, err, backend.ErrNotFound)
	v2, err := b.CompareAndPut(ctx, "k", v, []byte("two"))
	require.NoError(t, err)
	e, err = a.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, backend.Entry{Value: []byte("two"), Version: v2}, e)
}
