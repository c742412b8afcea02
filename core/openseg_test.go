package core

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

// randomPayload returns n incompressible bytes.
func randomPayload(n int) []byte {
	p := make([]byte, n)
	_, _ = rand.Read(p)
	return p
}

// requireMessages checks that msgs are exactly payloads, seqs 1 on.
func requireMessages(t *testing.T, payloads [][]byte, msgs []*Message) {
	t.Helper()
	require.Len(t, msgs, len(payloads))
	for i, m := range msgs {
		require.EqualValues(t, i+1, m.Seq)
		require.Equal(t, payloads[i], m.Payload, "seq %d", i+1)
	}
}

// TestOpenSegmentsFewerBlobs: in publisher order small messages ride in the
// head record, and a segment blob is stored only when the open segment is
// full (about one per seven 100-byte messages on a store of 1000-byte
// values, instead of one per publish); a live subscriber that sees the
// open segment grow, and a late one, receive every message once, in order.
func TestOpenSegmentsFewerBlobs(t *testing.T) {
	ctx := testCtx(t)
	st := &countingStore{Store: weakMem{memory.NewSpace(memory.Options{MaxValueSize: 1000}).Open()}}
	pub := newClient(t, st, WithOrdering(PublisherOrder))
	_, err := pub.Publish(ctx, "open", []byte("first"))
	require.NoError(t, err)
	live := newClient(t, st, WithOrdering(PublisherOrder))
	ls, err := live.Subscribe(ctx, "open", FromStart(), WithoutPush(), WithBuffer(1000))
	require.NoError(t, err)
	payloads := [][]byte{[]byte("first")}
	var got []*Message
	const n = 200
	for i := range n {
		p := randomPayload(100)
		payloads = append(payloads, p)
		_, err := pub.Publish(ctx, "open", p)
		require.NoError(t, err)
		if i%3 == 0 { // sees the open segment at several sizes
			got = append(got, receive(t, ctx, live, ls, len(payloads)-len(got))...)
		}
	}
	got = append(got, receive(t, ctx, live, ls, len(payloads)-len(got))...)
	requireMessages(t, payloads, got)
	require.Zero(t, live.Stats().Gaps+live.Stats().Duplicates+live.Stats().Invalid)

	st.mu.Lock()
	blobs := st.blobs
	st.mu.Unlock()
	t.Logf("%d messages, %d blobs stored", n+1, blobs)
	require.Positive(t, blobs, "no open segment was ever sealed")
	require.Less(t, blobs, n/4, "a blob per publish: the head does not carry the open segment")

	late := newClient(t, st, WithOrdering(PublisherOrder))
	sub, err := late.Subscribe(ctx, "open", FromStart(), WithoutPush(), WithBuffer(1000))
	require.NoError(t, err)
	requireMessages(t, payloads, receive(t, ctx, late, sub, len(payloads)))
	require.Zero(t, late.Stats().Gaps+late.Stats().Duplicates+late.Stats().Invalid)
}

// TestOpenSegmentRestart: a publisher restarted while its head carries an
// open segment (stored nowhere else) seals it and goes on; a subscriber
// that had delivered part of it gets the rest without gap or duplicate,
// and a late one gets everything.
func TestOpenSegmentRestart(t *testing.T) {
	ctx := testCtx(t)
	st := weakMem{newMem(t)}
	id, err := GenerateIdentity()
	require.NoError(t, err)
	var payloads [][]byte
	publish := func(c *Client, n int) {
		for range n {
			p := randomPayload(50)
			payloads = append(payloads, p)
			_, err := c.Publish(ctx, "restart", p)
			require.NoError(t, err)
		}
	}
	first := newClientAs(t, st, id, WithOrdering(PublisherOrder))
	publish(first, 3)
	live := newClient(t, st, WithOrdering(PublisherOrder))
	ls, err := live.Subscribe(ctx, "restart", FromStart(), WithoutPush())
	require.NoError(t, err)
	got := receive(t, ctx, live, ls, 3)
	require.NoError(t, first.Close(ctx))
	e, err := st.Get(ctx, newTopicKeys("restart").head(id.ID()))
	require.NoError(t, err)
	h, err := decodeHead("restart", e.Value)
	require.NoError(t, err)
	require.NotNil(t, h.inline, "the head carries its segment")
	requireGone(t, st, blobKey(h.Seg), true, "an open segment is stored before it is sealed")

	second := newClientAs(t, st, id, WithOrdering(PublisherOrder))
	publish(second, 2)
	requireGone(t, st, blobKey(h.Seg), false, "the open segment found at restart, sealed")
	got = append(got, receive(t, ctx, live, ls, 2)...)
	requireMessages(t, payloads, got)
	require.Zero(t, live.Stats().Gaps+live.Stats().Duplicates+live.Stats().Invalid)

	late := newClient(t, st, WithOrdering(PublisherOrder))
	sub, err := late.Subscribe(ctx, "restart", FromStart(), WithoutPush())
	require.NoError(t, err)
	requireMessages(t, payloads, receive(t, ctx, late, sub, len(payloads)))
	require.Zero(t, late.Stats().Gaps)
}

// expiringMem is a memory store whose records "expire" (it declares a
// lifetime), so publishers refresh them.
type expiringMem struct {
	*memory.Store
	lifetime time.Duration
}

func (s expiringMem) Capabilities() backend.Capabilities {
	c := s.Store.Capabilities()
	c.RecordLifetime = s.lifetime
	return c
}

// TestOpenHeadReaders: whatever walks a publisher's chain from its head
// reads the head's open segment from the head: topic info counts every
// message, the orphan sweep (however late) deletes none of the sealed
// segments behind it, and the refresh of records on an expiring store
// succeeds.
func TestOpenHeadReaders(t *testing.T) {
	ctx := testCtx(t)
	st := expiringMem{Store: memory.NewSpace(memory.Options{MaxValueSize: 1000}).Open(), lifetime: 300 * time.Millisecond}
	pub := newClient(t, st, WithOrdering(PublisherOrder))
	const n = 30
	for range n {
		_, err := pub.Publish(ctx, "readers", randomPayload(100))
		require.NoError(t, err)
	}
	e, err := st.Get(ctx, newTopicKeys("readers").head(pub.pid))
	require.NoError(t, err)
	h, err := decodeHead("readers", e.Value)
	require.NoError(t, err)
	require.NotNil(t, h.inline)
	require.False(t, h.Prev.IsZero(), "sealed segments behind the open one")

	info, err := newClient(t, st, WithOrdering(PublisherOrder)).Info(ctx, "readers")
	require.NoError(t, err)
	require.EqualValues(t, n, info.RetainedMessages, "%+v", info)
	require.Zero(t, info.Unreadable)

	later := newClient(t, st, WithOrdering(PublisherOrder), WithClock(func() time.Time { return time.Now().Add(10 * DefaultOrphanGrace) }))
	rep, err := later.SweepOrphans(ctx, "readers")
	require.NoError(t, err)
	require.Zero(t, rep.Deleted, "%+v", rep)
	require.Positive(t, rep.Reachable, "%+v", rep)

	require.Eventually(t, func() bool { return pub.Stats().Refreshes > 0 }, 20*time.Second, 20*time.Millisecond,
		"the publisher never refreshed its records")

	sc := newClient(t, st, WithOrdering(PublisherOrder))
	sub, err := sc.Subscribe(ctx, "readers", FromStart(), WithoutPush())
	require.NoError(t, err)
	require.Len(t, receive(t, ctx, sc, sub, n), n)
	require.Zero(t, sc.Stats().Gaps)
}

// coordGets counts the reads of coordinator records (keys c/...).
type coordGets struct {
	weakMem
	n atomic.Int64
}

func (s *coordGets) Get(ctx context.Context, key string) (backend.Entry, error) {
	if strings.HasPrefix(key, "c/") {
		s.n.Add(1)
	}
	return s.weakMem.Get(ctx, key)
}

// TestPublishingKeepsVerificationPaced: in publisher order a publisher that
// keeps publishing does not re-read the coordinator at every verification
// tick: a flush resets the idle verification's back-off only when it wrote
// a registration or lease (the head itself is read back at each publish).
func TestPublishingKeepsVerificationPaced(t *testing.T) {
	ctx := testCtx(t)
	st := &coordGets{weakMem: weakMem{newMem(t)}}
	const tick = 5 * time.Millisecond
	pub := newClient(t, st, WithOrdering(PublisherOrder), WithVerifyInterval(tick))
	_, err := pub.Publish(ctx, "paced", []byte("first")) // registers
	require.NoError(t, err)
	time.Sleep(10 * tick)
	before := st.n.Load()
	const n = 100
	start := time.Now()
	for i := range n {
		_, err := pub.Publish(ctx, "paced", fmt.Appendf(nil, "m%d", i))
		require.NoError(t, err)
		time.Sleep(tick / 2)
	}
	ticks := time.Since(start) / tick
	reads := st.n.Load() - before
	t.Logf("%d coordinator reads in %d verification ticks while publishing", reads, ticks)
	// At most one verification per tick<<maxVerifyBackoff once calm, a few
	// more while the back-off grows.
	require.LessOrEqual(t, reads, int64(ticks>>maxVerifyBackoff)+2*maxVerifyBackoff,
		"the idle verification ran at every tick while publishing")
}
