package bench

// Memory benchmarks: the bytes an idle subscription holds, and the peak
// memory of a catch-up of a million messages (issue 11).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/core"
)

// memoryFlag enables the memory benchmarks, which take minutes (10,000
// subscriptions, a million messages): `-bench .` skips them without it.
var memoryFlag = flag.Bool("memory", false, "run BenchmarkIdleSubscriptions and BenchmarkCatchUpMemory")

// needMemoryFlag skips a memory benchmark unless -memory is given.
func needMemoryFlag(b *testing.B) {
	if !*memoryFlag {
		b.Skip("a memory benchmark: run with -args -memory (see docs/benchmarks.md)")
	}
}

// idleSubsFlag is how many idle subscriptions BenchmarkIdleSubscriptions
// opens on one topic (-idle-subs; the figure is 10,000).
var idleSubsFlag = flag.Int("idle-subs", 10000, "idle subscriptions of BenchmarkIdleSubscriptions")

// catchUpBufferFlag and catchUpPrefetchFlag, when positive, set the
// catch-up subscriber's WithBuffer and WithPrefetchBytes in
// BenchmarkCatchUpMemory (0: the defaults).
var (
	catchUpBufferFlag   = flag.Int("catchup-buffer", 0, "WithBuffer of BenchmarkCatchUpMemory's subscriber (0: default)")
	catchUpPrefetchFlag = flag.Int("catchup-prefetch", 0, "WithPrefetchBytes of BenchmarkCatchUpMemory's subscriber (0: default)")
)

// idleNoRecordFlag makes BenchmarkIdleSubscriptions subscribe
// WithoutRecord: no subscription record and no coordinator entry, so that
// on the mem store B/sub leaves out the store's share (the store holds
// both in the same heap).
var idleNoRecordFlag = flag.Bool("idle-without-record", false, "BenchmarkIdleSubscriptions subscribes WithoutRecord")

// idleProfileFlag names a file prefix: BenchmarkIdleSubscriptions writes
// the heap profile of each store's idle subscriptions to PREFIX-STORE.pprof.
var idleProfileFlag = flag.String("idle-heap-profile", "", "heap profile prefix of BenchmarkIdleSubscriptions")

// memStores are the stores the memory benchmarks run on.
var memStores = []struct {
	name string
	open func(b *testing.B) backend.Store
}{
	{"mem", func(b *testing.B) backend.Store { return memory.New() }},
	{"bolt", func(b *testing.B) backend.Store { return openBolt(b) }},
}

// liveBytes forces two collections and returns the bytes of live heap
// objects plus the bytes of goroutine stacks in use. Both are what the
// program holds, not what the runtime has kept from the OS (Sys, HeapSys
// and HeapInuse also count freed memory not yet returned, and spans'
// unused slots): a difference of two readings is what was allocated and
// is still reachable in between.
func liveBytes() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}

// goroutineBytes is the same-run baseline of an idle subscription: the
// live bytes per goroutine blocked receiving on its own unbuffered
// channel, for n of them.
func goroutineBytes(n int) float64 {
	before := liveBytes()
	chans := make([]chan struct{}, n)
	var wg sync.WaitGroup
	for i := range chans {
		chans[i] = make(chan struct{})
		wg.Go(func() { <-chans[i] })
	}
	runtime.Gosched()
	after := liveBytes()
	for _, ch := range chans {
		close(ch)
	}
	wg.Wait()
	return float64(after-before) / float64(n)
}

// BenchmarkIdleSubscriptions opens idleSubs subscriptions (defaults: push,
// a subscription record, FromNow) on one topic in one process and reports
// the live bytes (liveBytes: heap objects plus goroutine stacks, after
// GC) each one adds. A client subscribes to a topic once, so the
// subscriptions belong to idleSubs clients sharing one core.Hub; creating
// the clients is measured apart ("B/client") from subscribing them
// ("B/sub"). On the mem store the store's own contents (the subscription
// records and the coordinator entries) are in the process and counted in
// B/sub; on bolt they are in the mapped file. The same-run baseline
// "B/goroutine" is a bare goroutine blocked on its own channel. The
// subscriptions idle pushSafety+1 seconds before the reading, so at
// least one safety poll has run. b.N is ignored (run with -benchtime 1x).
// Skipped without -memory.
func BenchmarkIdleSubscriptions(b *testing.B) {
	needMemoryFlag(b)
	if *idleProfileFlag != "" {
		runtime.MemProfileRate = 1 // every allocation, for the profile
	}
	for _, st := range memStores {
		b.Run("store="+st.name, func(b *testing.B) {
			ctx := benchCtx(b)
			store := st.open(b)
			idleSubs := *idleSubsFlag
			ids := make([]*core.Identity, idleSubs)
			for i := range ids {
				id, err := core.GenerateIdentity()
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = id
			}
			h, err := core.NewHub(store)
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			const topic = "bench/idle"
			// The topic exists (one message) before anyone subscribes.
			if _, err := mustClient(b, store, ids[0], h).Publish(ctx, topic, payload(0, 0)); err != nil {
				b.Fatal(err)
			}
			perG := goroutineBytes(idleSubs)
			b.ResetTimer()
			m0 := liveBytes()
			clients := make([]*core.Client, idleSubs)
			for i := range clients {
				clients[i] = mustClient(b, store, ids[i], h)
			}
			m1 := liveBytes()
			subs := make([]*core.Subscription, idleSubs)
			var sopts []core.SubscribeOption
			if *idleNoRecordFlag {
				sopts = append(sopts, core.WithoutRecord())
			}
			start := time.Now()
			_, err = timeWorkers(idleSubs, 100, func(w, n int) error {
				for i := range n {
					k := w + i*100
					s, err := clients[k].Subscribe(ctx, topic, sopts...)
					if err != nil {
						return err
					}
					subs[k] = s
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			took := time.Since(start)
			time.Sleep(3 * time.Second)
			m2 := liveBytes()
			if *idleProfileFlag != "" {
				writeHeapProfile(b, *idleProfileFlag+"-"+st.name+".pprof")
			}
			b.StopTimer()
			runtime.KeepAlive(subs)
			perSub := float64(m2-m1) / float64(idleSubs)
			b.ReportMetric(perSub, "B/sub")
			b.ReportMetric(float64(m1-m0)/float64(idleSubs), "B/client")
			b.ReportMetric(perG, "B/goroutine")
			b.ReportMetric(perSub/perG, "x-goroutine")
			b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
			b.ReportMetric(float64(idleSubs)/took.Seconds(), "subscribes/s")
			// Closing removes each subscription (a record write and a
			// coordinator update): in parallel, so the hub groups them.
			_, err = timeWorkers(idleSubs, 100, func(w, n int) error {
				for i := range n {
					if err := clients[w+i*100].Close(ctx); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

// writeHeapProfile writes the heap profile (live objects as of the last
// collection) to path.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// mustClient returns a client of id on store through hub h.
func mustClient(b *testing.B, store backend.Store, id *core.Identity, h *core.Hub) *core.Client {
	b.Helper()
	c, err := core.New(store, id, core.WithHub(h))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// bigCatchUpN is how many messages BenchmarkCatchUpMemory's subscriber
// catches up on: catchUpPublishers publishers write bigCatchUpN /
// catchUpPublishers each, in segments of bigCatchUpSegment messages.
const (
	bigCatchUpN       = 1000000
	bigCatchUpSegment = 100
)

// memSample is one reading of the process's memory.
type memSample struct {
	heapInuse uint64 // runtime.MemStats.HeapInuse
	stacks    uint64 // runtime.MemStats.StackInuse
	rssAnon   uint64 // RssAnon of /proc/self/status (0 where absent)
}

func sampleMem() memSample {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSample{heapInuse: m.HeapInuse, stacks: m.StackInuse, rssAnon: rssAnon()}
}

// rssAnon returns the process's anonymous resident memory (Linux
// /proc/self/status RssAnon; 0 elsewhere). File-backed pages, such as the
// bolt file mapped in memory, are not counted: they are the page cache's,
// and the kernel drops them under pressure.
func rssAnon() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "RssAnon:" {
			kb, _ := strconv.ParseUint(string(f[1]), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// peakSampler reads sampleMem every interval until stopped and keeps the
// peaks.
type peakSampler struct {
	stop chan struct{}
	done chan struct{}
	peak memSample
}

func startSampler(interval time.Duration) *peakSampler {
	p := &peakSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			m := sampleMem()
			p.peak.heapInuse = max(p.peak.heapInuse, m.heapInuse)
			p.peak.stacks = max(p.peak.stacks, m.stacks)
			p.peak.rssAnon = max(p.peak.rssAnon, m.rssAnon)
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *peakSampler) end() memSample {
	close(p.stop)
	<-p.done
	return p.peak
}

// BenchmarkCatchUpMemory fills a topic with bigCatchUpN messages
// (catchUpPublishers clients on a Hub, PublishBatch of bigCatchUpSegment
// incompressible messages of payloadSize bytes), then, with the publishers closed and the
// process's memory collected and returned to the OS (the baseline), a
// fresh client subscribes FromStart with default options (push on, the
// default buffer) and a consumer goroutine receives and discards every
// message. A sampler reads the process's memory every 10ms. It reports the
// peaks above the baseline: "peak-heap-MiB" (HeapInuse plus StackInuse:
// heap spans holding objects, live or not yet collected, and stacks) and
// "peak-rss-MiB" (anonymous resident memory, the mapped bolt file
// excluded), and the catch-up rate, and fails unless exactly bigCatchUpN
// messages arrive without gaps, duplicates or invalid ones. b.N is ignored
// (run with -benchtime 1x). Skipped without -memory.
func BenchmarkCatchUpMemory(b *testing.B) {
	needMemoryFlag(b)
	for _, st := range memStores {
		b.Run("store="+st.name, func(b *testing.B) {
			ctx := benchCtx(b)
			store := st.open(b)
			const topic = "bench/catch-up-memory"
			fillStart := time.Now()
			fillTopicN(b, store, topic, bigCatchUpN, bigCatchUpSegment)
			b.Logf("filled %d messages in %v", bigCatchUpN, time.Since(fillStart).Round(time.Millisecond))
			runtime.GC()
			debug.FreeOSMemory()
			base := sampleMem()
			b.ResetTimer()
			sampler := startSampler(10 * time.Millisecond)
			start := time.Now()
			got, stats := catchUpAll(b, ctx, store, topic, bigCatchUpN)
			took := time.Since(start)
			peak := sampler.end()
			b.StopTimer()
			if got != bigCatchUpN || stats.Gaps != 0 || stats.Duplicates != 0 || stats.Invalid != 0 {
				b.Fatalf("received %d of %d; stats %+v", got, bigCatchUpN, stats)
			}
			mib := func(v, base uint64) float64 { return (float64(v) - float64(base)) / (1 << 20) }
			b.ReportMetric(mib(peak.heapInuse+peak.stacks, base.heapInuse+base.stacks), "peak-heap-MiB")
			b.ReportMetric(mib(peak.rssAnon, base.rssAnon), "peak-rss-MiB")
			b.ReportMetric(float64(base.rssAnon)/(1<<20), "base-rss-MiB")
			b.ReportMetric(bigCatchUpN/took.Seconds(), "msgs/s")
		})
	}
}

// catchUpAll subscribes a fresh client FromStart to topic and receives
// (and drops) want messages, and returns how many arrived and the
// client's stats.
func catchUpAll(b *testing.B, ctx context.Context, store backend.Store, topic string, want int) (int, core.Stats) {
	b.Helper()
	id, err := core.GenerateIdentity()
	if err != nil {
		b.Fatal(err)
	}
	var copts []core.Option
	if *catchUpPrefetchFlag > 0 {
		copts = append(copts, core.WithPrefetchBytes(*catchUpPrefetchFlag))
	}
	c, err := core.New(store, id, copts...)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close(ctx) }()
	sopts := []core.SubscribeOption{core.FromStart()}
	if *catchUpBufferFlag > 0 {
		sopts = append(sopts, core.WithBuffer(*catchUpBufferFlag))
	}
	sub, err := c.Subscribe(ctx, topic, sopts...)
	if err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	deadline := time.NewTimer(5 * time.Minute)
	defer deadline.Stop()
	for got.Load() < int64(want) {
		select {
		case m, ok := <-sub.Messages():
			if !ok {
				b.Fatal("messages channel closed")
			}
			_ = m
			got.Add(1)
		case g := <-sub.Gaps():
			b.Fatalf("gap: %+v", g)
		case <-deadline.C:
			b.Fatalf("received %d of %d in 5 minutes", got.Load(), want)
		}
	}
	return int(got.Load()), c.Stats()
}

// randomPayload is payload(w, i) with its filler random: incompressible,
// so segments are stored (and cached, and held) at their full size.
func randomPayload(w, i int) []byte {
	p := payload(w, i)
	_, _ = rand.Read(p[12:])
	return p
}

// fillTopicN publishes n incompressible messages of payloadSize bytes to topic on store
// from catchUpPublishers clients sharing a Hub, concurrently, with
// PublishBatch calls of batch messages (segments of batch messages). The
// clients are closed before it returns.
func fillTopicN(b *testing.B, store backend.Store, topic string, n, batch int) {
	b.Helper()
	ctx := benchCtx(b)
	ps := newPublishers(b, store, modeHub, catchUpPublishers)
	_, err := timeWorkers(n, catchUpPublishers, func(w, k int) error {
		c := ps.client(w)
		for i := 0; i < k; i += batch {
			msgs := make([][]byte, 0, batch)
			for j := i; j < min(i+batch, k); j++ {
				msgs = append(msgs, randomPayload(w, j))
			}
			if _, err := c.PublishBatch(ctx, topic, msgs); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := ps.close(ctx); err != nil {
		b.Fatal(err)
	}
}
