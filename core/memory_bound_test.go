package core

// Memory bounds: a catch-up holds a bounded part of the history (blob
// cache, prefetch, the Messages channel), not the history; an idle
// pushed subscription holds no goroutine.

import (
	"context"
	"crypto/rand"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	goweak "weak"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

// liveBlobs is a memory store whose blob reads return fresh copies and
// remember them weakly, so that a test can count the bytes read from the
// store that the process still holds.
type liveBlobs struct {
	*memory.Store
	mu   sync.Mutex
	read []liveBuf
}

type liveBuf struct {
	p    goweak.Pointer[byte]
	size int
}

func (s *liveBlobs) Get(ctx context.Context, key string) (backend.Entry, error) {
	e, err := s.Store.Get(ctx, key)
	if err != nil || !strings.HasPrefix(key, "x/") || len(e.Value) == 0 {
		return e, err
	}
	e.Value = append(make([]byte, 0, len(e.Value)), e.Value...)
	s.mu.Lock()
	s.read = append(s.read, liveBuf{p: goweak.Make(&e.Value[0]), size: len(e.Value)})
	s.mu.Unlock()
	return e, nil
}

// held collects garbage and returns the bytes of blob reads still
// reachable, forgetting the others.
func (s *liveBlobs) held() int {
	runtime.GC()
	s.mu.Lock()
	defer s.mu.Unlock()
	n, keep := 0, s.read[:0]
	for _, b := range s.read {
		if b.p.Value() != nil {
			n += b.size
			keep = append(keep, b)
		}
	}
	clear(s.read[len(keep):])
	s.read = keep
	return n
}

// A late joiner's catch-up of a history many times the client's memory
// bounds (blob cache, prefetch) holds about those bounds of it at any time,
// not the history; and the announcements are walked a snapshot at a time
// (annsHeldMax lowered so that the snapshot chain is longer than what is
// kept of it); in publisher order a head far ahead is walked without
// holding the chain (lazy parts). Every message still arrives exactly
// once, in order.
func TestCatchUpHoldsBoundedBytes(t *testing.T) {
	for _, o := range []Ordering{TopicOrder, PublisherOrder} {
		t.Run(o.String(), func(t *testing.T) { testCatchUpBounded(t, o) })
	}
}

func testCatchUpBounded(t *testing.T, order Ordering) {
	ctx := testCtx(t)
	const (
		segments = 800
		perSeg   = 8
		size     = 1024 // incompressible: the segments are stored as they are
		cache    = 128 << 10
		prefetch = 64 << 10
	)
	old := annsHeldMax
	annsHeldMax = 16
	t.Cleanup(func() { annsHeldMax = old })
	store := &liveBlobs{Store: memory.New()}
	t.Cleanup(func() { _ = store.Close() })
	pub := newClient(t, store, WithFoldWindow(4), WithOrdering(order))
	for range segments {
		batch := make([][]byte, perSeg)
		for j := range batch {
			batch[j] = make([]byte, size)
			_, _ = rand.Read(batch[j])
		}
		_, err := pub.PublishBatch(ctx, "t", batch)
		require.NoError(t, err)
	}
	history := store.held() // what publishing still holds (its own cache)
	sc := newClient(t, store, WithCacheBytes(cache), WithPrefetchBytes(prefetch), WithOrdering(order))
	sub, err := sc.Subscribe(ctx, "t", FromStart())
	require.NoError(t, err)
	// The bound: the cache, the prefetch (plus the reads in flight when it
	// filled: blobStore fanout), the Messages channel's messages' segments
	// and the one being delivered; each segment about perSeg*size bytes.
	seg := perSeg*size + 512
	bound := cache + prefetch + (8+DefaultBuffer+2)*seg
	require.Greater(t, segments*seg, 4*bound, "the history must dwarf the bound")
	peak := 0
	for i := range segments * perSeg {
		select {
		case m := <-sub.Messages():
			require.EqualValues(t, i+1, m.Seq, "exactly once, in order")
		case g := <-sub.Gaps():
			t.Fatalf("gap %+v", g)
		case <-ctx.Done():
			t.Fatalf("received %d of %d", i, segments*perSeg)
		}
		if i%(4*perSeg) == 0 {
			peak = max(peak, store.held()-history)
		}
	}
	t.Logf("peak %d bound %d history %d", peak, bound, segments*seg)
	require.LessOrEqual(t, peak, bound, "a catch-up held %d bytes of a %d-byte history", peak, segments*seg)
	st := sc.Stats()
	require.Zero(t, st.Gaps+st.Duplicates+st.Invalid)
	require.LessOrEqual(t, sc.eng.blobs.cache.bytes(), cache)
}

// Idle pushed subscriptions hold no goroutine each: many clients of one hub
// subscribed to one topic settle to a constant number of goroutines (the
// topic's shared watch), and a publish still reaches every one of them.
func TestIdleSubscriptionsHoldNoGoroutine(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	h := newHub(t, store)
	pub := newClient(t, store, WithHub(h))
	_, err := pub.Publish(ctx, "t", []byte("first"))
	require.NoError(t, err)
	base := runtime.NumGoroutine()
	const n = 200
	subs := make([]*Subscription, n)
	for i := range subs {
		c := newClient(t, store, WithHub(h))
		subs[i], err = c.Subscribe(ctx, "t")
		require.NoError(t, err)
	}
	// Eventually idle: the first polls end and nothing else runs. A
	// goroutine per subscription would keep the count at base+n.
	for runtime.NumGoroutine() > base+5 {
		select {
		case <-ctx.Done():
			t.Fatalf("%d goroutines for %d idle subscriptions (%d before)", runtime.NumGoroutine(), n, base)
		case <-time.After(10 * time.Millisecond):
		}
	}
	_, err = pub.Publish(ctx, "t", []byte("second"))
	require.NoError(t, err)
	for _, s := range subs {
		select {
		case m := <-s.Messages():
			require.Equal(t, "second", string(m.Payload))
		case <-ctx.Done():
			t.Fatal("a pushed subscription missed the publish")
		}
	}
}
