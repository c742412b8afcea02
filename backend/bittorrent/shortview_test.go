package bittorrent_test

// A write after a read that reached too few nodes for a write quorum (some
// nodes were silent for a while, as answers get lost on a loaded machine).

import (
	"context"
	"crypto/ed25519"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bittorrent"
)

// TestWriteAfterShortRead silences half of an 8-node swarm (they drop
// every query) while a write reads the key: the read reaches ReadQuorum but
// not WriteQuorum nodes, so the write fails, as it must. Once the nodes
// answer again the next write must succeed: the handle must not keep
// writing through the closest set of that short read (it did, for
// ViewTTL, failing every write with no quorum; under load that starved a
// publisher for minutes).
func TestWriteAfterShortRead(t *testing.T) {
	const nodes = 8
	silent := make([]atomic.Bool, nodes)
	g := &guards{}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sw, err := bittorrent.NewSwarmFunc(ctx, nodes, func(i int) bittorrent.NodeOptions {
		return bittorrent.NodeOptions{
			WrapConn: g.wrap,
			OnQuery: func(net.PacketConn, *krpc.Msg, net.Addr) bool {
				return i >= nodes || !silent[i].Load()
			},
		}
	})
	require.NoError(t, err)
	defer sw.Close()
	_, ns, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	st, err := bittorrent.Open(ctx, bittorrent.Options{
		Bootstrap: sw.Addrs(), PrivateKey: ns, WrapConn: g.wrap, Logger: quietLogger(),
		ViewTTL: time.Hour,
	})
	require.NoError(t, err)
	defer st.Close()

	v, err := st.CompareAndPut(ctx, "k", 0, []byte("one"))
	require.NoError(t, err)
	for i := range nodes / 2 {
		silent[i].Store(true)
	}
	_, err = st.CompareAndPut(ctx, "k", v, []byte("two"))
	require.ErrorIs(t, err, backend.ErrUnavailable, "4 of 8 nodes cannot make a write quorum of 5")
	for i := range nodes / 2 {
		silent[i].Store(false)
	}
	// "two" may have landed on the nodes that answered: a conflict that
	// shows it is an ambiguous write that landed, not a failure here.
	got, err := st.Get(ctx, "k")
	require.NoError(t, err)
	_, err = st.CompareAndPut(ctx, "k", got.Version, []byte("three"))
	require.NoError(t, err, "the silent nodes answer again: the write must reach its quorum")
	require.Empty(t, g.refused())
}
