package conformance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

func (s *suite) testReadYourWrites(t *testing.T) {
	f := s.setup(t, basicTimeout)
	log := newVersionLog()
	var v backend.Version
	for i := range s.scale(10, 40) {
		val := fmt.Appendf(nil, "write %d", i)
		for {
			nv, err := f.store.CompareAndPut(f.ctx, "k", v, val)
			if err == nil {
				v = nv
				break
			}
			if errors.Is(err, backend.ErrConflict) && !f.linearizable() && v != 0 {
				// A weak store may not yet show the writer its own last
				// write where the compare happens; wait and try again.
				t.Logf("write %d conflicted on the writer's own version %d; retrying", i, v)
				f.readAtLeast(f.store, "k", v)
				require.True(t, sleepCtx(f.ctx, 50*time.Millisecond), "deadline while retrying write %d", i)
				continue
			}
			require.NoError(t, err, "write %d with the writer's own last version %d", i, v)
		}
		log.add(t, "k", v)
		// Only this writer writes, so it must (eventually) read exactly
		// what it wrote.
		f.mustGet(f.store, "k", backend.Entry{Value: val, Version: v})
	}
}

// success is one compare-and-put that the stress test saw succeed.
type success struct {
	version backend.Version
	counter int
}

func (s *suite) testStressCounters(t *testing.T) {
	f := s.setup(t, stressTimeout)
	// Many goroutines on several handles increment a few counters with
	// Get/CompareAndPut loops.
	const handles, keys, workers = 4, 2, 16
	per := s.scale(15, 60)
	stores := []backend.Store{f.store}
	for len(stores) < handles {
		stores = append(stores, f.open())
	}
	var (
		results     = make([][]success, workers) // per worker, in the order it saw them
		conflicts   atomic.Int64
		incomplete  atomic.Int64
		unavailable atomic.Int64 // reads that failed transiently, retried
		unavailW    atomic.Int64 // writes a weak store could not complete in time
		wg          sync.WaitGroup
	)
	// A weak store may be too slow for every worker to finish: stop them a
	// fifth of the time early, which leaves time to read the final counters.
	work := f.ctx
	if dl, ok := f.ctx.Deadline(); ok && !f.linearizable() {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadline(f.ctx, dl.Add(-time.Until(dl)/5))
		defer cancel()
	}
	keyOf := func(w int) string { return "counter" + strconv.Itoa(w%keys) }
	gate := make(chan struct{}) // released once every worker is ready
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, key := stores[(w/keys)%handles], keyOf(w)
			<-gate
			for len(results[w]) < per {
				if work.Err() != nil {
					incomplete.Add(1)
					return
				}
				e, err := st.Get(work, key)
				n := 0
				switch {
				case err == nil:
					if n, err = strconv.Atoi(string(e.Value)); !assert.NoError(t, err, "counter %s holds %q", key, e.Value) {
						return
					}
				case errors.Is(err, backend.ErrNotFound):
				case work.Err() != nil:
					continue
				case errors.Is(err, backend.ErrUnavailable):
					// A read the engine could not serve in time (a DHT's
					// replicas under load): reading again is always safe.
					unavailable.Add(1)
					continue
				default:
					assert.NoError(t, err, "worker %d: Get(%q)", w, key)
					return
				}
				// Give other workers a chance to run between the read and
				// the write: a fast in-process store would otherwise let
				// each worker finish before the next one starts.
				runtime.Gosched()
				v, err := st.CompareAndPut(work, key, e.Version, []byte(strconv.Itoa(n+1)))
				switch {
				case err == nil:
					results[w] = append(results[w], success{v, n + 1})
				case errors.Is(err, backend.ErrConflict):
					conflicts.Add(1)
				case work.Err() != nil:
				case errors.Is(err, backend.ErrUnavailable) && !f.linearizable():
					// A weak store's write that did not reach its quorum in
					// time (a DHT under load): not a success, and it may
					// have landed on some replicas, which a weak store's
					// counters tolerate (only linearizable stores are held
					// to "no lost update" below). Read again and go on.
					unavailW.Add(1)
				default:
					assert.NoError(t, err, "worker %d: CompareAndPut(%q, expect %d)", w, key, e.Version)
					return
				}
			}
		}()
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	elapsed := time.Since(start)
	if n := incomplete.Load(); n > 0 {
		msg := fmt.Sprintf("%d of %d workers did not finish %d increments before the deadline", n, workers, per)
		if f.linearizable() {
			t.Error(msg)
		} else {
			t.Log(msg)
		}
	}

	total := 0
	for k := range keys {
		key := "counter" + strconv.Itoa(k)
		var all []success
		for w := range workers {
			if keyOf(w) != key {
				continue
			}
			// Each worker's own successes come in increasing versions.
			for i := 1; i < len(results[w]); i++ {
				assert.Greater(t, results[w][i].version, results[w][i-1].version,
					"worker %d saw versions of %s go backwards", w, key)
			}
			all = append(all, results[w]...)
		}
		total += len(all)
		slices.SortFunc(all, func(a, b success) int { return cmp.Compare(a.version, b.version) })
		dups := 0
		for i := 1; i < len(all); i++ {
			if all[i].version == all[i-1].version {
				dups++
			}
		}
		var last backend.Version
		if len(all) > 0 {
			last = all[len(all)-1].version
		}
		final := 0
		if last != 0 {
			e := f.readAtLeast(f.store, key, last)
			final, _ = strconv.Atoi(string(e.Value))
		}
		lost := len(all) - final
		t.Logf("%s: %d successful CompareAndPuts, final counter %d, lost updates %d (%.1f%%), duplicate versions %d",
			key, len(all), final, lost, 100*float64(lost)/float64(max(len(all), 1)), dups)
		if !f.linearizable() {
			continue
		}
		assert.Zero(t, dups, "%s: versions handed out more than once", key)
		assert.Equal(t, len(all), final, "%s: final counter differs from the number of successful CompareAndPuts (lost updates)", key)
		// In version order, successful writes must have counted 1, 2, 3...
		for i, s := range all {
			if s.counter != i+1 {
				assert.Failf(t, "lost update", "%s: the write with version %d stored counter %d, but it is successful write number %d in version order",
					key, s.version, s.counter, i+1)
				break
			}
		}
	}
	t.Logf("%d workers on %d handles and %d keys: %d increments, %d conflicts, %d reads retried and %d writes unavailable in %v (%.0f increments/s)",
		workers, handles, keys, total, conflicts.Load(), unavailable.Load(), unavailW.Load(), elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	require.NotZero(t, total, "no compare-and-put succeeded")
}
