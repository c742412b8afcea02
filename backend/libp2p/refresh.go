package libp2p

import (
	"context"
	"slices"
	"sync"
	"time"
)

// tracker remembers the records a handle wrote or read, so that it can
// re-put them before the storing nodes expire them.
type tracker struct {
	max int
	mu  sync.Mutex
	m   map[string]tracked
}

type tracked struct {
	rec  []byte // the record as a repair copy
	used time.Time
}

func newTracker(max int) *tracker { return &tracker{max: max, m: make(map[string]tracked)} }

// touch records that dk holds rec (a repair copy) as of now.
func (t *tracker) touch(dk string, rec []byte, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[dk]; !ok && len(t.m) >= t.max {
		// Full: forget the least recently used tenth.
		t.evict(t.max / 10)
	}
	t.m[dk] = tracked{rec: rec, used: now}
}

// evict removes the n least recently used entries (caller holds mu).
func (t *tracker) evict(n int) {
	times := make([]time.Time, 0, len(t.m))
	for _, e := range t.m {
		times = append(times, e.used)
	}
	slices.SortFunc(times, time.Time.Compare)
	cutoff := times[min(max(n, 1), len(times))-1]
	for k, e := range t.m {
		if !e.used.After(cutoff) {
			delete(t.m, k)
		}
	}
}

// get returns the record tracked for dk.
func (t *tracker) get(dk string) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[dk]
	return e.rec, ok
}

// due returns the records used since cutoff, and forgets older ones.
func (t *tracker) due(cutoff time.Time) map[string][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string][]byte)
	for k, e := range t.m {
		if e.used.Before(cutoff) {
			delete(t.m, k)
			continue
		}
		out[k] = e.rec
	}
	return out
}

// len is the number of tracked records.
func (t *tracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// refreshLoop re-puts, every RefreshInterval, the records written or read
// through the handle (within the last KeepFor, when set), to the key's
// current replica set. A
// replica that holds the same write takes it as a refresh (its record age
// restarts); one that is empty or behind takes it as a repair; one that
// holds a newer version refuses it.
func (s *Store) refreshLoop() {
	t := time.NewTicker(s.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.refreshOnce(s.ctx)
	}
}

// refreshOnce re-puts every tracked record once, a few at a time.
func (s *Store) refreshOnce(ctx context.Context) {
	var cutoff time.Time // zero: keep everything tracked
	if s.opts.KeepFor > 0 {
		cutoff = time.Now().Add(-s.opts.KeepFor)
	}
	due := s.tracked.due(cutoff)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for dk, rec := range due {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			peers, err := s.replicas(ctx, dk)
			if err != nil {
				return
			}
			var pw sync.WaitGroup
			for _, p := range peers {
				pw.Go(func() { _ = s.putTo(ctx, p, dk, rec) })
			}
			pw.Wait()
			s.stats.refreshes.Add(1)
		})
	}
	wg.Wait()
}
