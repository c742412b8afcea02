// Package harness runs the publish contention benchmark against any store,
// outside "go test": N publishers, each an identity of its own with its own
// client and store handle, publish M messages each to one topic, beside a
// baseline measured in the same run on the same store (the same number of
// writers doing raw compare-and-puts of the same size, each on its own key).
// The stickypub bench command is built on it.
package harness

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
)

// DefaultPayloadSize is the payload size of every message and raw value.
const DefaultPayloadSize = 100

// Config configures Run.
type Config struct {
	// Backend names the store in results (for example its URI scheme).
	Backend string
	// Open returns a store handle; Run calls it once per publisher (and
	// closes what it returns). Required.
	Open func(ctx context.Context) (backend.Store, error)
	// Release, if set, is called instead of Close for each handle that
	// Open returned (for an engine with one handle per process, such as a
	// bolt file, whose Open returns the same handle every time).
	Release func(backend.Store)
	// Publishers lists the publisher counts to measure, in order
	// (default 1, 10, 100).
	Publishers []int
	// Messages is how many messages each publisher publishes (default 100).
	Messages int
	// PayloadSize is the size of each payload (default DefaultPayloadSize).
	PayloadSize int
	// Progress, if set, is called after every acknowledged message or
	// baseline write with the operations done and the total of the run.
	Progress func(done, total int64)
}

// Result is one measured publisher count.
type Result struct {
	Backend    string `json:"backend"`
	Publishers int    `json:"publishers"`
	Messages   int    `json:"messages"` // in all
	Topic      string `json:"topic"`    // the topic written
	// Seconds is the wall time of the publishing; MsgsPerSec its
	// throughput (acknowledged messages per second).
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	// P50Ms and P99Ms are publish latencies (call to acknowledgement).
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// Retries are the clients' retried writes (coordinator races).
	Retries uint64 `json:"retries"`
	// BaselineWritesPerSec is the raw compare-and-put rate of as many
	// writers, each on its own key, measured just before; Ratio is
	// MsgsPerSec divided by it.
	BaselineWritesPerSec float64 `json:"baseline_writes_per_sec"`
	Ratio                float64 `json:"ratio"`
}

func (c *Config) setDefaults() {
	if len(c.Publishers) == 0 {
		c.Publishers = []int{1, 10, 100}
	}
	if c.Messages <= 0 {
		c.Messages = 100
	}
	if c.PayloadSize <= 0 {
		c.PayloadSize = DefaultPayloadSize
	}
}

// Total is how many operations (messages and baseline writes) a run of
// cfg performs, as Progress counts them.
func Total(cfg Config) int64 {
	cfg.setDefaults()
	var n int64
	for _, p := range cfg.Publishers {
		n += 2 * int64(p) * int64(cfg.Messages)
	}
	return n
}

// Run measures every publisher count of cfg in order.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if cfg.Open == nil {
		return nil, errors.New("harness: Config.Open is required")
	}
	cfg.setDefaults()
	for _, p := range cfg.Publishers {
		if p <= 0 {
			return nil, fmt.Errorf("harness: publisher count must be positive, got %d", p)
		}
	}
	run := make([]byte, 6)
	_, _ = rand.Read(run)
	var done atomic.Int64
	total := Total(cfg)
	step := func() {
		if cfg.Progress != nil {
			cfg.Progress(done.Add(1), total)
		}
	}
	var out []Result
	for _, p := range cfg.Publishers {
		tag := fmt.Sprintf("%s-%d", hex.EncodeToString(run), p)
		r, err := runOne(ctx, cfg, p, tag, step)
		if err != nil {
			return out, fmt.Errorf("harness: %s with %d publishers: %w", cfg.Backend, p, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// handles opens n store handles.
func handles(ctx context.Context, cfg Config, n int) ([]backend.Store, func(), error) {
	stores := make([]backend.Store, 0, n)
	closeAll := func() {
		for _, s := range stores {
			if cfg.Release != nil {
				cfg.Release(s)
			} else {
				_ = s.Close()
			}
		}
	}
	for range n {
		s, err := cfg.Open(ctx)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		stores = append(stores, s)
	}
	return stores, closeAll, nil
}

func runOne(ctx context.Context, cfg Config, p int, tag string, step func()) (Result, error) {
	stores, closeAll, err := handles(ctx, cfg, p)
	if err != nil {
		return Result{}, err
	}
	defer closeAll()
	payload := make([]byte, cfg.PayloadSize)

	// Baseline: p writers, each compare-and-putting its own key.
	base, err := baseline(ctx, stores, cfg.Messages, tag, payload, step)
	if err != nil {
		return Result{}, fmt.Errorf("baseline: %w", err)
	}

	clients := make([]*core.Client, p)
	for i := range clients {
		id, err := core.GenerateIdentity()
		if err != nil {
			return Result{}, err
		}
		if clients[i], err = core.New(stores[i], id); err != nil {
			return Result{}, err
		}
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, c := range clients {
			_ = c.Close(cctx)
		}
	}()
	topic := "bench/" + tag
	lat := make([][]time.Duration, p)
	errs := make([]error, p)
	var wg sync.WaitGroup
	start := time.Now()
	for w, c := range clients {
		wg.Go(func() {
			msg := make([]byte, len(payload))
			for i := range cfg.Messages {
				binary.BigEndian.PutUint32(msg, uint32(w))
				binary.BigEndian.PutUint32(msg[4:], uint32(i))
				t0 := time.Now()
				if _, err := c.Publish(ctx, topic, msg); err != nil {
					errs[w] = err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
				step()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := Result{
		Backend: cfg.Backend, Publishers: p, Messages: p * cfg.Messages, Topic: topic, Seconds: elapsed.Seconds(),
		MsgsPerSec: float64(p*cfg.Messages) / elapsed.Seconds(),
		P50Ms:      ms(all[len(all)/2]), P99Ms: ms(all[min(len(all)-1, len(all)*99/100)]),
		BaselineWritesPerSec: base,
	}
	for _, c := range clients {
		r.Retries += c.Stats().Retries
	}
	if base > 0 {
		r.Ratio = r.MsgsPerSec / base
	}
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// baseline runs len(stores) writers, each doing n compare-and-puts on its
// own key through its own handle, and returns writes per second. The keys
// are deleted afterwards where the store can delete.
func baseline(ctx context.Context, stores []backend.Store, n int, tag string, payload []byte, step func()) (float64, error) {
	errs := make([]error, len(stores))
	keys := make([]string, len(stores))
	vers := make([]backend.Version, len(stores))
	var wg sync.WaitGroup
	start := time.Now()
	for w, s := range stores {
		keys[w] = fmt.Sprintf("bench/raw/%s/%d", tag, w)
		wg.Go(func() {
			for range n {
				v, err := s.CompareAndPut(ctx, keys[w], vers[w], payload)
				if err != nil {
					errs[w] = err
					return
				}
				vers[w] = v
				step()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for w, s := range stores {
		if d, ok := s.(backend.Deleter); ok && vers[w] != 0 {
			_ = d.Delete(ctx, keys[w], vers[w])
		}
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(len(stores)*n) / elapsed.Seconds(), nil
}
