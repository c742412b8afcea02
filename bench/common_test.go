package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
)

// Conventions shared by every benchmark of the package:
//
//   - b.N is the total number of operations of one run (messages published,
//     compare-and-puts, XADDs, signatures verified), split as evenly as
//     possible among exactly P goroutines; catch-up benchmarks are the
//     exception, their b.N counts whole catch-ups of catchUpN messages.
//   - Throughput is reported as a custom metric per wall-clock second of
//     the timed region ("msgs/s", "writes/s", "verifies/s"); ns/op is the
//     inverse and adds nothing.
//   - Setup (opening stores, creating identities and clients) and teardown
//     (closing clients, deleting Redis keys) are outside the timed region.

// publisherCounts are the concurrency levels P of the publish benchmarks.
var publisherCounts = []int{1, 10, 100}

// Publish modes: how P concurrent publishers reach the store.
const (
	// modeOneClient: one core.Client, P goroutines publishing through it
	// (its group commit coalesces them into one log write and one
	// coordinator update per round).
	modeOneClient = "one-client"
	// modeHub: P clients (P identities) sharing one core.Hub, which
	// group-commits their coordinator updates.
	modeHub = "hub"
	// modeSeparate: P fully independent clients on the same store handle,
	// each with its own coordinator updater (worst case).
	modeSeparate = "separate"
)

// publishModes lists the modes in the order they are reported.
var publishModes = []string{modeOneClient, modeHub, modeSeparate}

// payloadSize is the size of every published payload and raw value.
const payloadSize = 100

// benchTopic is the one topic every publish benchmark writes to.
const benchTopic = "bench/topic"

// benchTimeout bounds the context of one benchmark run.
const benchTimeout = 10 * time.Minute

// benchCtx returns a context that ends with the benchmark run.
func benchCtx(b *testing.B) context.Context {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	b.Cleanup(cancel)
	return ctx
}

// payload returns a payloadSize-byte payload naming writer w and message i.
func payload(w, i int) []byte {
	p := make([]byte, payloadSize)
	binary.BigEndian.PutUint32(p[0:], uint32(w))
	binary.BigEndian.PutUint64(p[4:], uint64(i))
	for j := 12; j < len(p); j++ {
		p[j] = byte('a' + j%26)
	}
	return p
}

// share is how many of n operations worker w of p performs.
func share(n, p, w int) int {
	s := n / p
	if w < n%p {
		s++
	}
	return s
}

// runWorkers starts exactly p goroutines that together perform b.N
// operations (worker w performs share(b.N, p, w) of them through fn), times
// them from the first start to the last end, reports b.N per second as
// unit, and returns the elapsed time. The first error of any worker fails
// the benchmark.
func runWorkers(b *testing.B, p int, unit string, fn func(w, n int) error) time.Duration {
	b.Helper()
	b.ResetTimer()
	elapsed, err := timeWorkers(b.N, p, fn)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit)
	return elapsed
}

// timeWorkers starts exactly p goroutines that together perform n
// operations (worker w performs share(n, p, w) of them through fn) and
// returns the time from the first start to the last end, and the first
// error of any worker.
func timeWorkers(n, p int, fn func(w, n int) error) (time.Duration, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	start := time.Now()
	for w := range p {
		wg.Go(func() {
			if err := fn(w, share(n, p, w)); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("worker %d: %w", w, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return time.Since(start), first
}

// publishers is a set of P publishing goroutines' clients in one mode.
type publishers struct {
	mode    string
	hub     *core.Hub
	clients []*core.Client // all clients (1 in one-client mode)
}

// newPublishers creates the clients of p publishers in mode on store.
func newPublishers(b *testing.B, store backend.Store, mode string, p int) *publishers {
	b.Helper()
	ps := &publishers{mode: mode}
	n := p
	var opts []core.Option
	switch mode {
	case modeOneClient:
		n = 1
	case modeHub:
		h, err := core.NewHub(store)
		if err != nil {
			b.Fatal(err)
		}
		ps.hub = h
		opts = append(opts, core.WithHub(h))
	case modeSeparate:
	default:
		b.Fatalf("unknown mode %q", mode)
	}
	for range n {
		id, err := core.GenerateIdentity()
		if err != nil {
			b.Fatal(err)
		}
		c, err := core.New(store, id, opts...)
		if err != nil {
			b.Fatal(err)
		}
		ps.clients = append(ps.clients, c)
	}
	return ps
}

// client returns the client publishing goroutine w uses.
func (ps *publishers) client(w int) *core.Client {
	if ps.mode == modeOneClient {
		return ps.clients[0]
	}
	return ps.clients[w]
}

// retries sums the clients' retried writes (a hub's clients share one
// counter, so it is counted once).
func (ps *publishers) retries() uint64 {
	if ps.hub != nil {
		return ps.clients[0].Stats().Retries
	}
	var n uint64
	for _, c := range ps.clients {
		n += c.Stats().Retries
	}
	return n
}

// close closes every client, then the hub.
func (ps *publishers) close(ctx context.Context) error {
	var first error
	for _, c := range ps.clients {
		if err := c.Close(ctx); err != nil && first == nil {
			first = err
		}
	}
	if ps.hub != nil {
		ps.hub.Close()
	}
	return first
}

// publishExtras are the backend-specific parts of a publish benchmark.
type publishExtras struct {
	// commits, when not nil, counts the store's committed transactions;
	// it adds the msgs/commit metric.
	commits func() uint64
	// baseline, when not nil, is one operation of the paired baseline
	// (worker w's i-th): right after the timed publishes, b.N of them run
	// on the same store from the same number of goroutines, and the
	// benchmark reports their rate as "<name>-ops/s" and the ratio
	// publish rate / baseline rate as "x-<name>". Measured seconds apart,
	// that ratio holds up on a noisy machine better than the ratio of two
	// separate benchmarks does.
	baseline     func(ctx context.Context, w, i int) error
	baselineName string
}

// benchPublish is one run of a publish benchmark: p goroutines publish b.N
// messages in total to benchTopic on store, each with core.Client.Publish,
// one after the other. It reports msgs/s and retries/msg (plus the extras'
// metrics), then checks (outside the timed region) that the coordinator
// announces exactly b.N messages: a lost message fails the benchmark.
func benchPublish(b *testing.B, store backend.Store, mode string, p int, x publishExtras) {
	ctx := benchCtx(b)
	ps := newPublishers(b, store, mode, p)
	var before uint64
	if x.commits != nil {
		before = x.commits()
	}
	elapsed := runWorkers(b, p, "msgs/s", func(w, n int) error {
		c := ps.client(w)
		for i := range n {
			if _, err := c.Publish(ctx, benchTopic, payload(w, i)); err != nil {
				return err
			}
		}
		return nil
	})
	if x.commits != nil {
		if n := x.commits() - before; n > 0 {
			b.ReportMetric(float64(b.N)/float64(n), "msgs/commit")
		}
	}
	b.ReportMetric(float64(ps.retries())/float64(b.N), "retries/msg")
	if x.baseline != nil {
		d, err := timeWorkers(b.N, p, func(w, n int) error {
			for i := range n {
				if err := x.baseline(ctx, w, i); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/d.Seconds(), x.baselineName+"-ops/s")
		b.ReportMetric(d.Seconds()/elapsed.Seconds(), "x-"+x.baselineName)
	}
	info, err := ps.clients[0].Info(ctx, benchTopic)
	if err != nil {
		b.Fatal(err)
	}
	if info.Messages != uint64(b.N) {
		b.Fatalf("coordinator announces %d messages, published %d", info.Messages, b.N)
	}
	if err := ps.close(ctx); err != nil {
		b.Fatal(err)
	}
}
