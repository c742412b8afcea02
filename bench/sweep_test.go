package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/forge"
)

// BenchmarkSweepBolt times SweepOrphans on a bolt topic filled by
// fillTopic (catchUpN messages from catchUpPublishers, in segments of 100
// and of 1 message) beside its baseline in the same run: a late joiner's
// catch-up of the same topic (which also reads and verifies every
// segment). Each iteration runs one sweep and one catch-up, each from a
// fresh client (cold cache); it reports both durations and their ratio
// ("x-catchup": sweep time / catch-up time). The first sweep also deletes
// ten orphans (segments of publishers that crashed long ago), written
// before the timer starts.
//
//	go test -run '^$' -bench SweepBolt -benchtime 3x ./bench/
func BenchmarkSweepBolt(b *testing.B) {
	for _, batch := range catchUpBatches {
		s := openBolt(b)
		fillTopic(b, s, batch)
		b.Run(fmt.Sprintf("segment=%d", batch), func(b *testing.B) { benchSweep(b, s) })
	}
}

func benchSweep(b *testing.B, store backend.Store) {
	ctx := benchCtx(b)
	newClient := func() *core.Client {
		id, err := core.GenerateIdentity()
		if err != nil {
			b.Fatal(err)
		}
		c, err := core.New(store, id)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	const orphans = 10
	for range orphans { // publishers that crashed long ago, mid-publish
		id, err := core.GenerateIdentity()
		if err != nil {
			b.Fatal(err)
		}
		f, err := forge.New(store, id, core.OrderDefault)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.CrashedSegment(ctx, catchUpTopic, time.Now().Add(-2*core.DefaultOrphanGrace), payload(0, 0)); err != nil {
			b.Fatal(err)
		}
		_ = f.Close(ctx)
	}
	var sweep, catchUp time.Duration
	var blobs, deleted int
	b.ResetTimer()
	for range b.N {
		c := newClient()
		start := time.Now()
		rep, err := c.SweepOrphans(ctx, catchUpTopic)
		if err != nil {
			b.Fatal(err)
		}
		sweep += time.Since(start)
		blobs, deleted = rep.Blobs, deleted+rep.Deleted
		if rep.Kept != 0 || rep.Segments != rep.Reachable+rep.Deleted {
			b.Fatalf("sweep of a settled topic: %+v", rep)
		}
		_ = c.Close(ctx)

		c = newClient()
		start = time.Now()
		sub, err := c.Subscribe(ctx, catchUpTopic, core.FromStart(), core.WithBuffer(catchUpN), core.WithoutPush())
		if err != nil {
			b.Fatal(err)
		}
		for got := 0; got < catchUpN; {
			n, err := c.Poll(ctx, catchUpTopic)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		catchUp += time.Since(start)
		if len(sub.Messages()) != catchUpN {
			b.Fatalf("caught up %d of %d", len(sub.Messages()), catchUpN)
		}
		_ = c.Close(ctx)
	}
	b.StopTimer()
	if deleted != orphans {
		b.Fatalf("%d orphans deleted, want %d", deleted, orphans)
	}
	n := float64(b.N)
	b.ReportMetric(sweep.Seconds()/n, "sweep-s")
	b.ReportMetric(catchUp.Seconds()/n, "catchup-s")
	b.ReportMetric(sweep.Seconds()/catchUp.Seconds(), "x-catchup")
	b.ReportMetric(float64(blobs), "blobs")
	b.Logf("%d blobs listed per sweep; %d orphans deleted in %d sweeps", blobs, deleted, b.N)
}
