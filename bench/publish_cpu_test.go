package bench

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/core"
)

// BenchmarkPublishCPU measures the CPU a publish costs the process, on the
// in-process memory store (no I/O, no fsync: what remains is the
// protocol's own work: hashing, signing, encoding, the store's
// bookkeeping), in publisher order:
//
//	P=n  n clients (each its own identity) each publish b.N/n messages of
//	     100 bytes one at a time to one topic; cpu-µs/msg is the process's
//	     user+system CPU time per message (getrusage), msgs/s the rate
func BenchmarkPublishCPU(b *testing.B) {
	for _, p := range []int{1, 100} {
		b.Run(fmt.Sprintf("P=%d", p), func(b *testing.B) {
			ctx := benchCtx(b)
			st := memory.NewSpace(memory.Options{}).Open()
			b.Cleanup(func() { _ = st.Close() })
			clients := make([]*core.Client, p)
			for i := range clients {
				id, err := core.GenerateIdentity()
				if err != nil {
					b.Fatal(err)
				}
				if clients[i], err = core.New(st, id, core.WithOrdering(core.PublisherOrder)); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = clients[i].Close(ctx) })
				if _, err := clients[i].Publish(ctx, "cpu", payload(i, 0)); err != nil { // registration
					b.Fatal(err)
				}
			}
			cpu := func() time.Duration {
				var ru syscall.Rusage
				_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
				return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
			b.ResetTimer()
			start, c0 := time.Now(), cpu()
			var wg sync.WaitGroup
			errs := make([]error, p)
			for w := range p {
				wg.Go(func() {
					for i := w; i < b.N; i += p {
						if _, err := clients[w].Publish(ctx, "cpu", payload(w, i+1)); err != nil {
							errs[w] = err
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed, used := time.Since(start), cpu()-c0
			b.StopTimer()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/msg")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
