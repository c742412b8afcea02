package conformance

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/forge"
)

// testForgedHeads: a real publisher's head record replaced by a forgery
// built from what the store shows of its log (see forge.HeadForgery: a
// head whose unsigned segment reference names another real segment of
// the publisher, a head whose header no longer matches its signature, a
// head carrying another key's signature) makes a subscriber deliver
// nothing that is not the publisher's, in order, and report no gap; in
// publisher order, where subscribers follow head records, the forgery is
// counted as invalid on a linearizable store (on the others a read may
// still show the real head). Once the real record is back, every message
// arrives.
func (s *suite) testForgedHeads(t *testing.T) {
	f := s.setup(t, stressTimeout)
	f.writersDoNotRace()
	topic := testTopic(t)
	pub := f.client(f.store)
	const n = 3
	for i := 1; i <= n; i++ { // one segment each: too large for a head to carry two
		_, err := pub.Publish(f.ctx, topic, segmentPayload(uint64(i)))
		require.NoError(t, err)
	}
	pid := pub.Identity().ID()
	require.NoError(t, pub.Close(f.ctx)) // publishes no more: its head is the forger's to replace
	id, err := core.GenerateIdentity()
	require.NoError(t, err)
	fg, err := forge.New(f.store, id, f.order)
	require.NoError(t, err)
	t.Cleanup(func() { _ = fg.Close(f.ctx) })

	check := func(how forge.HeadForgery, sub *core.Subscription, msgs []*core.Message) {
		t.Helper()
		for i, m := range msgs {
			require.Equal(t, pid, m.PublisherID, "%s: delivered another publisher's message", how)
			require.EqualValues(t, i+1, m.Seq, "%s: delivered out of order", how)
			require.Equal(t, segmentPayload(m.Seq), m.Payload, "%s: delivered a forged payload", how)
		}
		for {
			select {
			case g := <-sub.Gaps():
				require.NotEqual(t, pid, g.Publisher, "%s: real messages reported as a gap: %+v", how, g)
				continue
			default:
			}
			return
		}
	}
	for _, how := range forge.HeadForgeries {
		var restore func(context.Context) error
		for attempt := 0; ; attempt++ { // a fault-injecting store fails some writes
			if restore, err = fg.ForgeHead(f.ctx, topic, pid, how); err == nil || attempt == 20 {
				break
			}
		}
		require.NoError(t, err, "forge head: %s", how)
		sc := f.client(f.store)
		sub := f.subscribe(sc, topic, n, core.FromStart())
		var msgs []*core.Message
		if f.linearizable() && !f.topicOrder() {
			msgs = f.collectUntil(sc, sub, nil, "the forged head counted ("+how.String()+")", func([]*core.Message) bool {
				return sc.Stats().Invalid > 0
			})
		} else {
			for range 10 {
				_, _ = sc.Poll(f.ctx, topic)
			}
			msgs = f.collectUntil(sc, sub, nil, "", func([]*core.Message) bool { return true })
		}
		check(how, sub, msgs)
		for attempt := 0; ; attempt++ {
			if err = restore(f.ctx); err == nil || attempt == 20 {
				break
			}
		}
		require.NoError(t, err, "restore the head after %s", how)
		msgs = f.collectUntil(sc, sub, msgs, "every message after the head was restored", func(got []*core.Message) bool { return len(got) >= n })
		require.Len(t, msgs, n, "%s: duplicates", how)
		check(how, sub, msgs)
	}
}

// segmentPayload is message seq's payload in testForgedHeads: 600
// incompressible bytes, so that no segment holds two messages (a head
// carries its segment while it fits about a kilobyte, see core's open
// segments) and the publisher's chain has a segment per message.
func segmentPayload(seq uint64) []byte {
	out := make([]byte, 0, 600+sha256.Size)
	for i := 0; len(out) < 600; i++ {
		sum := sha256.Sum256(fmt.Appendf(nil, "m%d-%d", seq, i))
		out = append(out, sum[:]...)
	}
	return out[:600]
}
