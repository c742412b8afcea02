package core

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDurableFloorPinsReclaim: with no WithDurableFloor hook, a durable
// subscriber's acknowledged position still bounds reclaiming on a store
// with backend.Deleter, and when it comes back after retention moved far
// past it, each publisher's missed range is reported exactly (the one its
// cursor does not name is placed by the dropped announcements' From) and
// everything retained follows in order.
func TestDurableFloorPinsReclaim(t *testing.T) {
	ctx := testCtx(t)
	st := newTrackStore()
	defer st.Close()
	opts := []Option{WithRetention(Retention{MaxMessages: 20}), WithFoldWindow(4)}
	a, b := newClient(t, st, opts...), newClient(t, st, opts...)
	publishN(t, ctx, a, "t", "a", 5, 1)
	publishN(t, ctx, b, "t", "b", 3, 1)

	id, err := GenerateIdentity()
	require.NoError(t, err)
	first := newClientAs(t, st, id, opts...)
	sub, err := first.Subscribe(ctx, "t", FromStart(), Durable("d"), WithoutPush())
	require.NoError(t, err)
	got := receive(t, ctx, first, sub, 8)
	require.NoError(t, sub.AckSync(ctx, got[7]))
	require.NoError(t, first.Close(ctx))

	for range 30 { // 60 announcements, far past retention
		publishN(t, ctx, a, "t", "a", 1, 1)
		publishN(t, ctx, b, "t", "b", 1, 1)
	}
	tk := newTopicKeys("t")
	cs, _, err := a.eng.readCoord(ctx, tk)
	require.NoError(t, err)
	ps, err := a.eng.durablePositions(ctx, tk, cs)
	require.NoError(t, err)
	require.Len(t, ps, 1)
	idx := ps[0].Acked.index
	require.Greater(t, cs.RetainFrom, idx, "retention moved past the durable position")
	require.LessOrEqual(t, cs.ReclaimedTo, idx, "reclaimed below a durable subscriber's position")

	second := newClientAs(t, st, id, opts...)
	sub2, err := second.Subscribe(ctx, "t", Durable("d"), WithoutPush())
	require.NoError(t, err)
	info, err := second.Info(ctx, "t")
	require.NoError(t, err)
	msgs := receive(t, ctx, second, sub2, int(info.RetainedMessages))
	gaps := map[PublisherID]Gap{}
	for len(gaps) < 2 {
		select {
		case g := <-sub2.Gaps():
			require.NotContains(t, gaps, g.Publisher, "one gap per publisher")
			gaps[g.Publisher] = g
		case <-ctx.Done():
			t.Fatalf("gaps: got %v", gaps)
		}
	}
	next := map[PublisherID]uint64{a.Identity().ID(): 6, b.Identity().ID(): 4}
	for p, g := range gaps {
		require.Equal(t, next[p], g.From, "gap of %s starts right after the acked position", p)
		require.Equal(t, reasonRetention, g.Reason)
		next[p] = g.To + 1
	}
	for _, m := range msgs {
		require.Equal(t, next[m.PublisherID], m.Seq, "message of %s", m.PublisherID)
		next[m.PublisherID]++
	}
	require.EqualValues(t, 36, next[a.Identity().ID()])
	require.EqualValues(t, 34, next[b.Identity().ID()])
}
