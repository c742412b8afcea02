package conformance

import (
	"context"
	"errors"
	"fmt"
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

// notifyTimeout bounds the wait for one watch notification or for a watch
// channel to close.
const notifyTimeout = 10 * time.Second

// expectNotification reads ch until it reports version want. Notifications
// of earlier versions (not yet coalesced away) are skipped; a notification
// of 0 ("version not known") is accepted as the hint for want.
func (f *fixture) expectNotification(ch <-chan backend.Version, want backend.Version) {
	f.t.Helper()
	timer := time.NewTimer(notifyTimeout)
	defer timer.Stop()
	for {
		select {
		case v, ok := <-ch:
			require.True(f.t, ok, "watch channel closed while waiting for version %d", want)
			if v == want || v == 0 {
				return
			}
			require.Less(f.t, v, want, "notified of version %d, newer than the last write (%d)", v, want)
		case <-timer.C:
			require.FailNowf(f.t, "no notification", "no notification of version %d within %v", want, notifyTimeout)
		case <-f.ctx.Done():
			require.FailNowf(f.t, "no notification", "no notification of version %d before the deadline", want)
		}
	}
}

// expectClosed drains ch until it is closed.
func (f *fixture) expectClosed(ch <-chan backend.Version, why string) {
	f.t.Helper()
	timer := time.NewTimer(notifyTimeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timer.C:
			require.FailNowf(f.t, "watch channel not closed", "the watch channel was not closed within %v of %s", notifyTimeout, why)
		}
	}
}

func (s *suite) testWatchNotify(t *testing.T) {
	f := s.setup(t, basicTimeout)
	w := watcher(t, f.store)
	wctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	ch, err := w.Watch(wctx, "k")
	require.NoError(t, err, "Watch")
	v1 := f.put(f.store, "k", 0, []byte("one"))
	f.expectNotification(ch, v1)
	v2 := f.put(f.store, "k", v1, []byte("two"))
	f.expectNotification(ch, v2)
}

// pushLatencyBound is the median delay from a completed write to its
// notification that testWatchMany accepts: a quarter of core's 2 s safety
// poll, so that push delivery is worth having. The median, not the maximum,
// so a busy machine's outliers do not fail a correct adapter.
const pushLatencyBound = 500 * time.Millisecond

// testWatchMany checks that one watch keeps notifying: many writes, each
// followed by waiting for its notification (a watch that goes silent after
// a few notifications fails here), with the median latency bounded.
func (s *suite) testWatchMany(t *testing.T) {
	f := s.setup(t, stressTimeout)
	w := watcher(t, f.store)
	wctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	ch, err := w.Watch(wctx, "k")
	require.NoError(t, err, "Watch")
	n := s.scale(50, 200)
	lat := make([]time.Duration, 0, n)
	var v backend.Version
	for i := range n {
		start := time.Now()
		v = f.put(f.store, "k", v, []byte(strconv.Itoa(i)))
		f.expectNotification(ch, v)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	med, worst := lat[len(lat)/2], lat[len(lat)-1]
	t.Logf("%d notifications on one watch: write+notify median %v, max %v", n, med, worst)
	require.LessOrEqualf(t, med, pushLatencyBound,
		"median write-to-notification time %v over %d writes is above %v: push is no faster than core's safety poll", med, n, pushLatencyBound)
}

func (s *suite) testWatchOtherHandle(t *testing.T) {
	f := s.setup(t, basicTimeout)
	w := watcher(t, f.store)
	wctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	ch, err := w.Watch(wctx, "k")
	require.NoError(t, err, "Watch")
	// A change made through another handle onto the namespace is a change.
	other := f.open()
	v := f.put(other, "k", 0, []byte("from elsewhere"))
	f.expectNotification(ch, v)
}

func (s *suite) testWatchCoalesce(t *testing.T) {
	f := s.setup(t, basicTimeout)
	w := watcher(t, f.store)
	wctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	ch, err := w.Watch(wctx, "k")
	require.NoError(t, err, "Watch")

	// Nobody reads ch while these writes run: they must not block.
	n := s.scale(50, 200)
	type result struct {
		last backend.Version
		err  error
	}
	done := make(chan result, 1)
	var written atomic.Int64
	go func() {
		var v backend.Version
		for i := range n {
			nv, err := f.store.CompareAndPut(f.ctx, "k", v, []byte(strconv.Itoa(i)))
			if err != nil {
				done <- result{v, err}
				return
			}
			v = nv
			written.Add(1)
		}
		done <- result{v, nil}
	}()
	// Blocked means no progress: a slow store (a DHT under -race) may take
	// longer than notifyTimeout for all n writes, but not for one.
	var r result
	tick := time.NewTicker(notifyTimeout)
	defer tick.Stop()
	for last := int64(-1); ; {
		select {
		case r = <-done:
		case <-tick.C:
			now := written.Load()
			if now == last {
				require.FailNow(t, "writer blocked", "no write completed for %v after %d of %d while a watcher was not reading", notifyTimeout, now, n)
			}
			last = now
			continue
		}
		break
	}
	require.NoError(t, r.err, "CompareAndPut while a watcher is not reading")
	// The newest version still arrives.
	f.expectNotification(ch, r.last)
}

func (s *suite) testWatchCancel(t *testing.T) {
	f := s.setup(t, basicTimeout)
	w := watcher(t, f.store)
	wctx, cancel := context.WithCancel(f.ctx)
	ch, err := w.Watch(wctx, "k")
	require.NoError(t, err, "Watch")
	f.put(f.store, "k", 0, []byte("x"))
	cancel()
	f.expectClosed(ch, "cancelling its context")
	// The store is still fine, and new watches work.
	ch2, err := w.Watch(f.ctx, "k")
	require.NoError(t, err, "Watch after another watch was cancelled")
	require.NotNil(t, ch2)
}

func (s *suite) testWatchClose(t *testing.T) {
	f := s.setup(t, basicTimeout)
	watcher(t, f.store)
	st := f.open()
	ch, err := st.(backend.Watcher).Watch(f.ctx, "k")
	require.NoError(t, err, "Watch")
	require.NoError(t, st.Close(), "Close")
	f.expectClosed(ch, "closing the store")
}

func (s *suite) testDeleteSuccess(t *testing.T) {
	f := s.setup(t, basicTimeout)
	d := deleter(t, f.store)
	v := f.put(f.store, "k", 0, []byte("x"))
	require.NoError(t, d.Delete(f.ctx, "k", v), "Delete with the current version")
	f.mustNotExist(f.store, "k")
	f.mustNotExist(f.open(), "k")
}

func (s *suite) testDeleteConflict(t *testing.T) {
	f := s.setup(t, basicTimeout)
	d := deleter(t, f.store)
	v1 := f.put(f.store, "k", 0, []byte("one"))
	v2 := f.put(f.store, "k", v1, []byte("two"))
	want := backend.Entry{Value: []byte("two"), Version: v2}
	for _, expect := range []backend.Version{0, v1, v2 + 1, v2 + 1000} {
		err := d.Delete(f.ctx, "k", expect)
		require.ErrorIs(t, err, backend.ErrConflict, "Delete(expect %d) of a key at version %d", expect, v2)
	}
	f.mustGet(f.store, "k", want)
}

func (s *suite) testDeleteNotFound(t *testing.T) {
	f := s.setup(t, basicTimeout)
	d := deleter(t, f.store)
	err := d.Delete(f.ctx, "missing", 1)
	require.ErrorIs(t, err, backend.ErrNotFound, "Delete of a missing key")
	v := f.put(f.store, "k", 0, []byte("x"))
	require.NoError(t, d.Delete(f.ctx, "k", v))
	err = d.Delete(f.ctx, "k", v)
	require.ErrorIs(t, err, backend.ErrNotFound, "second Delete of the same version")
}

func (s *suite) testDeleteRecreate(t *testing.T) {
	f := s.setup(t, basicTimeout)
	d := deleter(t, f.store)
	log := newVersionLog()
	var v backend.Version
	for i := range 3 {
		v = f.put(f.store, "k", 0, fmt.Appendf(nil, "life %d", i))
		log.add(t, "k", v)
		f.mustGet(f.store, "k", backend.Entry{Value: fmt.Appendf(nil, "life %d", i), Version: v})
		require.NoError(t, d.Delete(f.ctx, "k", v))
		f.mustNotExist(f.store, "k")
	}
	// The last deleted version is no longer a valid expect.
	_, err := f.store.CompareAndPut(f.ctx, "k", v, []byte("zombie"))
	f.requireConflict(err, "k", v, backend.Entry{})
	f.mustNotExist(f.store, "k")
}

func (s *suite) testUpdateCreate(t *testing.T) {
	f := s.setup(t, basicTimeout)
	u := updater(t, f.store)
	v, err := u.Update(f.ctx, "k", func(cur backend.Entry) ([]byte, error) {
		if cur.Version != 0 || len(cur.Value) != 0 {
			return nil, fmt.Errorf("missing key passed to UpdateFunc as %+v, want the zero Entry", cur)
		}
		return []byte("created"), nil
	})
	require.NoError(t, err, "Update of a missing key")
	require.NotZero(t, v)
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("created"), Version: v})
}

func (s *suite) testUpdateModify(t *testing.T) {
	f := s.setup(t, basicTimeout)
	u := updater(t, f.store)
	v1 := f.put(f.store, "k", 0, []byte("a"))
	v2, err := u.Update(f.ctx, "k", func(cur backend.Entry) ([]byte, error) {
		if cur.Version != v1 || string(cur.Value) != "a" {
			return nil, fmt.Errorf("UpdateFunc got %+v, want version %d value %q", cur, v1, "a")
		}
		return append(cur.Value, 'b'), nil
	})
	require.NoError(t, err, "Update")
	require.Greater(t, v2, v1, "version after Update")
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("ab"), Version: v2})
}

func (s *suite) testUpdateSkip(t *testing.T) {
	f := s.setup(t, basicTimeout)
	u := updater(t, f.store)
	skip := func(backend.Entry) ([]byte, error) { return nil, backend.ErrSkipUpdate }

	v, err := u.Update(f.ctx, "missing", skip)
	require.NoError(t, err, "skipped Update of a missing key")
	require.Zero(t, v, "version returned by a skipped Update of a missing key")
	f.mustNotExist(f.store, "missing")

	v1 := f.put(f.store, "k", 0, []byte("a"))
	v, err = u.Update(f.ctx, "k", skip)
	require.NoError(t, err, "skipped Update")
	require.Equal(t, v1, v, "a skipped Update returns the current version")
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("a"), Version: v1})
	// Nothing was written, so the old version is still the one to expect.
	f.put(f.store, "k", v1, []byte("b"))
}

func (s *suite) testUpdateError(t *testing.T) {
	f := s.setup(t, basicTimeout)
	u := updater(t, f.store)
	boom := errors.New("boom")
	v1 := f.put(f.store, "k", 0, []byte("a"))
	_, err := u.Update(f.ctx, "k", func(backend.Entry) ([]byte, error) { return nil, boom })
	require.ErrorIs(t, err, boom, "Update returns the UpdateFunc's error")
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("a"), Version: v1})

	if f.caps.MaxValueSize < maxTestValue {
		_, err = u.Update(f.ctx, "k", func(backend.Entry) ([]byte, error) { return pattern(f.caps.MaxValueSize + 1), nil })
		require.ErrorIs(t, err, backend.ErrTooLarge, "Update to an oversized value")
		f.mustGet(f.store, "k", backend.Entry{Value: []byte("a"), Version: v1})
	}
}

func (s *suite) testUpdateConcurrent(t *testing.T) {
	f := s.setup(t, stressTimeout)
	updater(t, f.store)
	const handles, workers = 4, 16
	per := s.scale(10, 40)
	stores := []backend.Store{f.store}
	for len(stores) < handles {
		stores = append(stores, f.open())
	}
	var (
		mu       sync.Mutex
		versions = map[backend.Version]int{}
		wg       sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := stores[w%handles].(backend.Updater)
			for range per {
				v, err := u.Update(f.ctx, "counter", incrCounter)
				if !assert.NoError(t, err, "worker %d: Update", w) {
					return
				}
				mu.Lock()
				versions[v]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := workers * per
	var last backend.Version
	var dups []backend.Version
	for v, n := range versions {
		if n > 1 {
			dups = append(dups, v)
		}
		last = max(last, v)
	}
	if !f.linearizable() {
		e := f.readAtLeast(f.store, "counter", last)
		got, _ := strconv.Atoi(string(e.Value))
		t.Logf("%d concurrent Updates at %v: counter reached %d (%.1f%% lost), %d versions handed out more than once",
			total, f.caps.Consistency, got, 100*float64(total-got)/float64(total), len(dups))
		return
	}
	require.Empty(t, dups, "Update handed out these versions more than once")
	f.mustGet(f.store, "counter", backend.Entry{Value: []byte(strconv.Itoa(total)), Version: last})
}

// incrCounter is an UpdateFunc that adds one to a decimal counter (absent:
// 0).
func incrCounter(cur backend.Entry) ([]byte, error) {
	n := 0
	if cur.Version != 0 {
		var err error
		if n, err = strconv.Atoi(string(cur.Value)); err != nil {
			return nil, fmt.Errorf("counter holds %q: %w", cur.Value, err)
		}
	}
	return []byte(strconv.Itoa(n + 1)), nil
}
