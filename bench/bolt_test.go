package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bolt"
)

// openBolt opens a durable (fsync on) bolt store in a fresh temporary
// directory; it is closed when the run ends.
func openBolt(b *testing.B) *bolt.Store {
	b.Helper()
	s, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkBolt measures protocol publishes on bolt (fsync on) beside raw
// compare-and-put on the same kind of file, in the same run. Each run opens
// a fresh file in b.TempDir().
//
//	publish=MODE/P=n  b.N core.Client.Publish calls of 100 bytes to one
//	                  topic by n goroutines (see publishModes); msgs/s,
//	                  msgs/commit (bolt transactions), retries/msg; then
//	                  b.N raw CompareAndPut by n goroutines on distinct
//	                  keys of the same file: cas-ops/s and x-cas (publish
//	                  rate / CAS rate)
//	CAS=distinct/P=n  b.N raw CompareAndPut of 100 bytes by n goroutines,
//	                  each chaining writes on its own key; writes/s
//	CAS=hot/P=n       the same on one shared key with a Get/CompareAndPut
//	                  loop until each write lands; writes/s, conflicts/write
func BenchmarkBolt(b *testing.B) {
	for _, mode := range publishModes {
		for _, p := range publisherCounts {
			b.Run(fmt.Sprintf("publish=%s/P=%d", mode, p), func(b *testing.B) {
				s := openBolt(b)
				benchPublish(b, s, mode, p, publishExtras{
					commits:      func() uint64 { return s.Stats().Commits },
					baseline:     casChain(s, payload(0, 0)),
					baselineName: "cas",
				})
			})
		}
	}
	for _, hot := range []bool{false, true} {
		name := "distinct"
		if hot {
			name = "hot"
		}
		for _, p := range publisherCounts {
			b.Run(fmt.Sprintf("CAS=%s/P=%d", name, p), func(b *testing.B) {
				benchCAS(b, openBolt(b), p, hot)
			})
		}
	}
}

// benchCAS runs b.N raw compare-and-puts of payloadSize bytes from p
// goroutines. With hot false each goroutine chains writes on its own key
// (it knows the version, so it never conflicts); with hot true every
// goroutine runs Get then CompareAndPut on one shared key until its write
// lands, and the conflicts are reported per successful write.
func benchCAS(b *testing.B, s backend.Store, p int, hot bool) {
	ctx := benchCtx(b)
	value := payload(0, 0)
	var conflicts [128]int64 // per worker; p <= len
	if p > len(conflicts) {
		b.Fatalf("at most %d writers", len(conflicts))
	}
	chain := casChain(s, value)
	runWorkers(b, p, "writes/s", func(w, n int) error {
		if !hot {
			for i := range n {
				if err := chain(ctx, w, i); err != nil {
					return err
				}
			}
			return nil
		}
		for range n {
			for {
				e, err := s.Get(ctx, "cas/hot")
				if err != nil && !errors.Is(err, backend.ErrNotFound) {
					return err
				}
				_, err = s.CompareAndPut(ctx, "cas/hot", e.Version, value)
				if err == nil {
					break
				}
				if !errors.Is(err, backend.ErrConflict) {
					return err
				}
				conflicts[w]++
			}
		}
		return nil
	})
	if hot {
		var total int64
		for _, c := range conflicts[:p] {
			total += c
		}
		b.ReportMetric(float64(total)/float64(b.N), "conflicts/write")
	}
}

// casChain returns a baseline operation: worker w's i-th call
// compare-and-puts value on the worker's own key "cas/<w>", expecting the
// version its previous call wrote (0 for the first), so it never conflicts.
// Calls of one worker must not overlap.
func casChain(s backend.Store, value []byte) func(ctx context.Context, w, i int) error {
	var (
		mu   sync.Mutex
		vers = map[int]backend.Version{}
	)
	return func(ctx context.Context, w, i int) error {
		mu.Lock()
		ver := vers[w]
		mu.Unlock()
		v, err := s.CompareAndPut(ctx, fmt.Sprintf("cas/%03d", w), ver, value)
		if err != nil {
			return err
		}
		mu.Lock()
		vers[w] = v
		mu.Unlock()
		return nil
	}
}
