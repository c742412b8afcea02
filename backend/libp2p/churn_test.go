package libp2p

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/core"
)

// TestChurn: while 10 publishers x 100 messages run on a 20-node swarm,
// 30% of the nodes (6) are killed one after another and each is replaced
// by a new, empty node (under -race: 4 x 10 on 10 nodes, 3 replaced). Every acknowledged message reaches a live
// subscriber (subscribed before) and a late one (from the start,
// afterwards) exactly once.
func TestChurn(t *testing.T) {
	ctx := testCtx(t, 10*time.Minute)
	nodes, kills, pubsN, per := bySpeed(20, 10), bySpeed(6, 3), bySpeed(10, 4), bySpeed(100, 10)
	sw := newTestSwarm(t, ctx, nodes, nil)
	uri := sw.URI()
	topic := "churn"

	live := newClient(t, ctx, uri)
	lsub, err := live.Subscribe(ctx, topic, core.FromNow(), core.WithBuffer(pubsN*per+1024))
	require.NoError(t, err)
	pubs := make([]*core.Client, pubsN)
	for i := range pubs {
		pubs[i] = newClient(t, ctx, uri)
	}

	var ack acked
	done := make(chan struct{})
	var churn sync.WaitGroup
	killed := 0
	churn.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		originals := sw.Live()
		rng.Shuffle(len(originals), func(i, j int) { originals[i], originals[j] = originals[j], originals[i] })
		for _, victim := range originals[:kills] {
			// Spread the kills over the publishing.
			select {
			case <-done:
			case <-time.After(time.Duration(bySpeed(700, 1500)) * time.Millisecond):
			}
			if err := sw.Kill(victim); err != nil {
				t.Errorf("kill node %d: %v", victim, err)
				return
			}
			idx, err := sw.Add(ctx)
			if err != nil {
				t.Errorf("replacement for node %d: %v", victim, err)
				return
			}
			killed++
			t.Logf("killed node %d, started node %d (%d acknowledged so far)", victim, idx, ack.count())
		}
	})
	start := time.Now()
	publishAll(t, ctx, topic, pubs, per, &ack)
	close(done)
	churn.Wait()
	require.Equal(t, kills, killed, "nodes replaced")
	t.Logf("%d of %d messages acknowledged in %v while %d of %d nodes were replaced",
		ack.count(), pubsN*per, time.Since(start).Round(time.Millisecond), kills, nodes)
	require.Equal(t, pubsN*per, ack.count(), "every publish should eventually succeed while a majority is up")

	got := collectAcked(t, ctx, live, lsub, pubs, &ack)
	t.Logf("live subscriber: %d messages, stats %+v", len(got), live.Stats())

	late := newClient(t, ctx, uri)
	sub, err := late.Subscribe(ctx, topic, core.FromStart(), core.WithBuffer(pubsN*per+1024))
	require.NoError(t, err)
	got = collectAcked(t, ctx, late, sub, pubs, &ack)
	t.Logf("late subscriber: %d messages, stats %+v", len(got), late.Stats())
	require.Zero(t, live.Stats().Invalid+late.Stats().Invalid, "invalid records")
}
