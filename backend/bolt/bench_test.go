package bolt

// Contention benchmarks. Every sub-benchmark has exactly `writers`
// goroutines sharing b.N successful writes, and reports "writes/s"
// (successful writes per wall-clock second). All stores use full fsync
// durability and live in b.TempDir(), so the raw bbolt baselines run on the
// same file system.
//
//	go test ./backend/bolt -run '^$' -bench . -benchtime 2000x

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	bbolt "go.etcd.io/bbolt"
)

// benchWriters lists the writer counts of every benchmark.
func benchWriters() []int { return []int{1, 10, 100} }

// benchValueSize is the payload size of every benchmark write.
const benchValueSize = 64

// runWriters starts exactly writers goroutines that together perform b.N
// writes (writer w gets its share n), times them and reports writes/s.
func runWriters(b *testing.B, writers int, write func(w, n int)) {
	b.Helper()
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		n := b.N / writers
		if w < b.N%writers {
			n++
		}
		wg.Go(func() { write(w, n) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
}

// reportBatching reports the mean number of queued operations per commit.
func reportBatching(b *testing.B, s *Store) {
	st := s.Stats()
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Operations)/float64(st.Commits), "ops/commit")
	}
}

// BenchmarkCompareAndPut measures CompareAndPut through the group commit.
// keys=distinct: each writer chains compare-and-puts on its own key (it knows
// the version, so it never conflicts). keys=hot: every writer runs a
// Get/CompareAndPut loop on one shared key until it succeeds; conflicts are
// reported per successful write.
func BenchmarkCompareAndPut(b *testing.B) {
	for _, keys := range []string{"distinct", "hot"} {
		for _, writers := range benchWriters() {
			b.Run(fmt.Sprintf("keys=%s/writers=%d", keys, writers), func(b *testing.B) {
				ctx := testCtx(b)
				s := newStore(b)
				benchValue := make([]byte, benchValueSize)
				var conflicts atomic.Int64
				runWriters(b, writers, func(w, n int) {
					if keys == "distinct" {
						key := fmt.Sprintf("writer-%03d", w)
						var ver backend.Version
						for range n {
							v, err := s.CompareAndPut(ctx, key, ver, benchValue)
							if err != nil {
								b.Errorf("cas: %v", err)
								return
							}
							ver = v
						}
						return
					}
					for range n {
						for {
							e, err := s.Get(ctx, "hot")
							if err != nil && !errors.Is(err, backend.ErrNotFound) {
								b.Errorf("get: %v", err)
								return
							}
							_, err = s.CompareAndPut(ctx, "hot", e.Version, benchValue)
							if err == nil {
								break
							}
							if !errors.Is(err, backend.ErrConflict) {
								b.Errorf("cas: %v", err)
								return
							}
							conflicts.Add(1)
						}
					}
				})
				if keys == "hot" {
					b.ReportMetric(float64(conflicts.Load())/float64(b.N), "conflicts/write")
				}
				reportBatching(b, s)
			})
		}
	}
}

// BenchmarkUpdate measures Update on one hot key: the read-modify-write runs
// inside the group commit, so writers never conflict.
func BenchmarkUpdate(b *testing.B) {
	for _, writers := range benchWriters() {
		b.Run(fmt.Sprintf("keys=hot/writers=%d", writers), func(b *testing.B) {
			ctx := testCtx(b)
			s := newStore(b)
			benchValue := make([]byte, benchValueSize)
			runWriters(b, writers, func(w, n int) {
				for range n {
					if _, err := s.Update(ctx, "hot", func(backend.Entry) ([]byte, error) { return benchValue, nil }); err != nil {
						b.Errorf("update: %v", err)
						return
					}
				}
			})
			reportBatching(b, s)
		})
	}
}

// openRaw opens a bare bbolt file with one bucket, default (durable) options.
func openRaw(b *testing.B) (*bbolt.DB, []byte) {
	b.Helper()
	db, err := bbolt.Open(tempPath(b), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	bucket := []byte("bench")
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucket(bucket)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return db, bucket
}

// BenchmarkRawUpdate is the baseline: plain bbolt, one Put per db.Update
// transaction, each writer on its own key.
func BenchmarkRawUpdate(b *testing.B) {
	for _, writers := range benchWriters() {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			db, bucket := openRaw(b)
			benchValue := make([]byte, benchValueSize)
			runWriters(b, writers, func(w, n int) {
				key := fmt.Appendf(nil, "writer-%03d", w)
				for range n {
					if err := db.Update(func(tx *bbolt.Tx) error {
						return tx.Bucket(bucket).Put(key, benchValue)
					}); err != nil {
						b.Errorf("update: %v", err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRawBatch is bbolt's own timer-based coalescing (DB.Batch, default
// 10 ms / 1000 ops), for comparison with the timer-less group commit. One
// writer is left out: it would wait out the 10 ms timer on every write.
func BenchmarkRawBatch(b *testing.B) {
	for _, writers := range benchWriters()[1:] {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			db, bucket := openRaw(b)
			benchValue := make([]byte, benchValueSize)
			runWriters(b, writers, func(w, n int) {
				key := fmt.Appendf(nil, "writer-%03d", w)
				for range n {
					if err := db.Batch(func(tx *bbolt.Tx) error {
						return tx.Bucket(bucket).Put(key, benchValue)
					}); err != nil {
						b.Errorf("batch: %v", err)
						return
					}
				}
			})
		})
	}
}
