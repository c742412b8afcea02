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
)

// benchWriters are the concurrency levels measured.
var benchWriters = []int{1, 10, 100}

// benchRun numbers benchmark runs, so that each run writes fresh keys
// (-count and b.N probing repeat runs).
var benchRun atomic.Int64

// benchPayload is the value every write carries.
var benchPayload = []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")

// BenchmarkWrites measures raw CompareAndPut rates (distinct keys, and one
// hot key where writers race) beside XADD to one stream, with the same
// number of goroutines on the same go-redis client, against the Redis that
// redistest.Require finds. Each result reports ops/s; the hot-key runs also
// report commits/s (successful compare-and-puts).
//
//	go test -run '^$' -bench Writes -benchtime 2s ./backend/redis/
func BenchmarkWrites(b *testing.B) {
	s, srv := anyStore(b)
	b.Logf("redis: %s", srv)
	ctx := context.Background()
	for _, n := range benchWriters {
		b.Run(fmt.Sprintf("CAS-distinct/writers=%d", n), func(b *testing.B) {
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
		b.Run(fmt.Sprintf("CAS-hotkey/writers=%d", n), func(b *testing.B) {
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
		b.Run(fmt.Sprintf("XADD-one-stream/writers=%d", n), func(b *testing.B) {
			stream := s.RedisKey(fmt.Sprintf("stream%d-%d", n, benchRun.Add(1)))
			args := &goredis.XAddArgs{Stream: stream, Values: []any{"v", benchPayload}}
			parallel(b, n, func(_ int, ops func() bool) error {
				for ops() {
					if err := s.Client().XAdd(ctx, args).Err(); err != nil {
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
