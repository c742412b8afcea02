package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/redis"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/redistest"
)

// Independent publishers (issue 10): P identities, each with its own
// client and (where the engine allows it) its own store handle, as P
// processes would be, publishing one message at a time to one topic while
// a live subscriber (its own client and handle, pushed) receives and
// verifies every message. The timed region ends when every publish is
// acknowledged AND the subscriber has delivered all b.N messages exactly
// once; a lost or duplicated message fails the benchmark.

// orderings are the topic orderings the independent benchmarks compare.
var orderings = []core.Ordering{core.TopicOrder, core.PublisherOrder}

// liveSub is a subscriber that counts what it receives while the
// publishers run.
type liveSub struct {
	want int
	got  atomic.Int64
	dups atomic.Int64
	done chan struct{}
}

// startLiveSub subscribes a fresh identity on store to topic from now on,
// with push, and counts deliveries in the background until want arrived.
func startLiveSub(b *testing.B, ctx context.Context, store backend.Store, topic string, order core.Ordering, want int) *liveSub {
	b.Helper()
	id, err := core.GenerateIdentity()
	if err != nil {
		b.Fatal(err)
	}
	c, err := core.New(store, id, core.WithOrdering(order))
	if err != nil {
		b.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, topic, core.FromNow(), core.WithBuffer(4096))
	if err != nil {
		b.Fatal(err)
	}
	ls := &liveSub{want: want, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		seen := make(map[core.PublisherID]uint64)
		for m := range sub.Messages() {
			if m.Seq <= seen[m.PublisherID] {
				ls.dups.Add(1)
				continue
			}
			seen[m.PublisherID] = m.Seq
			if ls.got.Add(1) == int64(want) {
				close(ls.done)
			}
		}
	})
	b.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Close(cctx)
		wg.Wait()
	})
	return ls
}

// wait blocks until the subscriber has every message, or fails at ctx's end.
func (ls *liveSub) wait(b *testing.B, ctx context.Context) {
	b.Helper()
	select {
	case <-ls.done:
	case <-ctx.Done():
		b.Fatalf("live subscriber received %d of %d messages (%d duplicates) before the deadline", ls.got.Load(), ls.want, ls.dups.Load())
	}
	if d := ls.dups.Load(); d > 0 {
		b.Fatalf("live subscriber received %d duplicates", d)
	}
}

// independentRun is one measured run: p publishing goroutines (goroutine
// w on client(w)) publish b.N messages in total, one at a time, while a
// live subscriber on subStore receives them. It returns the elapsed time
// (until every publish is acknowledged and every message delivered) and the
// retries of clients, and reports the rate of acknowledgements alone as
// metric (unless empty).
func independentRun(b *testing.B, ctx context.Context, topic string, order core.Ordering, p int,
	subStore backend.Store, clients []*core.Client, client func(w int) *core.Client, metric string) (time.Duration, uint64) {
	b.Helper()
	ls := startLiveSub(b, ctx, subStore, topic, order, b.N)
	var before uint64
	for _, c := range clients {
		before += c.Stats().Retries
	}
	start := time.Now()
	_, err := timeWorkers(b.N, p, func(w, n int) error {
		c := client(w)
		for i := range n {
			if _, err := c.Publish(ctx, topic, payload(w, i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	acked := time.Since(start)
	ls.wait(b, ctx)
	elapsed := time.Since(start)
	if metric != "" {
		b.ReportMetric(float64(b.N)/acked.Seconds(), metric)
	}
	var retries uint64
	for _, c := range clients {
		retries += c.Stats().Retries
	}
	retries -= before
	return elapsed, retries
}

// newClients makes n clients (n identities) in order, the i-th on the
// store stores(i) returns; they are closed when the run ends.
func newClients(b *testing.B, n int, order core.Ordering, stores func(i int) backend.Store) []*core.Client {
	b.Helper()
	out := make([]*core.Client, n)
	for i := range out {
		id, err := core.GenerateIdentity()
		if err != nil {
			b.Fatal(err)
		}
		c, err := core.New(stores(i), id, core.WithOrdering(order))
		if err != nil {
			b.Fatal(err)
		}
		out[i] = c
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, c := range out {
			_ = c.Close(ctx)
		}
	})
	return out
}

// warmUp has every client publish one message to topic at once (their
// registration on the topic, in publisher order, and their first
// announcement), and returns the retries this cost per publisher (reported
// as "start-retries/pub"). The timed region that follows measures the
// steady state.
func warmUp(b *testing.B, ctx context.Context, topic string, clients []*core.Client) float64 {
	b.Helper()
	var before uint64
	for _, c := range clients {
		before += c.Stats().Retries
	}
	if _, err := timeWorkers(len(clients), len(clients), func(w, n int) error {
		_, err := clients[w].Publish(ctx, topic, payload(w, 1<<30))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	var after uint64
	for _, c := range clients {
		after += c.Stats().Retries
	}
	return float64(after-before) / float64(len(clients))
}

// steadyPublish has every client publish once at the same time (warmUp:
// their registrations, untimed), then times b.N publishes to benchTopic by
// one goroutine per client; it reports msgs/s, retries/msg of the timed
// region and start-retries/pub, and returns the timed region and the
// warm-up's duration.
func steadyPublish(b *testing.B, ctx context.Context, clients []*core.Client) (elapsed, warm time.Duration) {
	b.Helper()
	start := time.Now()
	startRetries := warmUp(b, ctx, benchTopic, clients)
	warm = time.Since(start)
	retries := func() (n uint64) {
		for _, c := range clients {
			n += c.Stats().Retries
		}
		return n
	}
	before := retries()
	elapsed = runWorkers(b, len(clients), "msgs/s", func(w, n int) error {
		for i := range n {
			if _, err := clients[w].Publish(ctx, benchTopic, payload(w, i)); err != nil {
				return err
			}
		}
		return nil
	})
	b.ReportMetric(float64(retries()-before)/float64(b.N), "retries/msg")
	b.ReportMetric(startRetries, "start-retries/pub") // after runWorkers: ResetTimer drops metrics
	return elapsed, warm
}

// reportIndependent reports msgs/s and retries/msg of a run.
func reportIndependent(b *testing.B, elapsed time.Duration, retries uint64) float64 {
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(float64(retries)/float64(b.N), "retries/msg")
	return rate
}

// BenchmarkIndependentRedis: P independent publishers on Redis, each with
// its own client and its own store handle (its own go-redis pool), one
// message at a time, a live pushed subscriber on its own handle verifying
// every message; then, in the same run, b.N XADDs by P goroutines each with
// its own go-redis client on the same server.
//
//	order=ORDER/P=n   msgs/s (acknowledged and delivered), retries/msg,
//	                  xadd-ops/s, x-xadd (msgs/s / XADD rate)
func BenchmarkIndependentRedis(b *testing.B) {
	srv := redistest.Require(b)
	b.Logf("redis: %s", srv)
	for _, order := range orderings {
		for _, p := range []int{10, 100} {
			b.Run(fmt.Sprintf("order=%s/P=%d", order, p), func(b *testing.B) {
				ctx := benchCtx(b)
				prefix := redistest.Prefix(b)
				redistest.CleanupPrefix(b, srv, prefix)
				open := func() backend.Store { return openRedisPrefix(b, srv, prefix) }
				clients := newClients(b, p, order, func(int) backend.Store { return open() })
				startRetries := warmUp(b, ctx, benchTopic, clients)
				b.ResetTimer()
				elapsed, retries := independentRun(b, ctx, benchTopic, order, p, open(), clients,
					func(w int) *core.Client { return clients[w] }, "acked-msgs/s")
				b.StopTimer()
				rate := reportIndependent(b, elapsed, retries)
				b.ReportMetric(startRetries, "start-retries/pub")
				xadd := xaddSeparate(b, ctx, srv, prefix+"xadd", p)
				b.ReportMetric(xadd, "xadd-ops/s")
				b.ReportMetric(rate/xadd, "x-xadd")
			})
		}
	}
}

// BenchmarkLiveRedis is issue 11's measure: one client (one identity and
// store handle) publishing b.N messages of 100 bytes from P goroutines in
// topic order (Redis's default), while a live pushed subscriber on its own
// client and handle receives and verifies every message; the timed region
// ends when every message is acknowledged and delivered. Then, in the same
// run, b.N XADDs by P goroutines sharing one go-redis client (the same
// number of clients) on the same server.
//
//	one-client/P=n  msgs/s (acknowledged and delivered), acked-msgs/s,
//	                retries/msg, xadd-ops/s, x-xadd (msgs/s / XADD rate)
func BenchmarkLiveRedis(b *testing.B) {
	srv := redistest.Require(b)
	for _, p := range []int{1, 100} {
		b.Run(fmt.Sprintf("one-client/P=%d", p), func(b *testing.B) {
			ctx := benchCtx(b)
			prefix := redistest.Prefix(b)
			redistest.CleanupPrefix(b, srv, prefix)
			open := func() backend.Store { return openRedisPrefix(b, srv, prefix) }
			clients := newClients(b, 1, core.TopicOrder, func(int) backend.Store { return open() })
			warmUp(b, ctx, benchTopic, clients)
			b.ResetTimer()
			elapsed, retries := independentRun(b, ctx, benchTopic, core.TopicOrder, p, open(), clients,
				func(int) *core.Client { return clients[0] }, "acked-msgs/s")
			b.StopTimer()
			rate := reportIndependent(b, elapsed, retries)
			xadd := xaddClients(b, ctx, srv, prefix+"xadd", p, 1)
			b.ReportMetric(xadd, "xadd-ops/s")
			b.ReportMetric(rate/xadd, "x-xadd")
		})
	}
}

// openRedisPrefix opens one more Store handle on srv under prefix (the
// caller cleans the prefix up); it is closed when the run ends.
func openRedisPrefix(b *testing.B, srv *redistest.Server, prefix string) *redis.Store {
	b.Helper()
	s, err := redis.Open(benchCtx(b), redis.Options{
		Addrs: srv.Addrs, Cluster: srv.Cluster, Username: srv.Username, Password: srv.Password,
		DB: srv.DB, TLS: srv.TLS, Prefix: prefix, DialTimeout: 2 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// xaddSeparate runs b.N XADDs of payloadSize bytes to one stream from p
// goroutines, each with its own go-redis client, and returns their rate.
func xaddSeparate(b *testing.B, ctx context.Context, srv *redistest.Server, stream string, p int) float64 {
	return xaddClients(b, ctx, srv, stream, p, p)
}

// xaddClients runs b.N XADDs of payloadSize bytes to one stream from p
// goroutines sharing n go-redis clients (goroutine w uses client w mod n),
// and returns their rate.
func xaddClients(b *testing.B, ctx context.Context, srv *redistest.Server, stream string, p, nClients int) float64 {
	b.Helper()
	clients := make([]goredis.UniversalClient, nClients)
	for i := range clients {
		clients[i] = srv.NewClient()
		if err := clients[i].Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		_ = clients[0].Del(context.Background(), stream).Err()
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	d, err := timeWorkers(b.N, p, func(w, n int) error {
		for i := range n {
			if err := clients[w%nClients].XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"v", payload(w, i)}}).Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(b.N) / d.Seconds()
}

// BenchmarkIndependentBolt: P independent publishers on one bolt file
// (fsync on), each with its own client and identity; a bolt file has one
// handle per process, so they share it, as the processes of one host share
// it through the owning process (see BenchmarkIndependentProcs for real
// processes). Then, in the same run, one client publishing b.N messages
// from P goroutines to another topic: the baseline.
//
//	order=ORDER/P=n   msgs/s (acknowledged and delivered), retries/msg,
//	                  one-client-msgs/s, x-one-client
func BenchmarkIndependentBolt(b *testing.B) {
	for _, order := range orderings {
		for _, p := range []int{10, 100} {
			b.Run(fmt.Sprintf("order=%s/P=%d", order, p), func(b *testing.B) {
				ctx := benchCtx(b)
				s := openBolt(b)
				clients := newClients(b, p, order, func(int) backend.Store { return s })
				startRetries := warmUp(b, ctx, benchTopic, clients)
				b.ResetTimer()
				elapsed, retries := independentRun(b, ctx, benchTopic, order, p, s, clients,
					func(w int) *core.Client { return clients[w] }, "acked-msgs/s")
				b.StopTimer()
				rate := reportIndependent(b, elapsed, retries)
				b.ReportMetric(startRetries, "start-retries/pub")
				one := newClients(b, 1, core.TopicOrder, func(int) backend.Store { return s })
				base, _ := independentRun(b, ctx, benchTopic+"/one-client", core.TopicOrder, p, s, one,
					func(int) *core.Client { return one[0] }, "")
				oneRate := float64(b.N) / base.Seconds()
				b.ReportMetric(oneRate, "one-client-msgs/s")
				b.ReportMetric(rate/oneRate, "x-one-client")
			})
		}
	}
}
