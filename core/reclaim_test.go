package core

// Tests of reclaiming in topic order: the store stays flat, the durable
// floor holds, replaced coordinator blobs are deleted.

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReclaimKeepsStoreFlat publishes 4,000 messages (batches of 10) with
// a retention of 200 on a store with Delete: what retention dropped is
// deleted, so the store holds as much after 4,000 messages as after 1,000;
// a late joiner still receives the retained history without a gap, and a
// subscriber that fell behind gets every message either delivered or
// reported as dropped by retention, exactly once.
func TestReclaimKeepsStoreFlat(t *testing.T) {
	ctx := testCtx(t)
	st := newTrackStore()
	defer st.Close()
	opts := []Option{WithRetention(Retention{MaxMessages: 200}), WithFoldWindow(8)}
	pub := newClient(t, st, opts...)
	lagging := newClient(t, st)
	lsub, err := lagging.Subscribe(ctx, "flat", WithoutPush(), WithBuffer(5000))
	require.NoError(t, err)
	const total, batch = 4000, 10
	var at1000 int
	for i := 0; i < total; i += batch {
		payloads := make([][]byte, batch)
		for j := range payloads {
			payloads[j] = fmt.Appendf(nil, "message %d", i+j+1)
		}
		_, err := pub.PublishBatch(ctx, "flat", payloads)
		require.NoError(t, err)
		if i+batch == 1000 {
			_, at1000, _ = st.usage("")
		}
	}
	keys, atEnd, _ := st.usage("")
	t.Logf("store after 1000 messages: %d B; after %d: %d B in %d keys; snapshots reclaimed: %d",
		at1000, total, atEnd, keys, pub.Stats().Reclaimed)
	require.Positive(t, pub.Stats().Reclaimed)
	require.Less(t, atEnd, at1000*13/10, "the store grows with the messages published")

	info, err := pub.Info(ctx, "flat")
	require.NoError(t, err)
	require.GreaterOrEqual(t, info.RetainedMessages, uint64(200))
	late := newClient(t, st)
	sub, err := late.Subscribe(ctx, "flat", FromStart(), WithoutPush(), WithBuffer(5000))
	require.NoError(t, err)
	msgs := receive(t, ctx, late, sub, int(info.RetainedMessages))
	for i, m := range msgs {
		require.EqualValues(t, total-int(info.RetainedMessages)+i+1, m.Seq)
	}
	require.Zero(t, late.Stats().Gaps)
	require.Zero(t, late.Stats().Invalid)

	covered := map[string]int{}
	for attempt := 0; len(covered) < total; attempt++ {
		_, err := lagging.Poll(ctx, "flat")
		require.NoError(t, err)
		drainCovered(lsub, covered)
		require.Less(t, attempt, 100, "lagging subscriber: %d of %d covered", len(covered), total)
	}
	require.Len(t, covered, total)
	for id, n := range covered {
		require.Equal(t, 1, n, "message %s delivered or reported %d times", id, n)
	}
	require.Positive(t, lagging.Stats().Gaps)
}

// TestReclaimRespectsDurableFloor: a durable subscriber's floor below
// retention stops reclaiming there.
func TestReclaimRespectsDurableFloor(t *testing.T) {
	ctx := testCtx(t)
	st := newTrackStore()
	defer st.Close()
	var floor atomic.Uint64
	hook := func(ctx context.Context, topic string) (uint64, bool, error) {
		require.Equal(t, "floor", topic)
		return floor.Load(), true, nil
	}
	opts := []Option{WithRetention(Retention{MaxMessages: 50}), WithFoldWindow(4), WithDurableFloor(hook)}
	pub := newClient(t, st, opts...)
	publish := func(n int) {
		for range n {
			_, err := pub.PublishBatch(ctx, "floor", [][]byte{[]byte("a"), []byte("b")})
			require.NoError(t, err)
		}
	}
	publish(200) // 400 messages, 200 announcements
	require.Zero(t, pub.Stats().Reclaimed, "reclaimed below a durable subscriber's position")
	first, _, err := pub.eng.readCoord(ctx, newTopicKeys("floor"))
	require.NoError(t, err)
	require.Positive(t, first.RetainFrom)
	require.Zero(t, first.ReclaimedTo)

	floor.Store(40)
	publish(40)
	st2, _, err := pub.eng.readCoord(ctx, newTopicKeys("floor"))
	require.NoError(t, err)
	require.Positive(t, pub.Stats().Reclaimed)
	require.LessOrEqual(t, st2.ReclaimedTo, uint64(40), "reclaimed past the durable floor")
	require.Positive(t, st2.ReclaimedTo)
}

// TestOldCoordinatorBlobsReclaimed: a coordinator too large for one value
// is stored as a blob; each write that replaces it deletes the old blob
// (and its chunks), so subscriber churn does not pile up blobs.
func TestOldCoordinatorBlobsReclaimed(t *testing.T) {
	ctx := testCtx(t)
	st := newTrackStore()
	st.maxValue = 1000
	defer st.Close()
	c := newClient(t, st)
	_, err := c.Publish(ctx, "churn", []byte("m"))
	require.NoError(t, err)
	var subs []*Client
	for range 60 {
		sc := newClient(t, st)
		_, err := sc.Subscribe(ctx, "churn", WithoutPush())
		require.NoError(t, err)
		subs = append(subs, sc)
	}
	e, err := st.Get(ctx, newTopicKeys("churn").coord)
	require.NoError(t, err)
	require.Equal(t, byte(coordBlob), e.Value[0], "the coordinator should have outgrown a value")
	blobs := func() int {
		st.mu.Lock()
		defer st.mu.Unlock()
		n := 0
		for k := range st.sizes {
			if strings.HasPrefix(k, "x/") {
				n++
			}
		}
		return n
	}
	before := blobs()
	for _, sc := range subs[:30] {
		require.NoError(t, sc.Unsubscribe(ctx, "churn"))
	}
	after := blobs()
	t.Logf("blob keys: %d with 60 subscribers, %d after 30 unsubscribed (30 coordinator rewrites)", before, after)
	require.LessOrEqual(t, after, before, "old coordinator blobs were not reclaimed")
}
