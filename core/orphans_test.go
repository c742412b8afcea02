package core

// Orphan sweep tests: crashed, restarted and in-flight publishers, sweeps
// racing publishers, stores that cannot list.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// crasher leaves what a publisher of its client's identity leaves when it
// crashes mid-publish (the same records internal/forge writes for the
// conformance suite, which core's own tests cannot import).
type crasher struct{ c *Client }

// newForgerAs makes a crasher with identity id, closed at cleanup.
func newForgerAs(t *testing.T, store backend.Store, id *Identity, opts ...Option) *crasher {
	t.Helper()
	return &crasher{c: newClientAs(t, store, id, opts...)}
}

// CrashedSegment writes a signed segment continuing the identity's log on
// topic that no head record points to, its messages dated at; it returns
// the segment's key.
func (f *crasher) CrashedSegment(ctx context.Context, topic string, at time.Time, payloads ...[]byte) (string, error) {
	tk := newTopicKeys(topic)
	first, prev := uint64(1), Ref{}
	if e, err := f.c.eng.store.Get(ctx, tk.head(f.c.pid)); err == nil {
		h, err := decodeHead(topic, e.Value)
		if err != nil {
			return "", err
		}
		first, prev = h.Last+1, h.Seg
	} else if !errors.Is(err, backend.ErrNotFound) {
		return "", err
	}
	sg := &segment{Publisher: f.c.id.PublicKey(), Prev: prev, First: first, Base: 1}
	for _, p := range payloads {
		sg.Msgs = append(sg.Msgs, segMsg{Time: at.UnixNano(), Payload: p})
	}
	sg.sign(f.c.id, topic, nil)
	ref, err := f.c.eng.blobs.put(ctx, sg.encode())
	if err != nil {
		return "", err
	}
	return blobKey(ref), nil
}

// CompleteSegment points the identity's head record on topic at the
// segment under key (the publish in flight completes), without announcing.
func (f *crasher) CompleteSegment(ctx context.Context, topic, key string) error {
	ref, ok := refOfKey(key)
	if !ok {
		return fmt.Errorf("%q is not a blob key", key)
	}
	data, err := f.c.eng.blobs.get(ctx, ref)
	if err != nil {
		return err
	}
	sg, err := decodeSegment(data)
	if err != nil {
		return err
	}
	hk := newTopicKeys(topic).head(f.c.pid)
	e, err := f.c.eng.store.Get(ctx, hk)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	_, err = f.c.eng.store.CompareAndPut(ctx, hk, e.Version, segmentHead(sg, merkleRoot(sg.leaves(topic)), ref).encode())
	return err
}

// requireGone checks that key is (gone true) or is not deleted.
func requireGone(t *testing.T, st backend.Store, key string, gone bool, what string) {
	t.Helper()
	_, err := st.Get(testCtx(t), key)
	if gone {
		require.ErrorIs(t, err, backend.ErrNotFound, "%s: still stored", what)
	} else {
		require.NoError(t, err, "%s: deleted", what)
	}
}

// TestSweepOrphans: segments that crashed publishers left behind are
// deleted (one that crashed long ago beyond its head, one with no head at
// all, and one a restarted publisher went on without, even though young);
// a publish in flight is kept, and still kept once its head is written;
// segments of other topics are never judged; subscribers see every
// published message, no gap.
func TestSweepOrphans(t *testing.T) {
	for _, order := range []Ordering{TopicOrder, PublisherOrder} {
		t.Run(order.String(), func(t *testing.T) { testSweepOrphans(t, order) })
	}
}

func testSweepOrphans(t *testing.T, order Ordering) {
	ctx := testCtx(t)
	st := newMem(t)
	const topic = "orphans"
	opts := []Option{WithOrdering(order)}
	ids := make([]*Identity, 4)
	for i := range ids {
		var err error
		ids[i], err = GenerateIdentity()
		require.NoError(t, err)
	}
	publish := func(c *Client, msgs ...string) {
		for _, m := range msgs {
			_, err := c.Publish(ctx, topic, []byte(m))
			require.NoError(t, err)
		}
	}
	now := time.Now()
	longAgo := now.Add(-2 * DefaultOrphanGrace)

	// 0: published, then crashed long ago writing its next segment.
	publish(newClientAs(t, st, ids[0], opts...), "a1", "a2", "a3")
	oldKey, err := newForgerAs(t, st, ids[0], opts...).CrashedSegment(ctx, topic, longAgo, []byte("lost a4"))
	require.NoError(t, err)
	// 1: crashed long ago on its very first publish (no head record).
	strayKey, err := newForgerAs(t, st, ids[1], opts...).CrashedSegment(ctx, topic, longAgo, []byte("lost b1"))
	require.NoError(t, err)
	// 2: a publish in flight: segment written now, head not yet.
	f2 := newForgerAs(t, st, ids[2], opts...)
	flightKey, err := f2.CrashedSegment(ctx, topic, now, []byte("c1"))
	require.NoError(t, err)
	// 3: crashed just now, restarted, and published again: its new
	// segments hold the seqs the crashed one had.
	first := newClientAs(t, st, ids[3], opts...)
	publish(first, "d1", "d2")
	restartKey, err := newForgerAs(t, st, ids[3], opts...).CrashedSegment(ctx, topic, now, []byte("lost d3"))
	require.NoError(t, err)
	require.NoError(t, first.Close(ctx))
	publish(newClientAs(t, st, ids[3], opts...), "d3", "d4")

	sweeper := newClient(t, st, opts...)
	rep, err := sweeper.SweepOrphans(ctx, "another topic")
	require.NoError(t, err)
	require.Zero(t, rep.Segments, "segments of another topic counted as its own")
	require.Zero(t, rep.Deleted)

	rep, err = sweeper.SweepOrphans(ctx, topic)
	require.NoError(t, err)
	t.Logf("sweep: %+v", rep)
	require.Equal(t, 3, rep.Deleted, "orphans deleted")
	require.Equal(t, 1, rep.Kept, "the publish in flight")
	require.Equal(t, rep.Segments, rep.Reachable+rep.Deleted+rep.Kept)
	require.EqualValues(t, 3, sweeper.Stats().OrphansDeleted)
	requireGone(t, st, oldKey, true, "segment of a publisher that crashed long ago")
	requireGone(t, st, strayKey, true, "segment of a publisher that crashed before its first head")
	requireGone(t, st, restartKey, true, "segment a restarted publisher went on without")
	requireGone(t, st, flightKey, false, "segment of a publish in flight")

	// The publish in flight completes; the next sweep keeps it.
	require.NoError(t, f2.CompleteSegment(ctx, topic, flightKey))
	again, err := sweeper.SweepOrphans(ctx, topic)
	require.NoError(t, err)
	require.Zero(t, again.Deleted)
	require.Zero(t, again.Kept)
	require.Equal(t, rep.Reachable+1, again.Reachable)
	requireGone(t, st, flightKey, false, "segment of a completed publish")

	// Everything published is delivered, with no gap. (The completed
	// publish was never announced nor registered, as CompleteSegment does
	// neither, so it is not expected.)
	want := []string{"a1", "a2", "a3", "d1", "d2", "d3", "d4"}
	sub := newClient(t, st, opts...)
	s, err := sub.Subscribe(ctx, topic, FromStart(), WithoutPush())
	require.NoError(t, err)
	var got []string
	for _, m := range receive(t, ctx, sub, s, len(want)) {
		got = append(got, string(m.Payload))
	}
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, got)
	require.Zero(t, sub.Stats().Gaps)
	require.Zero(t, sub.Stats().Invalid)
}

// TestSweepOrphansConcurrent: sweeps race with publishers and with a
// process of each publisher's identity that keeps crashing after writing a
// segment; nothing a head reaches is deleted (every acknowledged message
// is delivered, no gap), and the crashed segments the publishers went on
// without are deleted.
func TestSweepOrphansConcurrent(t *testing.T) {
	ctx := testCtx(t)
	st := newMem(t)
	const topic, pubs, per = "orphans/concurrent", 3, 60
	var wg sync.WaitGroup
	clients := make([]*Client, pubs)
	for i := range pubs {
		id, err := GenerateIdentity()
		require.NoError(t, err)
		clients[i] = newClientAs(t, st, id, WithMaxBatch(4))
		f := newForgerAs(t, st, id)
		wg.Go(func() {
			for j := range per {
				_, err := clients[i].Publish(ctx, topic, fmt.Appendf(nil, "p%d-%d", i, j))
				require.NoError(t, err)
				if j%10 == 0 {
					_, err := f.CrashedSegment(ctx, topic, time.Now(), []byte("crashed"))
					require.NoError(t, err)
				}
			}
		})
	}
	sweeper := newClient(t, st)
	done := make(chan struct{})
	var deleted int
	var sweepErr error
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			rep, err := sweeper.SweepOrphans(ctx, topic)
			if err != nil {
				sweepErr = err
				return
			}
			deleted += rep.Deleted
			if deleted > 0 && clients[0].Stats().Published == per {
				return
			}
		}
	}()
	wg.Wait()
	<-done
	require.NoError(t, sweepErr)
	rep, err := sweeper.SweepOrphans(ctx, topic)
	require.NoError(t, err)
	deleted += rep.Deleted
	t.Logf("%d crashed segments deleted while publishing; last sweep %+v", deleted, rep)
	require.Equal(t, pubs*per/10, deleted, "every crashed segment (each was superseded by a later publish)")
	require.Zero(t, rep.Kept)

	sub := newClient(t, st)
	s, err := sub.Subscribe(ctx, topic, FromStart(), WithoutPush(), WithBuffer(pubs*per))
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, m := range receive(t, ctx, sub, s, pubs*per) {
		require.NotEqual(t, "crashed", string(m.Payload), "a crashed segment was delivered")
		require.False(t, seen[string(m.Payload)], "duplicate %s", m.Payload)
		seen[string(m.Payload)] = true
	}
	require.Zero(t, sub.Stats().Gaps)
	require.Zero(t, sub.Stats().Invalid)
}

// TestSweepOrphansUnsupported: a store without listing says so.
func TestSweepOrphansUnsupported(t *testing.T) {
	st := newTrackStore()
	defer st.Close()
	_, err := newClient(t, st).SweepOrphans(testCtx(t), "t")
	require.True(t, errors.Is(err, ErrSweepUnsupported), "got %v", err)
}
