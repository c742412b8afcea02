package core

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// repointHead replaces id's format-2 head record on topic with one that
// carries the same header and signature but names the segment before the
// newest (its unsigned field), and returns the original record.
func repointHead(t *testing.T, ctx context.Context, st backend.Store, id *Identity, topic string) []byte {
	t.Helper()
	key := newTopicKeys(topic).head(id.ID())
	e, err := st.Get(ctx, key)
	require.NoError(t, err)
	h, err := decodeHead(topic, e.Value)
	require.NoError(t, err)
	require.True(t, h.V2, "publishers write format-2 heads")
	require.False(t, h.Prev.IsZero())
	forged := *h
	forged.Root = h.rootFor(topic)
	forged.inline, forged.iseg = nil, nil // format 2: the reference is a field of its own
	forged.Seg = h.Prev
	require.NoError(t, forged.verify(topic), "the signature does not cover the reference")
	_, err = st.CompareAndPut(ctx, key, e.Version, forged.encode())
	require.NoError(t, err)
	return e.Value
}

// TestHeadRepointed: a format-2 head record whose unsigned segment
// reference names another real segment of its publisher (its signature
// still verifies) does not make the orphan sweep delete the real newest
// segment, is refused by a restarted publisher of that identity (which
// would chain its next segment to the wrong one), and makes a subscriber
// count it as invalid and deliver nothing past what it can bind; once the
// real record is back, everything arrives, with no gap.
func TestHeadRepointed(t *testing.T) {
	for _, order := range []Ordering{TopicOrder, PublisherOrder} {
		t.Run(order.String(), func(t *testing.T) {
			ctx := testCtx(t)
			st := newMem(t)
			const topic = "repointed"
			id, err := GenerateIdentity()
			require.NoError(t, err)
			// Stored segments (none carried by the head), so the head
			// names a segment before the newest.
			pub := newClientAs(t, st, id, WithOrdering(order), withoutOpenSegments())
			for _, m := range []string{"a1", "a2", "a3"} {
				_, err := pub.Publish(ctx, topic, []byte(m))
				require.NoError(t, err)
			}
			require.NoError(t, pub.Close(ctx))
			orig := repointHead(t, ctx, st, id, topic)
			origHead, err := decodeHead(topic, orig)
			require.NoError(t, err)

			rep, err := newClient(t, st, WithOrdering(order)).SweepOrphans(ctx, topic)
			require.NoError(t, err)
			require.Zero(t, rep.Deleted, "the newest segment judged orphaned: %+v", rep)
			requireGone(t, st, blobKey(origHead.Seg), false, "the newest segment")

			_, err = newClientAs(t, st, id, WithOrdering(order)).Publish(ctx, topic, []byte("a4"))
			require.ErrorIs(t, err, ErrMalformed, "a publisher resumed from a head naming another segment")

			sub := newClient(t, st, WithOrdering(order))
			s, err := sub.Subscribe(ctx, topic, FromStart(), WithoutPush())
			require.NoError(t, err)
			if order == PublisherOrder {
				_, err = sub.Poll(ctx, topic)
				require.NoError(t, err)
				require.NotZero(t, sub.Stats().Invalid, "the repointed head was not counted")
			}
			key := newTopicKeys(topic).head(id.ID())
			e, err := st.Get(ctx, key)
			require.NoError(t, err)
			_, err = st.CompareAndPut(ctx, key, e.Version, orig)
			require.NoError(t, err)
			var got []string
			for _, m := range receive(t, ctx, sub, s, 3) {
				got = append(got, string(m.Payload))
			}
			require.Equal(t, []string{"a1", "a2", "a3"}, got)
			require.Zero(t, sub.Stats().Gaps)
		})
	}
}

// TestHeadBinding: a format-2 head verifies by its segment's signature and
// binds only to that segment; any change to the header it carries breaks
// the signature; format-1 heads still verify and bind to whatever they
// name (their signature covers it).
func TestHeadBinding(t *testing.T) {
	id, err := GenerateIdentity()
	require.NoError(t, err)
	const topic = "t"
	sg := &segment{Publisher: id.PublicKey(), Prev: Ref{1}, First: 5, Base: 3, Msgs: []segMsg{{Time: 1, Payload: []byte("x")}, {Time: 2}}}
	root := sg.sign(id, topic, nil)
	h := segmentHead(sg, root, Ref{2})
	got, err := decodeHead(topic, h.encode())
	require.NoError(t, err)
	require.Equal(t, h, got)
	require.EqualValues(t, 6, got.Last)
	require.EqualValues(t, 3, got.Base)
	require.NoError(t, got.bindSegment(sg, root))
	require.NoError(t, got.bindRead(topic, sg))

	other := &segment{Publisher: id.PublicKey(), Prev: Ref{9}, First: 1, Base: 1, Msgs: []segMsg{{Time: 1}}}
	otherRoot := other.sign(id, topic, nil)
	require.ErrorIs(t, got.bindSegment(other, otherRoot), errHeadSegment)
	require.ErrorIs(t, got.bindSegment(other, otherRoot), ErrMalformed)

	for name, alter := range map[string]func(h *headRecord){
		"base":  func(h *headRecord) { h.Base++ },
		"count": func(h *headRecord) { h.Count++; h.Last++ },
		"first": func(h *headRecord) { h.First++; h.Last++ },
		"prev":  func(h *headRecord) { h.Prev[0]++ },
		"root":  func(h *headRecord) { h.Root[0]++ },
	} {
		bad := *h
		alter(&bad)
		_, err := decodeHead(topic, bad.encode())
		require.ErrorIs(t, err, ErrBadSignature, name)
	}
	_, err = decodeHead("other topic", h.encode())
	require.ErrorIs(t, err, ErrBadSignature, "another topic")

	v1 := newHeadRecordV1(id, topic, 1, 6, Ref{2})
	got, err = decodeHead(topic, v1.encode())
	require.NoError(t, err)
	require.False(t, got.V2)
	require.NoError(t, got.bindSegment(other, otherRoot))
}

// TestOldFormatsStillRead: a log written by an earlier build (format-2
// segments, a format-1 head record) is delivered, exports verifiable
// proofs, and its publisher resumes after it: its next segment (format 3)
// chains to the old one and its head record becomes format 2.
func TestOldFormatsStillRead(t *testing.T) {
	for _, order := range []Ordering{TopicOrder, PublisherOrder} {
		t.Run(order.String(), func(t *testing.T) {
			ctx := testCtx(t)
			st := newMem(t)
			const topic = "old"
			id, err := GenerateIdentity()
			require.NoError(t, err)
			old := newClientAs(t, st, id, WithOrdering(order))
			tk := newTopicKeys(topic)
			sg := &segment{Publisher: id.PublicKey(), First: 1, Msgs: []segMsg{
				{Time: time.Now().UnixNano(), Payload: []byte("m1")}, {Time: time.Now().UnixNano(), Payload: []byte("m2")}}}
			sg.sign(id, topic, nil)
			data := sg.encode()
			require.Equal(t, byte(segmentTagV2), data[0])
			ref, err := old.eng.blobs.put(ctx, data)
			require.NoError(t, err)
			_, err = st.CompareAndPut(ctx, tk.head(id.ID()), 0, newHeadRecordV1(id, topic, 1, 2, ref).encode())
			require.NoError(t, err)
			_, err = old.eng.announce(ctx, tk, coordOp{anns: []announcement{{Pub: id.ID(), Seg: ref, To: 2, Time: sg.Msgs[1].Time}}})
			require.NoError(t, err)
			require.NoError(t, old.Close(ctx))

			pub := newClientAs(t, st, id, WithOrdering(order))
			r, err := pub.Publish(ctx, topic, []byte("m3"))
			require.NoError(t, err)
			require.EqualValues(t, 3, r.Seq)
			e, err := st.Get(ctx, tk.head(id.ID()))
			require.NoError(t, err)
			h, err := decodeHead(topic, e.Value)
			require.NoError(t, err)
			require.True(t, h.V2)
			require.Equal(t, ref, h.Prev, "the new segment chains to the old one")

			sub := newClient(t, st, WithOrdering(order))
			s, err := sub.Subscribe(ctx, topic, FromStart(), WithoutPush())
			require.NoError(t, err)
			var got []string
			for _, m := range receive(t, ctx, sub, s, 3) {
				got = append(got, string(m.Payload))
				p, err := m.Proof()
				require.NoError(t, err)
				b, err := p.MarshalBinary()
				require.NoError(t, err)
				_, err = VerifyProof(b)
				require.NoError(t, err, "proof of %s", m.Payload)
			}
			require.Equal(t, []string{"m1", "m2", "m3"}, got)
			require.Zero(t, sub.Stats().Gaps)
			require.Zero(t, sub.Stats().Invalid)
		})
	}
}
