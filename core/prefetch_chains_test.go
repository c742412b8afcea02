package core

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// blobGets counts the blob reads (keys x/...) that reach the store.
type blobGets struct {
	backend.Store
	n atomic.Int64
}

func (g *blobGets) Get(ctx context.Context, key string) (backend.Entry, error) {
	if strings.HasPrefix(key, "x/") {
		g.n.Add(1)
	}
	return g.Store.Get(ctx, key)
}

// A publisher-order prefetch follows a tip's Prev only once the tip's
// signature verified: a forged tip whose Prev leads to the
// publisher's real chain costs one read, prefetches nothing, and leaves
// the real segments to delivery; a real tip prefetches its whole chain.
func TestPrefetchChainsStopsAtForged(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store, WithOrdering(PublisherOrder), withoutOpenSegments())
	segs := publishBatches(t, ctx, store, pub, "t", 3, 1) // seqs 1, 2, 3, each stored
	forged := &segment{Publisher: pub.Identity().PublicKey(), Prev: segs[2], First: 4,
		Msgs: []segMsg{{Time: 1, Payload: []byte("m4")}}}
	forged.sign(pub.Identity(), "t", nil)
	forged.Msgs[0].Payload = []byte("forged")
	fref, err := pub.eng.blobs.put(ctx, forged.encode())
	require.NoError(t, err)

	gets := &blobGets{Store: store}
	sc := newClient(t, gets, WithOrdering(PublisherOrder))
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	p := pub.Identity().ID()
	gets.n.Store(0)
	sub.prefetchChains(ctx, []announcement{{Pub: p, Seg: fref, To: 4}})
	require.Empty(t, sub.pre, "nothing behind a forged segment is prefetched")
	require.EqualValues(t, 1, gets.n.Load(), "blob reads: the forged tip only")

	gets.n.Store(0)
	sub.prefetchChains(ctx, []announcement{{Pub: p, Seg: segs[2], To: 3}})
	require.Len(t, sub.pre, 3)
	for i, ref := range segs {
		require.Contains(t, sub.pre, ref)
		require.EqualValues(t, i+1, sub.pre[ref].seg.First)
	}
	require.EqualValues(t, 3, gets.n.Load())
	sub.pre = nil
}
