package bittorrent_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bittorrent"
)

// TestRepublish runs nodes whose items expire after 2s: an item whose
// writer keeps its handle open survives several lifetimes (the handle
// re-puts it), one whose writer closed expires.
func TestRepublish(t *testing.T) {
	const lifetime = 2 * time.Second
	g := &guards{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sw, err := bittorrent.NewSwarm(ctx, 10, bittorrent.NodeOptions{RecordLifetime: lifetime, WrapConn: g.wrap})
	require.NoError(t, err)
	defer sw.Close()
	_, ns, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	open := func() *bittorrent.Store {
		st, err := bittorrent.Open(ctx, bittorrent.Options{
			Bootstrap: sw.Addrs(), PrivateKey: ns, WrapConn: g.wrap, Logger: quietLogger(),
			RecordLifetime: lifetime, RepublishInterval: lifetime / 4,
		})
		require.NoError(t, err)
		return st
	}
	keeper, leaver := open(), open()
	defer keeper.Close()
	assert.Equal(t, lifetime, keeper.Capabilities().RecordLifetime)
	vk, err := keeper.CompareAndPut(ctx, "kept", 0, []byte("kept alive"))
	require.NoError(t, err)
	_, err = leaver.CompareAndPut(ctx, "left", 0, []byte("left to expire"))
	require.NoError(t, err)
	require.NoError(t, leaver.Close())

	time.Sleep(3 * lifetime)
	reader := open()
	defer reader.Close()
	e, err := reader.Get(ctx, "kept")
	require.NoError(t, err, "an item whose writer is open outlives the nodes' lifetime")
	assert.Equal(t, backend.Entry{Value: []byte("kept alive"), Version: vk}, e)
	_, err = reader.Get(ctx, "left")
	assert.ErrorIs(t, err, backend.ErrNotFound, "an item nobody re-puts expires")
	assert.Positive(t, keeper.Stats().Republished)
	require.Empty(t, g.refused())
}
