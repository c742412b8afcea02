package bittorrent_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend/bittorrent"
	"github.com/stickypub/stickypub/core"
)

// TestChurn replaces 30% of a 20-node swarm (one node at a time, each new
// node empty, with a new address and ID) while 10 publishers, each with its
// own identity, client and handle, publish 100 messages each. Every
// acknowledged message must reach a live subscriber and a late one exactly
// once.
func TestChurn(t *testing.T) {
	const nodes, replace, pubs = 20, 6, 10
	per := 100
	if testing.Short() || !fullScale() {
		per = 20
	}
	g := &guards{}
	sw := newSwarm(t, nodes, g)
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	_, ns, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	newClient := func() *core.Client {
		st, err := bittorrent.Open(ctx, bittorrent.Options{Bootstrap: sw.Addrs(), PrivateKey: ns, WrapConn: g.wrap, Logger: quietLogger()})
		require.NoError(t, err)
		id, err := core.GenerateIdentity()
		require.NoError(t, err)
		c, err := core.New(st, id)
		require.NoError(t, err)
		t.Cleanup(func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			_ = c.Close(cctx)
			_ = st.Close()
		})
		return c
	}
	const topic = "churn"
	total := pubs * per
	live := newClient()
	lsub, err := live.Subscribe(ctx, topic, core.FromNow(), core.WithoutPush(), core.WithBuffer(total+1024))
	require.NoError(t, err)

	publishers := make([]*core.Client, pubs)
	for i := range publishers {
		publishers[i] = newClient()
	}
	var acked atomic.Int64
	churnDone := make(chan error, 1)
	go func() {
		// Replace a node each time another seventh of the messages is
		// acknowledged.
		for r := range replace {
			for acked.Load() < int64(total*(r+1)/(replace+1)) {
				if ctx.Err() != nil {
					churnDone <- ctx.Err()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := sw.Replace(ctx, (r*7+3)%nodes); err != nil {
				churnDone <- err
				return
			}
			t.Logf("replaced node %d after %d acknowledged messages", (r*7+3)%nodes, acked.Load())
		}
		churnDone <- nil
	}()
	// The live subscriber polls while the messages are published.
	pollStop := make(chan struct{})
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		for {
			select {
			case <-pollStop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			_, _ = live.Poll(ctx, topic)
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for i, p := range publishers {
		wg.Go(func() {
			for j := 1; j <= per; j++ {
				if _, err := p.Publish(ctx, topic, fmt.Appendf(nil, "p%d-m%d", i, j)); err != nil {
					errs <- fmt.Errorf("publisher %d message %d: %w", i, j, err)
					return
				}
				acked.Add(1)
			}
		})
	}
	wg.Wait()
	close(pollStop)
	<-pollDone
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, <-churnDone)
	t.Logf("%d messages acknowledged in %v with %d of %d nodes replaced", total, time.Since(start).Round(time.Millisecond), replace, nodes)

	late := newClient()
	lateSub, err := late.Subscribe(ctx, topic, core.FromStart(), core.WithoutPush(), core.WithBuffer(total+1024))
	require.NoError(t, err)
	for name, s := range map[string]struct {
		c   *core.Client
		sub *core.Subscription
	}{"live": {live, lsub}, "late": {late, lateSub}} {
		got := collectExact(ctx, t, s.c, s.sub, total)
		seen := map[string]bool{}
		next := map[core.PublisherID]uint64{}
		for _, m := range got {
			k := fmt.Sprintf("%s/%d", m.PublisherID, m.Seq)
			require.False(t, seen[k], "%s subscriber: duplicate %s", name, k)
			seen[k] = true
			require.Equal(t, next[m.PublisherID]+1, m.Seq, "%s subscriber: gap or reorder", name)
			next[m.PublisherID] = m.Seq
		}
		for _, p := range publishers {
			assert.EqualValues(t, per, next[p.Identity().ID()], "%s subscriber: messages of a publisher", name)
		}
		st := s.c.Stats()
		assert.Zero(t, st.Gaps, "%s subscriber reported gaps", name)
		assert.Zero(t, st.Duplicates, "%s subscriber suppressed duplicates", name)
		t.Logf("%s subscriber: %d of %d delivered exactly once; stats %+v", name, len(got), total, st)
	}
	require.Empty(t, g.refused())
}

// collectExact polls until want messages arrived, then once more, and
// returns them.
func collectExact(ctx context.Context, t *testing.T, c *core.Client, sub *core.Subscription, want int) []*core.Message {
	t.Helper()
	var got []*core.Message
	drain := func() {
		for {
			select {
			case m := <-sub.Messages():
				got = append(got, m)
			default:
				return
			}
		}
	}
	var lastErr error
	errs := map[string]int{}
	defer func() {
		if len(got) < want {
			for e, n := range errs {
				t.Logf("poll error x%d: %s", n, e)
			}
		}
	}()
	for len(got) < want {
		if _, err := c.Poll(ctx, sub.Topic()); err != nil {
			lastErr = err
			if len(errs) < 20 {
				errs[err.Error()]++
			}
		}
		drain()
		if ctx.Err() != nil {
			require.FailNowf(t, "messages missing", "received %d of %d (last poll error %v)", len(got), want, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, _ = c.Poll(ctx, sub.Topic())
	drain()
	require.Len(t, got, want, "more messages than published")
	return got
}
