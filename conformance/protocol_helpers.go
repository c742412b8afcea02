package conformance

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
)

// client makes a protocol client with a fresh identity on store; the test's
// cleanup closes it.
func (f *fixture) client(store backend.Store, opts ...core.Option) *core.Client {
	f.t.Helper()
	id, err := core.GenerateIdentity()
	require.NoError(f.t, err)
	if f.order != core.OrderDefault {
		opts = append([]core.Option{core.WithOrdering(f.order)}, opts...)
	}
	c, err := core.New(store, id, opts...)
	require.NoError(f.t, err)
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// clients makes n clients.
func (f *fixture) clients(store backend.Store, n int, opts ...core.Option) []*core.Client {
	out := make([]*core.Client, n)
	for i := range out {
		out[i] = f.client(store, opts...)
	}
	return out
}

// subscribe subscribes c with room for want messages in the channel, so
// polls never block on a full channel.
func (f *fixture) subscribe(c *core.Client, topic string, want int, opts ...core.SubscribeOption) *core.Subscription {
	f.t.Helper()
	opts = append([]core.SubscribeOption{core.WithBuffer(want + 1024)}, opts...)
	s, err := c.Subscribe(f.ctx, topic, opts...)
	require.NoError(f.t, err, "Subscribe(%q)", topic)
	return s
}

// collect polls until want messages arrived on sub (failing at the
// fixture's deadline), then polls once more and checks that nothing else
// arrives: no duplicate, no extra.
func (f *fixture) collect(c *core.Client, sub *core.Subscription, want int) []*core.Message {
	f.t.Helper()
	got := f.collectAtLeast(c, sub, want)
	require.Len(f.t, got, want, "received more messages than published (duplicates?)")
	return got
}

// collectAtLeast polls until at least want messages arrived, then polls
// once more and returns everything received.
func (f *fixture) collectAtLeast(c *core.Client, sub *core.Subscription, want int) []*core.Message {
	f.t.Helper()
	var got []*core.Message
	var lastErr error
	drain := func() {
		for {
			select {
			case m, ok := <-sub.Messages():
				if !ok {
					return
				}
				got = append(got, m)
			default:
				return
			}
		}
	}
	for len(got) < want {
		if _, err := c.Poll(f.ctx, sub.Topic()); err != nil {
			lastErr = err
		}
		drain()
		if len(got) >= want {
			break
		}
		if !sleepCtx(f.ctx, 5*time.Millisecond) {
			require.FailNowf(f.t, "messages missing", "received %d of %d messages before the deadline (last poll error: %v; stats %+v)",
				len(got), want, lastErr, c.Stats())
		}
	}
	_, _ = c.Poll(f.ctx, sub.Topic())
	drain()
	return got
}

// collectUntil polls c and adds what arrives on sub to got until done
// holds of everything received (failing, naming what, at the fixture's
// deadline), and returns it all.
func (f *fixture) collectUntil(c *core.Client, sub *core.Subscription, got []*core.Message, what string, done func([]*core.Message) bool) []*core.Message {
	f.t.Helper()
	for !done(got) {
		_, _ = c.Poll(f.ctx, sub.Topic())
		for drained := false; !drained; {
			select {
			case m, ok := <-sub.Messages():
				if !ok {
					require.FailNowf(f.t, "subscription closed", "waiting for %s: %d messages received", what, len(got))
				}
				got = append(got, m)
			default:
				drained = true
			}
		}
		if !done(got) && !sleepCtx(f.ctx, 5*time.Millisecond) {
			require.FailNowf(f.t, "condition never held", "waiting for %s: %d messages received before the deadline (stats %+v)", what, len(got), c.Stats())
		}
	}
	return got
}

// msgID names a message by publisher and sequence number.
type msgID struct {
	pub core.PublisherID
	seq uint64
}

// checkExact verifies that msgs hold, for every publisher in perPub, every
// sequence number 1..perPub[p] exactly once and in order, with the payload
// payload(publisherIndex, seq), and that the client saw no gap and no
// invalid record.
func (f *fixture) checkExact(c *core.Client, msgs []*core.Message, pubs []*core.Client, perPub int, payload func(i int, seq uint64) string) {
	f.t.Helper()
	index := map[core.PublisherID]int{}
	for i, p := range pubs {
		index[p.Identity().ID()] = i
	}
	next := map[core.PublisherID]uint64{}
	seen := map[msgID]bool{}
	for _, m := range msgs {
		i, ok := index[m.PublisherID]
		require.True(f.t, ok, "message from unknown publisher %s", m.PublisherID)
		id := msgID{m.PublisherID, m.Seq}
		require.False(f.t, seen[id], "duplicate message %s/%d", m.PublisherID, m.Seq)
		seen[id] = true
		require.Equal(f.t, next[m.PublisherID]+1, m.Seq, "publisher %d: out of order or gap", i)
		next[m.PublisherID] = m.Seq
		if payload != nil {
			require.Equal(f.t, payload(i, m.Seq), string(m.Payload), "payload of %s/%d", m.PublisherID, m.Seq)
		}
	}
	for _, p := range pubs {
		require.EqualValues(f.t, perPub, next[p.Identity().ID()], "messages of publisher %s", p.Identity().ID())
	}
	st := c.Stats()
	require.Zero(f.t, st.Gaps, "gaps reported")
	require.Zero(f.t, st.Invalid, "invalid records counted")
}

// order returns the (publisher, seq) sequence of msgs.
func order(msgs []*core.Message) []msgID {
	out := make([]msgID, len(msgs))
	for i, m := range msgs {
		out[i] = msgID{m.PublisherID, m.Seq}
	}
	return out
}

// publishAll has every client publish n messages concurrently, each
// client sequentially, with payload(i, seq).
func (f *fixture) publishAll(topic string, pubs []*core.Client, n int, payload func(i int, seq uint64) string) {
	f.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(pubs))
	for i, p := range pubs {
		wg.Go(func() {
			for j := 1; j <= n; j++ {
				r, err := p.Publish(f.ctx, topic, []byte(payload(i, uint64(j))))
				if err != nil {
					errs <- fmt.Errorf("publisher %d message %d: %w", i, j, err)
					return
				}
				if r.Seq != uint64(j) {
					errs <- fmt.Errorf("publisher %d message %d got seq %d", i, j, r.Seq)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(f.t, err)
	}
}

func payloadOf(i int, seq uint64) string { return fmt.Sprintf("p%d-m%d", i, seq) }

// eventually retries cond until it holds or the fixture's deadline passes.
func (f *fixture) eventually(what string, cond func() bool) {
	f.t.Helper()
	for !cond() {
		if !sleepCtx(f.ctx, 10*time.Millisecond) {
			require.FailNow(f.t, "condition never held: "+what)
		}
	}
}

// limited declares a smaller value limit than its store's, hiding optional
// interfaces; the protocol must then chunk and fold.
type limited struct {
	backend.Store
	max int
}

func (l limited) Capabilities() backend.Capabilities {
	c := l.Store.Capabilities()
	c.MaxValueSize = l.max
	return c
}

func (l limited) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := backend.CheckValue(value, l.Capabilities()); err != nil {
		return 0, err
	}
	return l.Store.CompareAndPut(ctx, key, expect, value)
}

// testTopic returns a topic name unique to the test.
func testTopic(t *testing.T) string { return "conformance/" + t.Name() }
