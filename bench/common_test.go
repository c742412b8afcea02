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
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	b.ResetTimer()
	start := time.Now()
	for w := range p {
		wg.Go(func() {
			if err := fn(w, share(b.N, p, w)); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("worker %d: %w", w, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit)
	return elapsed
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

// benchPublish is one run of a publish benchmark: p goroutines publish b.N
// messages in total to benchTopic on store, each with core.Client.Publish,
// one after the other. It reports msgs/s and retries/msg, then checks (outside
// the timed region) that the coordinator announces exactly b.N messages:
// a lost message fails the benchmark. commits, when not nil, counts the
// store's committed transactions; it adds the msgs/commit metric.
func benchPublish(b *testing.B, store backend.Store, mode string, p int, commits func() uint64) {
	ctx := benchCtx(b)
	ps := newPublishers(b, store, mode, p)
	var before uint64
	if commits != nil {
		before = commits()
	}
	runWorkers(b, p, "msgs/s", func(w, n int) error {
		c := ps.client(w)
		for i := range n {
			if _, err := c.Publish(ctx, benchTopic, payload(w, i)); err != nil {
				return err
			}
		}
		return nil
	})
	if commits != nil {
		if n := commits() - before; n > 0 {
			b.ReportMetric(float64(b.N)/float64(n), "msgs/commit")
		}
	}
	b.ReportMetric(float64(ps.retries())/float64(b.N), "retries/msg")
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
