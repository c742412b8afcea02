package core

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPublisherOrderReclaimKeepsStoreFlat: in publisher order a publisher
// deletes its own segments below its retained Base, so the store stops
// growing; a late subscriber gets exactly the retained messages without a
// gap, and a restarted publisher finds and deletes what its previous run
// left below retention.
func TestPublisherOrderReclaimKeepsStoreFlat(t *testing.T) {
	ctx := testCtx(t)
	st := newTrackStore()
	defer st.Close()
	id, err := GenerateIdentity()
	require.NoError(t, err)
	opts := []Option{WithOrdering(PublisherOrder), WithRetention(Retention{MaxMessages: 100})}
	// Incompressible payloads too large for a head to carry two: every
	// message ends up in a stored segment of its own (sealed when the next
	// one is published), so segments and messages count alike.
	publish := func(c *Client, from, n int) {
		for i := from; i < from+n; i++ {
			pad := make([]byte, openSegMax*6/10)
			_, _ = rand.Read(pad)
			_, err := c.Publish(ctx, "own", append(fmt.Appendf(nil, "message %d ", i), pad...))
			require.NoError(t, err)
		}
	}
	first := newClientAs(t, st, id, append(opts, WithoutReclaim())...)
	publish(first, 1, 600) // a run that reclaims nothing
	require.NoError(t, first.Close(ctx))
	_, before, _ := st.usage("x/")

	pub := newClientAs(t, st, id, opts...)
	publish(pub, 601, 400)
	keys, after, _ := st.usage("x/")
	t.Logf("blobs after 600 unreclaimed messages: %d B; after 400 more with reclaiming: %d B in %d keys; %d segments deleted",
		before, after, keys, pub.Stats().ReclaimedSegments)
	require.GreaterOrEqual(t, pub.Stats().ReclaimedSegments, uint64(900-2*reclaimStep), "the segments below retention of both runs")
	require.Less(t, after, before/2, "the store keeps what retention dropped") // 600 segments before, at most 100+2*reclaimStep after

	late := newClient(t, st, WithOrdering(PublisherOrder))
	sub, err := late.Subscribe(ctx, "own", FromStart(), WithoutPush(), WithBuffer(2000))
	require.NoError(t, err)
	msgs := receive(t, ctx, late, sub, 100)
	require.EqualValues(t, 901, msgs[0].Seq)
	require.EqualValues(t, 1000, msgs[len(msgs)-1].Seq)
	require.Zero(t, late.Stats().Gaps)
	require.Zero(t, late.Stats().Invalid)
}
