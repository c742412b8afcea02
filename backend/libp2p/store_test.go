package libp2p

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// TestRecordsAreRefreshed: storing nodes expire records after
// RecordLifetime; an open handle re-puts what it wrote, so its record
// outlives several lifetimes, while a record nobody refreshes expires.
func TestRecordsAreRefreshed(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	const life = 2 * time.Second
	sw := newTestSwarm(t, ctx, 5, func(o *SwarmOptions) { o.RecordLifetime = life })
	keeper := openStore(t, ctx, sw, func(o *Options) { o.RefreshInterval = life / 4 })
	forgetful := openStore(t, ctx, sw, func(o *Options) { o.RefreshInterval = -1 })
	reader := openStore(t, ctx, sw, func(o *Options) { o.RefreshInterval = -1 })
	v, err := keeper.CompareAndPut(ctx, "kept", 0, []byte("x"))
	require.NoError(t, err)
	_, err = forgetful.CompareAndPut(ctx, "dropped", 0, []byte("y"))
	require.NoError(t, err)
	require.True(t, sleepCtx(ctx, 3*life))
	e, err := reader.Get(ctx, "kept")
	require.NoError(t, err, "a refreshed record expired")
	assert.Equal(t, backend.Entry{Value: []byte("x"), Version: v}, e)
	_, err = reader.Get(ctx, "dropped")
	assert.ErrorIs(t, err, backend.ErrNotFound, "a record nobody refreshed is still there after %v", 3*life)
	assert.NotZero(t, keeper.Stats().Refreshes)
	assert.Equal(t, backend.Capabilities{Consistency: backend.PerNodeCAS, MaxKeySize: DefaultMaxKeySize,
		MaxValueSize: DefaultMaxValueSize, RecordLifetime: life}, keeper.Capabilities())
}

// TestSwarmDataDir: a swarm restarted on the same data directory has the
// same peers and still holds what was written.
func TestSwarmDataDir(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	dir := t.TempDir()
	o := SwarmOptions{Network: "data-" + randomPrefix(), Nodes: 5, DataDir: dir, Logger: quiet}
	sw, err := NewSwarm(ctx, o)
	require.NoError(t, err)
	ids := []peer.ID{sw.PeerID(0), sw.PeerID(4)}
	st, err := Open(ctx, withQuiet(sw.Options()))
	require.NoError(t, err)
	v, err := st.CompareAndPut(ctx, "k", 0, []byte("durable"))
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.NoError(t, sw.Close())

	sw, err = NewSwarm(ctx, o)
	require.NoError(t, err)
	defer sw.Close()
	assert.Equal(t, ids, []peer.ID{sw.PeerID(0), sw.PeerID(4)}, "node identities kept")
	st, err = Open(ctx, withQuiet(sw.Options()))
	require.NoError(t, err)
	defer st.Close()
	e, err := st.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("durable"), Version: v}, e)
}

func withQuiet(o Options) Options {
	o.Logger = quiet
	return o
}

// TestDialGater: a handle refuses, before any packet leaves, to dial an
// address outside its allowed prefixes, and counts it; the swarm's own
// traffic never tries one (newTestSwarm and openStore check the counts).
func TestDialGater(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	sw := newTestSwarm(t, ctx, 3, nil)
	st, err := Open(ctx, withQuiet(sw.Options()))
	require.NoError(t, err)
	defer st.Close()
	far, err := ma.NewMultiaddr("/ip4/192.0.2.1/tcp/4001") // TEST-NET-1
	require.NoError(t, err)
	err = st.Host().Connect(ctx, peer.AddrInfo{ID: sw.PeerID(1), Addrs: []ma.Multiaddr{far}})
	// The peer is connected already (loopback), so Connect may succeed
	// without dialling; a fresh ID must dial.
	other, err2 := peer.Decode("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
	require.NoError(t, err2)
	err = st.Host().Connect(ctx, peer.AddrInfo{ID: other, Addrs: []ma.Multiaddr{far}})
	require.Error(t, err)
	assert.Equal(t, uint64(1), st.Stats().RefusedDials)
}

func TestURI(t *testing.T) {
	o := Options{
		Network: "demo", Bootstrap: []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"},
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Prefix: "p/1", KeyFile: "/tmp/k", Lookup: LookupTable,
		Replicas: 7, WriteQuorum: 5, ReadQuorum: 4, Agree: 3, MaxKeySize: 100, MaxValueSize: 1000, MaxTracked: 10,
		RecordLifetime: time.Hour, RefreshInterval: -1, KeepFor: time.Minute, RPCTimeout: time.Second, ReadGrace: time.Millisecond,
		HintWindow: -1, WatchPoll: time.Second, ConnectTimeout: 3 * time.Second, AllowDial: LoopbackOnly,
	}
	got, err := parseURIString(o.URI())
	require.NoError(t, err)
	assert.Equal(t, o, got)

	for _, bad := range []string{
		"libp2p://host?network=x", "libp2p:opaque", "libp2p:///path", "libp2p://?colour=red",
		"libp2p://?replicas=0", "libp2p://?replicas=x", "libp2p://?network=a&network=b", "libp2p://?lookup=dns",
		"libp2p://?allow_dial=10.0.0.1", "libp2p://?max_value_size=99999999", "libp2p://?replicas=3&write_quorum=4",
		"libp2p://?record_lifetime=-1s",
	} {
		u, err := url.Parse(bad)
		require.NoError(t, err)
		_, err = ParseURI(u)
		assert.True(t, errors.Is(err, backend.ErrBadURI), "%s: %v", bad, err)
	}
	// No bootstrap peer: Open fails with a typed error, quickly.
	ctx := testCtx(t, 10*time.Second)
	_, err = backend.Open(ctx, "libp2p://?network=none")
	require.ErrorIs(t, err, backend.ErrUnavailable)
	_, err = backend.Open(ctx, "libp2p://?bootstrap=/ip4/127.0.0.1/tcp/1")
	require.ErrorIs(t, err, backend.ErrBadURI)
}
