package core

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

// weak declares a store eventually consistent (unordered mode) without
// injecting faults.
type weak struct{ backend.Store }

func (w weak) Capabilities() backend.Capabilities {
	c := w.Store.Capabilities()
	c.Consistency = backend.Eventual
	return c
}

// publishN publishes n messages "<tag>-<i>" from pub, in batches of batch.
func publishN(t *testing.T, ctx context.Context, pub *Client, topic, tag string, n, batch int) {
	t.Helper()
	for i := 0; i < n; i += batch {
		var ps [][]byte
		for j := i; j < min(n, i+batch); j++ {
			ps = append(ps, fmt.Appendf(nil, "%s-%d", tag, j+1))
		}
		_, err := pub.PublishBatch(ctx, topic, ps)
		require.NoError(t, err)
	}
}

func TestCursorResume(t *testing.T) {
	for _, mode := range []string{"ordered", "unordered"} {
		t.Run(mode, func(t *testing.T) {
			ctx := testCtx(t)
			var store backend.Store = newMem(t)
			if mode == "unordered" {
				store = weak{store}
			}
			a, b := newClient(t, store), newClient(t, store)
			publishN(t, ctx, a, "t", "a", 10, 10) // one announcement of 10
			publishN(t, ctx, b, "t", "b", 6, 2)
			sc := newClient(t, store)
			sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
			require.NoError(t, err)
			all := payloads(receive(t, ctx, sc, sub, 16))
			for cut := range 16 {
				// Resume a second subscriber after each message in turn:
				// it gets exactly the rest, in the same order (ordered).
				sc2 := newClient(t, store)
				first, err := sc2.Subscribe(ctx, "t", FromStart(), WithoutPush())
				require.NoError(t, err)
				msgs := receive(t, ctx, sc2, first, cut+1)
				text := msgs[cut].Cursor.String()
				require.NoError(t, sc2.Close(ctx))
				cur, err := ParseCursor(text)
				require.NoError(t, err)
				sc3 := newClient(t, store)
				sub3, err := sc3.Subscribe(ctx, "t", FromCursor(cur), WithoutPush())
				require.NoError(t, err)
				rest := payloads(receive(t, ctx, sc3, sub3, 15-cut))
				if mode == "ordered" {
					require.Equal(t, all[cut+1:], append([]string{}, rest...), "resumed after message %d", cut+1)
				} else {
					require.ElementsMatch(t, all[cut+1:], rest, "resumed after message %d", cut+1)
				}
				_, _ = sc3.Poll(ctx, "t")
				require.Empty(t, sub3.Messages(), "nothing more after message %d", cut+1)
				require.NoError(t, sc3.Close(ctx))
			}
		})
	}
}

func TestCursorMismatch(t *testing.T) {
	ctx := testCtx(t)
	mem := newMem(t)
	pub := newClient(t, mem)
	publishN(t, ctx, pub, "a", "x", 1, 1)
	sc := newClient(t, mem)
	sub, err := sc.Subscribe(ctx, "a", FromStart(), WithoutPush())
	require.NoError(t, err)
	cur := receive(t, ctx, sc, sub, 1)[0].Cursor

	_, err = newClient(t, mem).Subscribe(ctx, "b", FromCursor(cur))
	require.ErrorIs(t, err, ErrCursorMismatch)
	_, err = newClient(t, weak{mem}).Subscribe(ctx, "a", FromCursor(cur))
	require.ErrorIs(t, err, ErrCursorMismatch, "an ordered cursor in unordered mode")
	_, err = ParseCursor("not a cursor!")
	require.ErrorIs(t, err, ErrMalformed)
	b, err := cur.MarshalBinary()
	require.NoError(t, err)
	for i := range b {
		_, err := UnmarshalCursor(b[:i])
		require.ErrorIs(t, err, ErrMalformed, "truncated at %d", i)
	}
	_, err = UnmarshalCursor(append(b, 0))
	require.ErrorIs(t, err, ErrMalformed, "trailing byte")
	var back Cursor
	require.NoError(t, back.UnmarshalText([]byte(cur.String())))
	require.Equal(t, cur.String(), back.String())
}

func TestDurableResumeAndRedelivery(t *testing.T) {
	for _, mode := range []string{"ordered", "unordered"} {
		t.Run(mode, func(t *testing.T) {
			ctx := testCtx(t)
			var store backend.Store = newMem(t)
			if mode == "unordered" {
				store = weak{store}
			}
			pub := newClient(t, store)
			publishN(t, ctx, pub, "t", "m", 6, 3)
			id, err := GenerateIdentity()
			require.NoError(t, err)

			first := newClientAs(t, store, id)
			sub, err := first.Subscribe(ctx, "t", FromStart(), Durable("billing"), WithoutPush())
			require.NoError(t, err)
			got := receive(t, ctx, first, sub, 6)
			require.Equal(t, []string{"m-1", "m-2", "m-3", "m-4", "m-5", "m-6"}, payloads(got))
			for _, m := range got {
				require.False(t, m.Redelivered)
			}
			require.NoError(t, sub.Ack(got[1]))
			require.NoError(t, sub.AckSync(ctx, got[3]))
			require.NoError(t, sub.Ack(got[2]), "an older ack changes nothing")
			require.ErrorIs(t, newSubNoDurable(t, ctx, store).Ack(got[0]), ErrNotDurable)
			require.NoError(t, first.Close(ctx)) // keeps the position

			publishN(t, ctx, pub, "t", "n", 2, 2)
			second := newClientAs(t, store, id)
			sub2, err := second.Subscribe(ctx, "t", Durable("billing"), WithoutPush()) // FromNow is ignored: resumes
			require.NoError(t, err)
			got = receive(t, ctx, second, sub2, 4)
			require.Equal(t, []string{"m-5", "m-6", "n-1", "n-2"}, payloads(got))
			require.True(t, got[0].Redelivered && got[1].Redelivered, "delivered before, not acked")
			require.False(t, got[2].Redelivered || got[3].Redelivered, "never delivered before")
			require.EqualValues(t, 2, second.Stats().Redelivered)
			info, err := second.Info(ctx, "t")
			require.NoError(t, err)
			require.Len(t, info.Subscribers, 1, "the durable subscription is registered once")

			// Unsubscribe deletes the durable position: the name starts afresh.
			require.NoError(t, second.Unsubscribe(ctx, "t"))
			sub3, err := second.Subscribe(ctx, "t", Durable("billing"), WithoutPush())
			require.NoError(t, err)
			_, _ = second.Poll(ctx, "t")
			require.Empty(t, sub3.Messages(), "a deleted durable starts from now")
		})
	}
}

func newSubNoDurable(t *testing.T, ctx context.Context, store backend.Store) *Subscription {
	c := newClient(t, store)
	s, err := c.Subscribe(ctx, "other", WithoutPush())
	require.NoError(t, err)
	return s
}

// A retention gap while a durable subscriber was away is reported with its
// range.
func TestDurableRetentionGapWhileAway(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store, WithRetention(Retention{MaxMessages: 4}), WithFoldWindow(2))
	publishN(t, ctx, pub, "t", "m", 2, 1)
	id, err := GenerateIdentity()
	require.NoError(t, err)
	first := newClientAs(t, store, id)
	sub, err := first.Subscribe(ctx, "t", FromStart(), Durable("d"), WithoutPush())
	require.NoError(t, err)
	got := receive(t, ctx, first, sub, 2)
	require.NoError(t, sub.AckSync(ctx, got[1]))
	require.NoError(t, first.Close(ctx))

	publishN(t, ctx, pub, "t", "m", 20, 1) // m-1..m-20 again as seqs 3..22
	second := newClientAs(t, store, id)
	sub2, err := second.Subscribe(ctx, "t", Durable("d"), WithoutPush())
	require.NoError(t, err)
	msgs := receive(t, ctx, second, sub2, 1)
	g := <-sub2.Gaps()
	require.Equal(t, pub.Identity().ID(), g.Publisher)
	require.EqualValues(t, 3, g.From, "the gap starts right after the acked position")
	require.Equal(t, g.To+1, msgs[0].Seq)
	require.Equal(t, "dropped by retention before delivery", g.Reason)
}

// Cursor sizes: ordered cursors stay small whatever the publishers.
func TestOrderedCursorIsSmall(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	for i := range 20 {
		publishN(t, ctx, newClient(t, store), "t", fmt.Sprint(i), 1, 1)
	}
	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	for _, m := range receive(t, ctx, sc, sub, 20) {
		b, err := m.Cursor.MarshalBinary()
		require.NoError(t, err)
		require.Less(t, len(b), 64)
	}
}

// One durable subscription (identity and name) used by two clients at once:
// the one whose position was moved under it learns ErrDurableInUse and
// delivers nothing more.
func TestDurableInUseByAnotherClient(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store)
	publishN(t, ctx, pub, "t", "m", 2, 1)
	id, err := GenerateIdentity()
	require.NoError(t, err)
	a, b := newClientAs(t, store, id), newClientAs(t, store, id)
	subA, err := a.Subscribe(ctx, "t", FromStart(), Durable("d"), WithoutPush())
	require.NoError(t, err)
	_, err = b.Subscribe(ctx, "t", FromStart(), Durable("d"), WithoutPush())
	require.NoError(t, err)
	// a's delivery must first move its delivered mark: refused.
	_, err = a.Poll(ctx, "t")
	require.ErrorIs(t, err, ErrDurableInUse)
	require.Empty(t, subA.Messages())
}

// lateWriter is a store that, once armed, makes the late write of a dead
// incarnation land on the durable key right before the next write of it.
type lateWriter struct {
	*memory.Store
	mu    sync.Mutex
	late  []byte // the record to land; nil: disarmed
	key   string
	fired int
}

func (s *lateWriter) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	s.mu.Lock()
	if s.late != nil && key == s.key {
		if cur, err := s.Store.Get(ctx, key); err == nil {
			if _, err := s.Store.CompareAndPut(ctx, key, cur.Version, s.late); err == nil {
				s.fired++
			}
		}
		s.late = nil
	}
	s.mu.Unlock()
	return s.Store.CompareAndPut(ctx, key, expect, value)
}

// TestDurableLateWriteOfDeadIncarnation: a restarted durable subscriber
// whose record is moved, between its open and its first write, by the
// late write of its dead predecessor opens it afresh instead of failing
// with ErrDurableInUse, and resumes from what that write says.
func TestDurableLateWriteOfDeadIncarnation(t *testing.T) {
	ctx := testCtx(t)
	store := &lateWriter{Store: newMem(t)}
	pub := newClient(t, store, WithOrdering(TopicOrder))
	publishN(t, ctx, pub, "t", "m", 3, 1)
	id, err := GenerateIdentity()
	require.NoError(t, err)

	// The first incarnation acks m-1, then m-3; the record of the first ack
	// is what its "late" write carries.
	a := newClientAs(t, store, id)
	subA, err := a.Subscribe(ctx, "t", FromStart(), Durable("d"), WithoutPush())
	require.NoError(t, err)
	got := receive(t, ctx, a, subA, 3)
	require.NoError(t, subA.AckSync(ctx, got[0]))
	store.key = newTopicKeys("t").durable(durableID(id.PublicKey(), "d"))
	rec, err := store.Get(ctx, store.key)
	require.NoError(t, err)
	require.NoError(t, subA.AckSync(ctx, got[2]))
	require.NoError(t, a.Close(ctx))

	store.mu.Lock()
	store.late = rec.Value
	store.mu.Unlock()
	b := newClientAs(t, store, id)
	subB, err := b.Subscribe(ctx, "t", FromStart(), Durable("d"), WithoutPush())
	require.NoError(t, err, "the restarted subscriber opens its record afresh")
	require.Equal(t, 1, store.fired, "the late write landed")
	again := receive(t, ctx, b, subB, 2)
	require.Equal(t, []string{"m-2", "m-3"}, []string{string(again[0].Payload), string(again[1].Payload)},
		"resumed where the late write says")
}
