package core

// What an idle subscription holds: shared and on-demand state, and that
// delivery is unchanged when the topic becomes active again.

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sameMap reports whether a and b are the same map (not equal copies).
func sameMap[K comparable, V any](a, b map[K]V) bool {
	return a != nil && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// Idle FromNow subscriptions of one topic on one engine share their start
// heads, hold no Gaps channel and no context; once the topic is active
// again each delivers every message exactly once and in order, and the
// shared map is never written.
func TestIdleSubscriptionsShareState(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	h := newHub(t, store)
	pub := newClient(t, store, WithHub(h))
	_, err := pub.Publish(ctx, "t", []byte("0"))
	require.NoError(t, err)
	const n = 4
	subs := make([]*Subscription, n)
	clients := make([]*Client, n)
	for i := range subs {
		clients[i] = newClient(t, store, WithHub(h))
		subs[i], err = clients[i].Subscribe(ctx, "t")
		require.NoError(t, err)
	}
	subs[1].pollMu.Lock()
	shared := subs[1].base
	subs[1].pollMu.Unlock()
	want := map[PublisherID]uint64{pub.pid: 1}
	for i, s := range subs {
		s.pollMu.Lock() // not held across a require: a failure would leave it locked
		base, heads, baseShared, life := s.base, s.pos.heads, s.baseShared, s.life
		s.pollMu.Unlock()
		require.Equal(t, want, base, "sub %d", i)
		if i >= 2 {
			require.True(t, sameMap(shared, base), "sub %d holds its own copy of the start heads", i)
			require.True(t, baseShared)
		}
		require.True(t, sameMap(base, heads), "sub %d: heads not shared with base", i)
		require.Nil(t, s.gaps.Load(), "sub %d made a Gaps channel", i)
		require.Nil(t, life, "sub %d holds a context", i)
	}
	// Active again: two publishers, interleaved.
	pub2 := newClient(t, store, WithHub(h))
	var sent []string
	for i := range 6 {
		p, m := pub, string(rune('a'+i))
		if i%2 == 1 {
			p = pub2
		}
		_, err = p.Publish(ctx, "t", []byte(m))
		require.NoError(t, err)
		sent = append(sent, m)
	}
	for i, s := range subs {
		var got []string
		for len(got) < len(sent) {
			select {
			case m := <-s.Messages():
				got = append(got, string(m.Payload))
			case <-ctx.Done():
				t.Fatalf("sub %d received %v of %v", i, got, sent)
			}
		}
		require.Equal(t, sent, got, "sub %d", i)
		select {
		case m := <-s.Messages():
			t.Fatalf("sub %d: a message more: %q", i, m.Payload)
		case <-time.After(50 * time.Millisecond):
		}
		require.Zero(t, clients[i].Stats().Duplicates+clients[i].Stats().Gaps, "sub %d", i)
	}
	require.Equal(t, want, shared, "the shared start heads were written")
	// A Gaps channel made on demand, or not at all, is closed by Unsubscribe.
	g := subs[0].Gaps()
	require.NoError(t, clients[0].Unsubscribe(ctx, "t"))
	_, open := <-g
	require.False(t, open)
	require.NoError(t, clients[1].Unsubscribe(ctx, "t"))
	_, open = <-subs[1].Gaps()
	require.False(t, open)
}

// ownBase and ownHeads copy a shared map before it is written: the other
// holders never see the write.
func TestOwnBaseCopiesSharedHeads(t *testing.T) {
	p, q := PublisherID{1}, PublisherID{2}
	shared := map[PublisherID]uint64{p: 5}
	a := &Subscription{base: shared, baseShared: true, headsShared: true}
	a.pos.heads = shared
	a.ownBase()
	a.base[q] = 7
	require.Equal(t, map[PublisherID]uint64{p: 5}, shared)
	require.True(t, sameMap(shared, a.pos.heads))
	a.ownHeads()
	a.pos.heads[q] = 9
	require.Equal(t, map[PublisherID]uint64{p: 5}, shared)
	require.Equal(t, map[PublisherID]uint64{p: 5, q: 7}, a.base)
	require.Equal(t, map[PublisherID]uint64{p: 5, q: 9}, a.pos.heads)
}
