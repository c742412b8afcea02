package conformance

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/forge"
)

// testTopicPolicy: a topic's signed write-access policy. A publisher it does
// not list is refused before writing (core.ErrNotAllowed); messages of an
// unlisted publisher that reach the store anyway (it published while the
// topic was open, and its client keeps going) are never delivered and are
// counted (Stats.Denied); Allow and Deny take effect; a policy signed by
// another key, or garbage, is rejected (counted as Invalid) and the owner's
// policy stays in force, and a fresh client pinned to the owner refuses the
// topic rather than trust it (core.ErrForgedPolicy).
func (s *suite) testTopicPolicy(t *testing.T) {
	f := s.setup(t, stressTimeout)
	f.writersDoNotRace()
	topic := testTopic(t)
	owner := f.client(f.store)
	allowed := f.client(f.store)
	rogue := f.client(f.store)
	stranger := f.client(f.store)

	publish := func(c *core.Client, from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			_, err := c.Publish(f.ctx, topic, []byte(payloadOf(i, uint64(i))))
			require.NoError(t, err)
		}
	}
	// The rogue publishes while the topic is open, then keeps publishing
	// after the policy that leaves it out.
	publish(rogue, 100, 3)
	require.NoError(t, owner.CreateTopic(f.ctx, topic, allowed.Identity().ID()))
	if f.linearizable() {
		// Only there: on a weaker store a create-only write may be
		// accepted over the existing record (a lost update, which the
		// fault wrapper injects at its first chance), replacing the list.
		require.ErrorIs(t, owner.CreateTopic(f.ctx, topic), core.ErrPolicyExists)
	}
	publish(rogue, 103, 3)
	publish(allowed, 0, 5)
	_, err := stranger.Publish(f.ctx, topic, []byte("refused"))
	require.ErrorIs(t, err, core.ErrNotAllowed, "a publisher the policy does not list")
	require.ErrorIs(t, allowed.Allow(f.ctx, topic, stranger.Identity().ID()), core.ErrNotOwner)

	// visible waits until c reads the policy at version or newer (on a weak
	// store a read may be stale; a client never goes back to an older
	// version once it saw a newer one).
	visible := func(c *core.Client, version uint64) {
		t.Helper()
		f.eventually(fmt.Sprintf("policy version %d visible", version), func() bool {
			p, err := c.TopicPolicy(f.ctx, topic)
			return err == nil && p != nil && p.Version >= version
		})
	}
	// count reads the whole retained history with a fresh client pinned to
	// the owner, once it sees the policy at version, and returns what each
	// publisher delivered.
	count := func(want int, version uint64) (map[core.PublisherID]int, core.Stats) {
		t.Helper()
		c := f.client(f.store, core.WithTopicOwner(topic, owner.Identity().PublicKey()))
		visible(c, version)
		sub := f.subscribe(c, topic, want, core.FromStart(), core.WithoutPush())
		got := map[core.PublisherID]int{}
		for _, m := range f.collect(c, sub, want) {
			got[m.PublisherID]++
		}
		return got, c.Stats()
	}
	got, st := count(5, 1)
	require.Equal(t, map[core.PublisherID]int{allowed.Identity().ID(): 5}, got)
	require.EqualValues(t, 6, st.Denied, "the rogue's messages are counted as denied")

	// Allow the rogue: its messages are delivered from now on (history
	// included); deny the first publisher: its are not.
	require.NoError(t, owner.Allow(f.ctx, topic, rogue.Identity().ID()))
	got, _ = count(11, 2)
	require.Equal(t, map[core.PublisherID]int{allowed.Identity().ID(): 5, rogue.Identity().ID(): 6}, got)
	require.NoError(t, owner.Deny(f.ctx, topic, allowed.Identity().ID()))
	got, st = count(6, 3)
	require.Equal(t, map[core.PublisherID]int{rogue.Identity().ID(): 6}, got)
	require.EqualValues(t, 5, st.Denied)

	// A live subscriber that knows the owner's policy meets a forged one
	// (signed by the forger, allowing the stranger) and then garbage: both
	// rejected, counted, and the owner's policy stays in force.
	live := f.client(f.store)
	visible(live, 3)
	lsub := f.subscribe(live, topic, 64, core.FromStart(), core.WithoutPush())
	f.collect(live, lsub, 6)
	id, err := core.GenerateIdentity()
	require.NoError(t, err)
	forger, err := forge.New(f.store, id, f.order)
	require.NoError(t, err)
	t.Cleanup(func() { _ = forger.Close(f.ctx) })
	require.NoError(t, forger.ForgePolicy(f.ctx, topic, []core.PublisherID{stranger.Identity().ID(), allowed.Identity().ID()}, nil))
	publish(allowed, 5, 2) // its client loaded before the deny: it still writes
	before := live.Stats()
	f.eventually("the forged policy rejected by the live subscriber", func() bool {
		_, err := live.Poll(f.ctx, topic)
		return err == nil && live.Stats().Invalid > before.Invalid
	})
	require.NoError(t, forger.ForgePolicy(f.ctx, topic, nil, []byte("not a policy")))
	f.eventually("garbage rejected by the live subscriber", func() bool {
		_, err := live.Poll(f.ctx, topic)
		return err == nil && live.Stats().Invalid > before.Invalid+1
	})
	select {
	case m := <-lsub.Messages():
		require.Failf(t, "delivered a denied message", "%s #%d: %q", m.PublisherID, m.Seq, m.Payload)
	default:
	}
	require.GreaterOrEqual(t, live.Stats().Denied, before.Denied+2, "the denied publisher's new messages")

	pinned := f.client(f.store, core.WithTopicOwner(topic, owner.Identity().PublicKey()))
	_, err = pinned.TopicPolicy(f.ctx, topic)
	require.ErrorIs(t, err, core.ErrForgedPolicy, "a fresh client pinned to the owner meets garbage")
}
