package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

// benchWriters are the concurrency levels measured.
var benchWriters = []int{1, 10, 100}

// benchRun numbers benchmark runs, so that each run writes fresh keys
// (-count and b.N probing repeat runs).
var benchRun atomic.Int64

// benchPayload is the value every write carries.
var benchPayload = []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")

// benchPaths are the two ways a Store sends calls, measured side by side.
var benchPaths = []struct {
	name      string
	pipelines int
}{
	{"unpipelined", -1},             // one round trip per call (before issue 11)
	{"pipelined", DefaultPipelines}, // the default
}

// BenchmarkWrites measures raw CompareAndPut rates (distinct keys, and one
// hot key where writers race) and Get rates, through a Store without
// pipelining (Pipelines -1, the old path) and one with the default
// pipelining, beside SET and XADD to one stream issued directly on a
// go-redis client, with the same number of goroutines, in the same run,
// against the Redis that redistest.Require finds. Each result reports
// ops/s; the hot-key runs also report commits/s (successful
// compare-and-puts).
//
//	go test -run '^$' -bench Writes -benchtime 20000x ./backend/redis/
func BenchmarkWrites(b *testing.B) {
	srv := redistest.Require(b)
	b.Logf("redis: %s", srv)
	stores := map[string]*Store{}
	for _, p := range benchPaths {
		stores[p.name] = openStore(b, srv, func(o *Options) { o.Pipelines = p.pipelines })
	}
	client := stores["unpipelined"].Client()
	ctx := context.Background()
	// Warm up: connections dialled, script loaded, outside any timing.
	for name, s := range stores {
		if _, err := s.CompareAndPut(ctx, "warm-"+name, 0, benchPayload); err != nil {
			b.Fatal(err)
		}
	}
	if err := client.Ping(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	for _, n := range benchWriters {
		for _, p := range benchPaths {
			s := stores[p.name]
			b.Run(fmt.Sprintf("CAS-distinct/writers=%d/%s", n, p.name), func(b *testing.B) {
				run := fmt.Sprintf("d%d-%d/", n, benchRun.Add(1))
				parallel(b, n, func(w int, ops func() bool) error {
					key := fmt.Sprintf("%s%d", run, w)
					var v backend.Version
					for ops() {
						nv, err := s.CompareAndPut(ctx, key, v, benchPayload)
						if err != nil {
							return err
						}
						v = nv
					}
					return nil
				})
			})
		}
		for _, p := range benchPaths {
			s := stores[p.name]
			b.Run(fmt.Sprintf("CAS-hotkey/writers=%d/%s", n, p.name), func(b *testing.B) {
				key := fmt.Sprintf("hot%d-%d", n, benchRun.Add(1))
				var commits atomic.Int64
				elapsed := parallel(b, n, func(_ int, ops func() bool) error {
					var v backend.Version
					for ops() {
						nv, err := s.CompareAndPut(ctx, key, v, benchPayload)
						if err == nil {
							v = nv
							commits.Add(1)
							continue
						}
						cur, ok := backend.CurrentEntry(err)
						if !errors.Is(err, backend.ErrConflict) || !ok {
							return err
						}
						v = cur.Version
					}
					return nil
				})
				b.ReportMetric(float64(commits.Load())/elapsed.Seconds(), "commits/s")
			})
		}
		for _, p := range benchPaths {
			s := stores[p.name]
			b.Run(fmt.Sprintf("Get/writers=%d/%s", n, p.name), func(b *testing.B) {
				key := fmt.Sprintf("get%d-%d", n, benchRun.Add(1))
				if _, err := s.CompareAndPut(ctx, key, 0, benchPayload); err != nil {
					b.Fatal(err)
				}
				parallel(b, n, func(_ int, ops func() bool) error {
					for ops() {
						if _, err := s.Get(ctx, key); err != nil {
							return err
						}
					}
					return nil
				})
			})
		}
		b.Run(fmt.Sprintf("SET/writers=%d", n), func(b *testing.B) {
			run := fmt.Sprintf("set%d-%d/", n, benchRun.Add(1))
			parallel(b, n, func(w int, ops func() bool) error {
				key := stores["unpipelined"].RedisKey(fmt.Sprintf("%s%d", run, w))
				for ops() {
					if err := client.Set(ctx, key, benchPayload, 0).Err(); err != nil {
						return err
					}
				}
				return nil
			})
		})
		b.Run(fmt.Sprintf("XADD-one-stream/writers=%d", n), func(b *testing.B) {
			stream := stores["unpipelined"].RedisKey(fmt.Sprintf("stream%d-%d", n, benchRun.Add(1)))
			args := &goredis.XAddArgs{Stream: stream, Values: []any{"v", benchPayload}}
			parallel(b, n, func(_ int, ops func() bool) error {
				for ops() {
					if err := client.XAdd(ctx, args).Err(); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// parallel runs b.N operations spread over n goroutines (worker i calls
// ops() before each operation until it reports false), reports ops/s and
// returns the elapsed time.
func parallel(b *testing.B, n int, worker func(i int, ops func() bool) error) time.Duration {
	b.Helper()
	var left atomic.Int64
	left.Store(int64(b.N))
	ops := func() bool { return left.Add(-1) >= 0 }
	var wg sync.WaitGroup
	errs := make(chan error, n)
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := worker(i, ops); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	return elapsed
}

// BenchmarkLoneCaller measures the single-caller case with the two paths
// interleaved call by call (unpipelined, pipelined, unpipelined, ...), so
// that load changes on a shared machine hit both alike. It reports the
// mean latency of each path in µs and their ratio (pipelined ÷
// unpipelined; 1.00 means no cost).
//
//	go test -run '^$' -bench LoneCaller -benchtime 20000x ./backend/redis/
func BenchmarkLoneCaller(b *testing.B) {
	srv := redistest.Require(b)
	stores := make([]*Store, len(benchPaths))
	for i, p := range benchPaths {
		stores[i] = openStore(b, srv, func(o *Options) { o.Pipelines = p.pipelines })
	}
	ctx := context.Background()
	for _, op := range []string{"CAS", "Get"} {
		b.Run(op, func(b *testing.B) {
			key := fmt.Sprintf("lone%s-%d", op, benchRun.Add(1))
			versions := make([]backend.Version, len(stores))
			spent := make([]time.Duration, len(stores))
			for i, s := range stores {
				v, err := s.CompareAndPut(ctx, key, 0, benchPayload)
				if err != nil {
					b.Fatal(err)
				}
				versions[i] = v
			}
			b.ResetTimer()
			for range b.N {
				for i, s := range stores {
					start := time.Now()
					var err error
					if op == "CAS" {
						versions[i], err = s.CompareAndPut(ctx, key, versions[i], benchPayload)
					} else {
						_, err = s.Get(ctx, key)
					}
					spent[i] += time.Since(start)
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			for i, p := range benchPaths {
				b.ReportMetric(float64(spent[i].Microseconds())/float64(b.N), p.name+"-µs")
			}
			b.ReportMetric(float64(spent[1])/float64(spent[0]), "x-unpipelined")
		})
	}
}
