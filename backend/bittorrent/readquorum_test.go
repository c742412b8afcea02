package bittorrent_test

// A Get on a cached closest set asks the ReadQuorum nearest nodes first,
// and the rest of the set only when one of those fails.

import (
	"context"
	"crypto/ed25519"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/int160"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bittorrent"
)

// getCounter records the destination of every get query sent through the
// socket it wraps.
type getCounter struct {
	net.PacketConn

	mu sync.Mutex
	to []string
}

// WriteTo implements net.PacketConn.
func (c *getCounter) WriteTo(p []byte, addr net.Addr) (int, error) {
	var m krpc.Msg
	if bencode.Unmarshal(p, &m) == nil && m.Y == "q" && m.Q == "get" {
		c.mu.Lock()
		c.to = append(c.to, addr.String())
		c.mu.Unlock()
	}
	return c.PacketConn.WriteTo(p, addr)
}

// take returns the destinations recorded since the last take and forgets
// them.
func (c *getCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.to
	c.to = nil
	return out
}

// readQuorumSetup is an 8-node swarm (every node is in the closest set of
// every target), a writer, and a reader whose get queries are counted.
// The writer writes "one", the reader reads it (a traversal, which caches
// the closest set), then the writer writes "two", which the reader's own
// memory does not hold.
type readQuorumSetup struct {
	sw      *bittorrent.Swarm
	g       *guards
	reader  *bittorrent.Store
	counter *getCounter
	target  bittorrent.Target
	v2      backend.Version
}

func newReadQuorumSetup(ctx context.Context, t *testing.T, queryTimeout time.Duration) *readQuorumSetup {
	t.Helper()
	const key = "k"
	g := &guards{}
	sw := newSwarm(t, bittorrent.DefaultReplicas, g)
	_, ns, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	w, err := bittorrent.Open(ctx, bittorrent.Options{Bootstrap: sw.Addrs(), PrivateKey: ns, WrapConn: g.wrap, Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	counter := &getCounter{}
	r, err := bittorrent.Open(ctx, bittorrent.Options{
		Bootstrap: sw.Addrs(), PublicKey: ns.Public().(ed25519.PublicKey), Logger: quietLogger(),
		ViewTTL: time.Hour, QueryTimeout: queryTimeout,
		WrapConn: func(pc net.PacketConn) net.PacketConn {
			counter.PacketConn = g.wrap(pc)
			return counter
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })

	v1, err := w.CompareAndPut(ctx, key, 0, []byte("one"))
	require.NoError(t, err)
	e, err := r.Get(ctx, key)
	require.NoError(t, err)
	require.Equal(t, v1, e.Version)
	require.EqualValues(t, 1, r.Stats().Traversals, "the first read traverses and caches the closest set")
	v2, err := w.CompareAndPut(ctx, key, v1, []byte("two"))
	require.NoError(t, err)
	counter.take()
	return &readQuorumSetup{
		sw: sw, g: g, reader: r, counter: counter, v2: v2,
		target: bittorrent.MutableTarget(ns.Public().(ed25519.PublicKey), bittorrent.KeySalt(nil, key)),
	}
}

// nearest returns the swarm's nodes, nearest to target first.
func (s *readQuorumSetup) nearest() []*bittorrent.Node {
	t := int160.FromByteArray(s.target)
	nodes := s.sw.Nodes()
	slices.SortFunc(nodes, func(a, b *bittorrent.Node) int {
		return int160.FromByteArray(a.ID()).Distance(t).Cmp(int160.FromByteArray(b.ID()).Distance(t))
	})
	return nodes
}

// TestReadQuorumFirst: a Get on a cached closest set sends ReadQuorum get
// queries, to the nearest nodes of the set, not one to every replica.
func TestReadQuorumFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newReadQuorumSetup(ctx, t, 0)
	before := s.reader.Stats()

	e, err := s.reader.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("two"), Version: s.v2}, e)
	sent := s.counter.take()
	const readQuorum = bittorrent.DefaultReplicas - (bittorrent.DefaultReplicas/2 + 1) + 1
	require.Len(t, sent, readQuorum, "get queries of a read on a cached set: %v", sent)
	var want []string
	for _, nd := range s.nearest()[:readQuorum] {
		want = append(want, nd.Addr().String())
	}
	assert.ElementsMatch(t, want, sent, "the nearest nodes of the set are asked")
	after := s.reader.Stats()
	assert.Equal(t, before.Traversals, after.Traversals)
	assert.Equal(t, before.FirstWaveReads+1, after.FirstWaveReads)
	assert.Equal(t, before.SecondWaves, after.SecondWaves)
	require.Empty(t, s.g.refused())
}

// TestReadSecondWave stops the nearest node of the cached set: the first
// wave then lacks an answer, the rest of the set is asked, and the read
// stands on the seven nodes that answered, without a traversal. The set is
// dropped, so the next Get traverses.
func TestReadSecondWave(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newReadQuorumSetup(ctx, t, 500*time.Millisecond)
	s.nearest()[0].Close()
	before := s.reader.Stats()

	e, err := s.reader.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("two"), Version: s.v2}, e)
	after := s.reader.Stats()
	assert.Equal(t, before.SecondWaves+1, after.SecondWaves)
	assert.Equal(t, before.Traversals, after.Traversals, "the second wave answers the read")
	assert.Equal(t, before.DirectRounds+1, after.DirectRounds)
	assert.Len(t, s.counter.take(), bittorrent.DefaultReplicas, "both waves together ask every node of the set once")

	_, err = s.reader.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, after.Traversals+1, s.reader.Stats().Traversals, "the set with a silent node was dropped")
	require.Empty(t, s.g.refused())
}
