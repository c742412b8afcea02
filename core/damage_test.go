package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// publishBatches publishes batches of size messages ("m<seq>"), one
// segment each, and returns the segment of every batch.
func publishBatches(t *testing.T, ctx context.Context, store backend.Store, pub *Client, topic string, batches, size int, opts ...PublishOption) []Ref {
	t.Helper()
	var segs []Ref
	seq := 0
	for range batches {
		payloads := make([][]byte, size)
		for i := range payloads {
			seq++
			payloads[i] = fmt.Appendf(nil, "m%d", seq)
		}
		_, err := pub.PublishBatch(ctx, topic, payloads, opts...)
		require.NoError(t, err)
		e, err := store.Get(ctx, newTopicKeys(topic).head(pub.Identity().ID()))
		require.NoError(t, err)
		h, err := decodeHead(topic, e.Value)
		require.NoError(t, err)
		segs = append(segs, h.Seg)
	}
	return segs
}

// flipByte flips one bit of the stored blob ref inside the payload it
// holds, behind the protocol's back (as a disk error would).
func flipByte(t *testing.T, ctx context.Context, store backend.Store, ref Ref, inside []byte) {
	t.Helper()
	key := blobKey(ref)
	e, err := store.Get(ctx, key)
	require.NoError(t, err)
	v := bytes.Clone(e.Value)
	i := bytes.Index(v, inside)
	require.Positive(t, i)
	v[i] ^= 0x02
	_, err = store.CompareAndPut(ctx, key, e.Version, v)
	require.NoError(t, err)
}

// A flipped byte inside one message of one segment costs exactly that
// segment's messages: a gap with their range and one invalid record; the
// publisher's later segments are still delivered.
func TestDamagedSegmentCostsOnlyItsMessages(t *testing.T) {
	for _, mode := range []string{"subscribed before", "late subscriber"} {
		t.Run(mode, func(t *testing.T) {
			ctx := testCtx(t)
			store := newMem(t)
			pub := newClient(t, store)
			sc := newClient(t, store)
			var sub *Subscription
			var err error
			if mode == "subscribed before" {
				sub, err = sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
				require.NoError(t, err)
			}
			segs := publishBatches(t, ctx, store, pub, "t", 3, 7) // seqs 1-7, 8-14, 15-21
			flipByte(t, ctx, store, segs[1], []byte("m10"))
			if sub == nil {
				sub, err = sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
				require.NoError(t, err)
			}
			msgs := receive(t, ctx, sc, sub, 14)
			var seqs []uint64
			for _, m := range msgs {
				seqs = append(seqs, m.Seq)
			}
			assert.Equal(t, []uint64{1, 2, 3, 4, 5, 6, 7, 15, 16, 17, 18, 19, 20, 21}, seqs)
			select {
			case g := <-sub.Gaps():
				assert.Equal(t, Gap{Topic: "t", Publisher: pub.Identity().ID(), From: 8, To: 14, Reason: "segment damaged in the store"}, g)
			case <-ctx.Done():
				t.Fatal("no gap reported")
			}
			st := sc.Stats()
			assert.EqualValues(t, 1, st.Gaps)
			assert.EqualValues(t, 1, st.Invalid)
			// Nothing more arrives on later polls.
			_, err = sc.Poll(ctx, "t")
			require.NoError(t, err)
			assert.Empty(t, sub.Messages())
			assert.EqualValues(t, 1, sc.Stats().Gaps)
		})
	}
}

// An announcement that only the unsigned coordinator makes cannot turn a
// bad segment into a gap: forged data must not hide real messages.
func TestForgedAnnouncementIsNotAGap(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store)
	publishBatches(t, ctx, store, pub, "t", 1, 2)
	// A garbage blob announced for the publisher up to seq 50.
	junk := []byte("not a segment")
	bad := digest([]byte("what the digest promises"))
	_, err := store.CompareAndPut(ctx, blobKey(bad), 0, append([]byte{blobLeaf}, junk...))
	require.NoError(t, err)
	_, err = pub.eng.announceDirect(ctx, newTopicKeys("t"), coordOp{anns: []announcement{{Pub: pub.Identity().ID(), Seg: bad, To: 50}}})
	require.NoError(t, err)

	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	msgs := receive(t, ctx, sc, sub, 2)
	require.Len(t, msgs, 2)
	_, err = sc.Poll(ctx, "t")
	require.NoError(t, err)
	assert.Zero(t, sc.Stats().Gaps)
	assert.Positive(t, sc.Stats().Invalid)
	// The publisher's real next message still arrives.
	_, err = pub.Publish(ctx, "t", []byte("m3"))
	require.NoError(t, err)
	msgs = receive(t, ctx, sc, sub, 1)
	assert.EqualValues(t, 3, msgs[0].Seq)
}

// Info counts as retained only what a FromStart subscriber would receive:
// not expired messages, not messages of a damaged segment.
func TestInfoExcludesExpiredAndUnreadable(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store)
	segs := publishBatches(t, ctx, store, pub, "t", 3, 7)
	publishBatches(t, ctx, store, pub, "u", 1, 4, WithTTL(time.Minute))
	_, err := pub.Publish(ctx, "u", []byte("kept"), WithTTL(time.Hour))
	require.NoError(t, err)

	later := newClient(t, store, WithClock(func() time.Time { return time.Now().Add(2 * time.Minute) }))
	info, err := later.Info(ctx, "u")
	require.NoError(t, err)
	assert.EqualValues(t, 5, info.Messages)
	assert.EqualValues(t, 1, info.RetainedMessages)
	assert.EqualValues(t, 4, info.Expired)
	assert.Zero(t, info.Unreadable)

	flipByte(t, ctx, store, segs[1], []byte("m10"))
	info, err = later.Info(ctx, "t")
	require.NoError(t, err)
	assert.EqualValues(t, 21, info.Messages)
	assert.EqualValues(t, 14, info.RetainedMessages)
	assert.EqualValues(t, 7, info.Unreadable)
	assert.Zero(t, info.Expired)
}

// readOnlyStore refuses and counts every write.
type readOnlyStore struct {
	backend.Store
	writes atomic.Int64
}

func (r *readOnlyStore) CompareAndPut(context.Context, string, backend.Version, []byte) (backend.Version, error) {
	r.writes.Add(1)
	return 0, errors.New("read-only")
}
