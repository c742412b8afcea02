package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bolt"
	"github.com/stickypub/stickypub/core"
)

// liveKeys counts the keys a store holds (creates minus deletes) while
// forwarding the interfaces the protocol uses on bolt (Update, Delete).
type liveKeys struct {
	*bolt.Store
	n atomic.Int64
}

func (s *liveKeys) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	v, err := s.Store.CompareAndPut(ctx, key, expect, value)
	if err == nil && expect == 0 {
		s.n.Add(1)
	}
	return v, err
}

func (s *liveKeys) Update(ctx context.Context, key string, fn backend.UpdateFunc) (backend.Version, error) {
	created := false
	v, err := s.Store.Update(ctx, key, func(cur backend.Entry) ([]byte, error) {
		b, err := fn(cur)
		created = cur.Version == 0 && err == nil
		return b, err
	})
	if err == nil && created {
		s.n.Add(1)
	}
	return v, err
}

func (s *liveKeys) Delete(ctx context.Context, key string, expect backend.Version) error {
	err := s.Store.Delete(ctx, key, expect)
	if err == nil {
		s.n.Add(-1)
	}
	return err
}

// storeSizeMessages is how many messages BenchmarkStoreSize publishes
// (STICKYPUB_STORE_MSGS overrides the default of 1,000,000).
func storeSizeMessages() int {
	if n, err := strconv.Atoi(os.Getenv("STICKYPUB_STORE_MSGS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// BenchmarkStoreSize publishes 1,000,000 messages of 100 bytes (10
// publishers sharing a Hub, batches of 100) to one topic on bolt with a
// retention of 10,000 messages, and reports the bbolt file size and the
// number of live keys after the first tenth and at the end. With
// reclaiming (the default on a store with Delete) the store stays flat;
// reclaim=off is the baseline in the same run (everything kept). b.N is
// not used: run with -benchtime 1x.
//
//	go test -run '^$' -bench StoreSize -benchtime 1x -timeout 60m ./bench/
func BenchmarkStoreSize(b *testing.B) {
	for _, reclaim := range []bool{true, false} {
		b.Run(fmt.Sprintf("reclaim=%v", map[bool]string{true: "on", false: "off"}[reclaim]), func(b *testing.B) {
			ctx := benchCtx(b)
			path := filepath.Join(b.TempDir(), "size.db")
			bs, err := bolt.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			st := &liveKeys{Store: bs}
			b.Cleanup(func() { _ = bs.Close() })
			opts := []core.Option{core.WithRetention(core.Retention{MaxMessages: 10_000})}
			if !reclaim {
				opts = append(opts, core.WithoutReclaim())
			}
			hub, err := core.NewHub(st, opts...)
			if err != nil {
				b.Fatal(err)
			}
			const pubs, batch = 10, 100
			clients := make([]*core.Client, pubs)
			for i := range clients {
				id, err := core.GenerateIdentity()
				if err != nil {
					b.Fatal(err)
				}
				if clients[i], err = core.New(st, id, append(opts, core.WithHub(hub))...); err != nil {
					b.Fatal(err)
				}
			}
			total := storeSizeMessages()
			tenth := total / 10
			var (
				sent      atomic.Int64
				mu        sync.Mutex
				sizeTenth int64
				keysTenth int64
			)
			fileSize := func() int64 {
				fi, err := os.Stat(path)
				if err != nil {
					return 0
				}
				return fi.Size()
			}
			b.ResetTimer()
			elapsed, err := timeWorkers(total/batch, pubs, func(w, n int) error {
				payloads := make([][]byte, batch)
				for i := range n {
					for j := range payloads {
						payloads[j] = payload(w, i*batch+j)
					}
					if _, err := clients[w].PublishBatch(ctx, "bench/size", payloads); err != nil {
						return err
					}
					if s := sent.Add(batch); s >= int64(tenth) && s-batch < int64(tenth) {
						mu.Lock()
						sizeTenth, keysTenth = fileSize(), st.n.Load()
						mu.Unlock()
					}
				}
				return nil
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range clients {
				_ = c.Close(ctx)
			}
			stats := clients[0].Stats()
			hub.Close()
			sizeEnd, keysEnd := fileSize(), st.n.Load()
			b.ReportMetric(float64(sizeTenth)/1e6, "MB@10%")
			b.ReportMetric(float64(sizeEnd)/1e6, "MB@end")
			b.ReportMetric(float64(keysTenth), "keys@10%")
			b.ReportMetric(float64(keysEnd), "keys@end")
			b.ReportMetric(float64(sent.Load())/elapsed.Seconds(), "msgs/s")
			b.Logf("%d messages, retention 10000, reclaim %v: bolt file %.1f MB and %d keys after %d messages; %.1f MB and %d keys after %d; %d snapshots reclaimed; %.0f msgs/s",
				sent.Load(), reclaim, float64(sizeTenth)/1e6, keysTenth, tenth, float64(sizeEnd)/1e6, keysEnd, sent.Load(), stats.Reclaimed, float64(sent.Load())/elapsed.Seconds())
		})
	}
}
