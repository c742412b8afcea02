package forge_test

// Tampered and forged segments met by a core subscriber (through core's
// public API only): never delivered, counted once, no gap.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/forge"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newMem(t *testing.T) *memory.Store {
	s := memory.New()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newClient(t *testing.T, store backend.Store) *core.Client {
	t.Helper()
	id, err := core.GenerateIdentity()
	require.NoError(t, err)
	c, err := core.New(store, id)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

func newForger(t *testing.T, store backend.Store) *forge.Forger {
	t.Helper()
	id, err := core.GenerateIdentity()
	require.NoError(t, err)
	fg, err := forge.New(store, id, core.OrderDefault)
	require.NoError(t, err)
	t.Cleanup(func() { _ = fg.Close(context.Background()) })
	return fg
}

// publish publishes batches of size messages "m1", "m2"... continuing from
// seq from.
func publish(t *testing.T, ctx context.Context, pub *core.Client, topic string, from, batches, size int) {
	t.Helper()
	seq := from
	for range batches {
		payloads := make([][]byte, size)
		for i := range payloads {
			payloads[i] = fmt.Appendf(nil, "m%d", seq)
			seq++
		}
		_, err := pub.PublishBatch(ctx, topic, payloads)
		require.NoError(t, err)
	}
}

// receive reads n messages from sub, polling c meanwhile.
func receive(t *testing.T, ctx context.Context, c *core.Client, sub *core.Subscription, n int) []*core.Message {
	t.Helper()
	var got []*core.Message
	for len(got) < n {
		_, _ = c.Poll(ctx, sub.Topic())
		select {
		case m := <-sub.Messages():
			got = append(got, m)
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("received %d of %d", len(got), n)
		}
	}
	return got
}

// Each way of tampering with a really signed segment is met by a
// subscriber, counted once as invalid, and delivers nothing; the real
// messages at those seqs arrive afterwards, without a gap.
func TestTamperedSegmentsNeverDelivered(t *testing.T) {
	for _, how := range forge.Tamperings {
		t.Run(how.String(), func(t *testing.T) {
			ctx := testCtx(t)
			store := newMem(t)
			pub := newClient(t, store)
			publish(t, ctx, pub, "t", 1, 1, 3) // seqs 1-3
			sc := newClient(t, store)
			sub, err := sc.Subscribe(ctx, "t", core.FromStart(), core.WithoutPush())
			require.NoError(t, err)
			receive(t, ctx, sc, sub, 3)

			payloads := [][]byte{[]byte("f1"), []byte("f2"), []byte("f3"), []byte("f4")}
			last, err := newForger(t, store).Tamper(ctx, "t", pub.Identity(), 4, payloads, how)
			require.NoError(t, err)
			require.GreaterOrEqual(t, last, uint64(5))
			n, err := sc.Poll(ctx, "t")
			require.NoError(t, err)
			assert.Zero(t, n, "nothing of a tampered segment is delivered")
			assert.EqualValues(t, 1, sc.Stats().Invalid)
			n, err = sc.Poll(ctx, "t") // met again: counted once
			require.NoError(t, err)
			assert.Zero(t, n)
			assert.EqualValues(t, 1, sc.Stats().Invalid)

			publish(t, ctx, pub, "t", 4, 1, int(last)) // seqs 4 to last+3
			msgs := receive(t, ctx, sc, sub, int(last))
			for i, m := range msgs {
				assert.EqualValues(t, 4+i, m.Seq)
				assert.Equal(t, fmt.Appendf(nil, "m%d", 4+i), m.Payload)
			}
			assert.Zero(t, sc.Stats().Gaps)
			assert.EqualValues(t, 1, sc.Stats().Invalid)
		})
	}
}

// A segment whose signature does not verify cannot make a gap: its First
// and Prev are not trusted, so a forged segment that claims the
// publisher's log starts later does not make a subscriber skip real
// messages.
func TestForgedSegmentMakesNoGap(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store)
	publish(t, ctx, pub, "t", 1, 1, 2) // seqs 1-2
	// Claims seqs 8-9 with no previous segment: the log would start at 8.
	_, err := newForger(t, store).Tamper(ctx, "t", pub.Identity(), 8, [][]byte{[]byte("f8"), []byte("f9")}, forge.TamperOtherKey)
	require.NoError(t, err)

	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", core.FromStart(), core.WithoutPush())
	require.NoError(t, err)
	receive(t, ctx, sc, sub, 2)
	_, err = sc.Poll(ctx, "t")
	require.NoError(t, err)
	assert.Zero(t, sc.Stats().Gaps)
	assert.EqualValues(t, 1, sc.Stats().Invalid)
	publish(t, ctx, pub, "t", 3, 1, 8) // seqs 3-10
	msgs := receive(t, ctx, sc, sub, 8)
	assert.EqualValues(t, 3, msgs[0].Seq)
	assert.EqualValues(t, 10, msgs[7].Seq)
	assert.Zero(t, sc.Stats().Gaps)
}

// A tampering the forger does not know, or too few payloads, is an error
// (nothing written).
func TestTamperRejectsBadArguments(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store)
	fg := newForger(t, store)
	_, err := fg.Tamper(ctx, "t", pub.Identity(), 1, [][]byte{[]byte("one")}, forge.TamperAltered)
	require.Error(t, err)
	_, err = fg.Tamper(ctx, "t", pub.Identity(), 1, [][]byte{[]byte("1"), []byte("2"), []byte("3")}, forge.TamperSpliced)
	require.Error(t, err)
	_, err = fg.Tamper(ctx, "t", pub.Identity(), 1, [][]byte{[]byte("1"), []byte("2")}, forge.Tampering(99))
	require.Error(t, err)
	assert.Equal(t, "tampering(99)", forge.Tampering(99).String())
}
