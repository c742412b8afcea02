package libp2p

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/core"
)

// client makes a protocol client with a fresh identity on its own store
// handle (opened through the swarm's URI); the test closes both.
func newClient(t *testing.T, ctx context.Context, uri string) *core.Client {
	t.Helper()
	c, _ := newClientStore(t, ctx, uri)
	return c
}

// newClientStore is newClient, also returning the client's store handle.
func newClientStore(t *testing.T, ctx context.Context, uri string) (*core.Client, *Store) {
	t.Helper()
	st := openTestURI(t, ctx, uri)
	id, err := core.GenerateIdentity()
	require.NoError(t, err)
	c, err := core.New(st, id)
	require.NoError(t, err)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(cctx)
	})
	return c, st
}

// sumStats adds up the handles' counters.
func sumStats(stores []*Store) Stats {
	var sum Stats
	for _, st := range stores {
		s := st.Stats()
		sum.Corrupt += s.Corrupt
		sum.Repairs += s.Repairs
		sum.Refreshes += s.Refreshes
		sum.Unconfirmed += s.Unconfirmed
		sum.RefusedDials += s.RefusedDials
		sum.Gets += s.Gets
		sum.Puts += s.Puts
		sum.Conflicts += s.Conflicts
		sum.Unavailable += s.Unavailable
		sum.Suspected += s.Suspected
	}
	return sum
}

// openTestURI opens a store through backend.Open; the test closes it.
func openTestURI(t *testing.T, ctx context.Context, uri string) *Store {
	t.Helper()
	o, err := parseURIString(uri)
	require.NoError(t, err)
	o.Logger = quiet
	st, err := Open(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// acked is the set of acknowledged messages: publisher index -> seq -> payload.
type acked struct {
	mu sync.Mutex
	m  map[int]map[uint64]string
}

func (a *acked) add(i int, seq uint64, payload string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[int]map[uint64]string{}
	}
	if a.m[i] == nil {
		a.m[i] = map[uint64]string{}
	}
	a.m[i][seq] = payload
}

func (a *acked) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, m := range a.m {
		n += len(m)
	}
	return n
}

// publishAll has every client publish n messages, each client
// sequentially, recording what was acknowledged. A publish that fails is
// logged, not fatal: only acknowledged messages must arrive.
func publishAll(t *testing.T, ctx context.Context, topic string, pubs []*core.Client, n int, ack *acked) {
	t.Helper()
	start := time.Now()
	defer func() {
		t.Logf("%d publishers x %d messages: %d acknowledged in %v", len(pubs), n, ack.count(), time.Since(start).Round(time.Millisecond))
	}()
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Go(func() {
			for j := 1; j <= n; j++ {
				payload := fmt.Sprintf("p%d-m%d", i, j)
				r, err := p.Publish(ctx, topic, []byte(payload))
				if err != nil {
					t.Logf("publisher %d message %d not acknowledged: %v", i, j, err)
					return
				}
				ack.add(i, r.Seq, payload)
			}
		})
	}
	wg.Wait()
}

// collectAcked polls sub until every acknowledged message arrived (or
// the context ends), then checks exactly-once delivery: each acknowledged
// message once, with its payload, nothing twice, nothing from unknown
// publishers.
func collectAcked(t *testing.T, ctx context.Context, c *core.Client, sub *core.Subscription, pubs []*core.Client, ack *acked) []*core.Message {
	t.Helper()
	index := map[core.PublisherID]int{}
	for i, p := range pubs {
		index[p.Identity().ID()] = i
	}
	want := ack.count()
	start := time.Now()
	defer func() {
		t.Logf("collected %d acknowledged messages in %v", want, time.Since(start).Round(time.Millisecond))
	}()
	type id struct {
		pub int
		seq uint64
	}
	seen := map[id]int{}
	var got []*core.Message
	missing := func() int {
		ack.mu.Lock()
		defer ack.mu.Unlock()
		n := 0
		for i, m := range ack.m {
			for seq := range m {
				if seen[id{i, seq}] == 0 {
					n++
				}
			}
		}
		return n
	}
	drain := func() {
		for {
			select {
			case m := <-sub.Messages():
				i, ok := index[m.PublisherID]
				require.True(t, ok, "message from unknown publisher %s", m.PublisherID)
				seen[id{i, m.Seq}]++
				got = append(got, m)
			default:
				return
			}
		}
	}
	for {
		_, _ = c.Poll(ctx, sub.Topic())
		drain()
		if missing() == 0 {
			break
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			require.FailNowf(t, "messages missing", "%d of %d acknowledged messages never arrived (stats %+v)", missing(), want, c.Stats())
		}
	}
	_, _ = c.Poll(ctx, sub.Topic())
	drain()
	ack.mu.Lock()
	defer ack.mu.Unlock()
	for _, m := range got {
		k := id{index[m.PublisherID], m.Seq}
		require.Equal(t, 1, seen[k], "publisher %d seq %d delivered %d times", k.pub, k.seq, seen[k])
		if p, ok := ack.m[k.pub][k.seq]; ok {
			require.Equal(t, p, string(m.Payload), "payload of publisher %d seq %d", k.pub, k.seq)
		}
	}
	return got
}
