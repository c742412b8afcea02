package conformance

// Protocol test of the orphan sweep (core.Client.SweepOrphans) on stores
// that list and delete keys.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/forge"
)

// testOrphans: a publisher crashes after writing a segment and before its
// head record points to it; the sweep deletes that segment once it is past
// the grace period, and deletes at once one the restarted publisher went
// on without; it keeps a publish in flight (segment written, head not
// yet), which then completes; and every published message is delivered
// with no gap, with foreign records (another topic's) untouched.
func (s *suite) testOrphans(t *testing.T) {
	f := s.setup(t, stressTimeout)
	if _, ok := f.store.(backend.Lister); !ok {
		t.Skip("store does not implement backend.Lister")
	}
	if _, ok := f.store.(backend.Deleter); !ok {
		t.Skip("store does not implement backend.Deleter")
	}
	topic := testTopic(t)
	opts := []core.Option{}
	if f.order != core.OrderDefault {
		opts = append(opts, core.WithOrdering(f.order))
	}
	identity := func() *core.Identity {
		id, err := core.GenerateIdentity()
		require.NoError(t, err)
		return id
	}
	clientAs := func(id *core.Identity) *core.Client {
		c, err := core.New(f.store, id, opts...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	forgerAs := func(id *core.Identity) *forge.Forger {
		fg, err := forge.New(f.store, id, f.order)
		require.NoError(t, err)
		t.Cleanup(func() { _ = fg.Close(context.Background()) })
		return fg
	}
	publish := func(c *core.Client, tp string, payloads ...string) {
		for _, p := range payloads {
			_, err := c.Publish(f.ctx, tp, []byte(p))
			require.NoError(t, err)
		}
	}
	exists := func(key string) bool {
		_, err := f.store.Get(f.ctx, key)
		if err != nil {
			require.ErrorIs(t, err, backend.ErrNotFound, "Get(%q)", key)
		}
		return err == nil
	}
	now := time.Now()
	longAgo := now.Add(-2 * core.DefaultOrphanGrace)

	// A publisher on another topic: its segments are not the sweep's.
	other := clientAs(identity())
	publish(other, topic+"/other", "o1", "o2")
	// A publisher crashed long ago, after publishing twice.
	crashed := identity()
	publish(clientAs(crashed), topic, "a1", "a2")
	lost, err := forgerAs(crashed).CrashedSegment(f.ctx, topic, longAgo, []byte("lost a3"))
	require.NoError(t, err)
	// A publisher that crashed just now and was restarted.
	restarted := identity()
	before := clientAs(restarted)
	publish(before, topic, "b1")
	superseded, err := forgerAs(restarted).CrashedSegment(f.ctx, topic, now, []byte("lost b2"))
	require.NoError(t, err)
	require.NoError(t, before.Close(f.ctx))
	publish(clientAs(restarted), topic, "b2", "b3")
	// A publish in flight.
	inFlight := forgerAs(identity())
	flying, err := inFlight.CrashedSegment(f.ctx, topic, now, []byte("c1"))
	require.NoError(t, err)

	sweeper := f.client(f.store)
	rep, err := sweeper.SweepOrphans(f.ctx, topic)
	require.NoError(t, err, "SweepOrphans")
	t.Logf("sweep on %v: %+v", f.caps.Consistency, rep)
	require.False(t, exists(lost), "the segment of a publisher that crashed long ago is still stored")
	require.True(t, exists(flying), "the segment of a publish in flight was deleted")
	if f.linearizable() {
		require.False(t, exists(superseded), "the segment a restarted publisher went on without is still stored")
		require.Equal(t, 2, rep.Deleted)
		require.Equal(t, 1, rep.Kept, "segments kept: the publish in flight")
	} else { // young: kept until the grace period passes
		require.True(t, exists(superseded), "a young superseded segment was deleted on a store that is not linearizable")
		require.Equal(t, 1, rep.Deleted)
		require.Equal(t, 2, rep.Kept, "segments kept: the publish in flight and the young superseded one")
	}
	require.Equal(t, rep.Segments, rep.Reachable+rep.Deleted+rep.Kept)

	// The publish in flight completes; the next sweep keeps its segment.
	require.NoError(t, inFlight.CompleteSegment(f.ctx, topic, flying))
	rep, err = sweeper.SweepOrphans(f.ctx, topic)
	require.NoError(t, err, "SweepOrphans")
	require.True(t, exists(flying), "the segment of a completed publish was deleted")
	require.Zero(t, rep.Deleted)

	for tp, want := range map[string]int{topic: 5, topic + "/other": 2} {
		sub := f.client(f.store)
		s := f.subscribe(sub, tp, want, core.FromStart(), core.WithoutPush())
		got := f.collect(sub, s, want)
		for _, m := range got {
			require.NotContains(t, string(m.Payload), "lost", "a crashed segment was delivered")
		}
		require.Zero(t, sub.Stats().Gaps, "gaps on %q", tp)
		require.Zero(t, sub.Stats().Invalid, "invalid records on %q", tp)
	}
}
