package core

// How a publisher-order subscriber that is behind reads: the head record
// carries its segment (format 3), segments past the prefetch bound are
// read again a window at a time, and head watches start together.

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

// slowBlobs is a memory store whose blob reads take a moment and which
// records, for each blob read, how many blob reads were in flight when it
// started (itself included).
type slowBlobs struct {
	*memory.Store
	delay    time.Duration
	inflight atomic.Int64
	mu       sync.Mutex
	overlap  map[string]int64 // blob key -> most reads in flight at a start
	reads    int
}

func newSlowBlobs(t *testing.T, delay time.Duration) *slowBlobs {
	s := &slowBlobs{Store: memory.New(), delay: delay, overlap: map[string]int64{}}
	t.Cleanup(func() { _ = s.Store.Close() })
	return s
}

func (s *slowBlobs) Get(ctx context.Context, key string) (backend.Entry, error) {
	if !strings.HasPrefix(key, "x/") {
		return s.Store.Get(ctx, key)
	}
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	s.mu.Lock()
	s.overlap[key] = max(s.overlap[key], n)
	s.reads++
	s.mu.Unlock()
	time.Sleep(s.delay)
	return s.Store.Get(ctx, key)
}

// most returns the most reads in flight at the start of a read of any of
// refs.
func (s *slowBlobs) most(refs []Ref) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m int64
	for _, r := range refs {
		m = max(m, s.overlap[blobKey(r)])
	}
	return m
}

// TestHeadCarriesSegment: a publisher's head record carries its newest
// segment when that is small (format 3), so a subscriber that is up to
// date delivers a new message from the head alone, without reading the
// segment; a large segment is named, not carried (format 2), and read.
func TestHeadCarriesSegment(t *testing.T) {
	ctx := testCtx(t)
	store := newSlowBlobs(t, 0)
	const topic = "carried"
	pub := newClient(t, store, WithOrdering(PublisherOrder))
	sc := newClient(t, store, WithOrdering(PublisherOrder))
	sub, err := sc.Subscribe(ctx, topic, FromStart(), WithoutPush())
	require.NoError(t, err)
	large := make([]byte, 2*openSegMax)
	_, _ = rand.Read(large) // incompressible
	for i, payload := range [][]byte{[]byte("small"), large} {
		_, err := pub.Publish(ctx, topic, payload)
		require.NoError(t, err)
		e, err := store.Get(ctx, newTopicKeys(topic).head(pub.Identity().ID()))
		require.NoError(t, err)
		store.mu.Lock()
		store.reads = 0
		store.mu.Unlock()
		got := receive(t, ctx, sc, sub, 1)
		require.Equal(t, payload, got[0].Payload)
		store.mu.Lock()
		reads := store.reads
		store.mu.Unlock()
		if i == 0 {
			require.EqualValues(t, headTagInline, e.Value[0], "a small segment is carried")
			require.Zero(t, reads, "blob reads to deliver a message its head carries")
		} else {
			require.EqualValues(t, headTag, e.Value[0], "a large segment is named")
			require.Equal(t, 1, reads)
		}
	}
	require.Zero(t, sc.Stats().Invalid+sc.Stats().Gaps)
}

// TestLazyPartsReadInWindows: a chain far longer than the prefetch bound
// is delivered exactly once and in order, the segments past the bound
// being read again for delivery several at a time rather than one after
// another.
func TestLazyPartsReadInWindows(t *testing.T) {
	ctx := testCtx(t)
	store := newSlowBlobs(t, time.Millisecond)
	const (
		topic = "windows"
		n     = 150
	)
	// A chain of n stored segments (no open segment in the head).
	pub := newClient(t, store, WithOrdering(PublisherOrder), withoutOpenSegments())
	segs := publishBatches(t, ctx, store, pub, topic, n, 1)
	// A small cache: what the walk read is read again from the store.
	sc := newClient(t, store, WithOrdering(PublisherOrder), WithPrefetchBytes(16<<10), WithCacheBytes(4<<10))
	sub, err := sc.Subscribe(ctx, topic, FromStart(), WithoutPush())
	require.NoError(t, err)
	for i, m := range receive(t, ctx, sc, sub, n) {
		require.EqualValues(t, i+1, m.Seq)
	}
	// The oldest segments are past the prefetch bound.
	require.GreaterOrEqual(t, store.most(segs[:60]), int64(4), "segments past the prefetch bound were read again one at a time")
	require.Zero(t, sc.Stats().Invalid+sc.Stats().Gaps+sc.Stats().Duplicates)
}

// slowWatch is a memory store whose Watch takes a moment to start (a
// round trip on Redis) and which counts the most Watch calls in flight.
type slowWatch struct {
	*memory.Store
	inflight, most atomic.Int64
}

func (s *slowWatch) Watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	time.Sleep(5 * time.Millisecond)
	return s.Store.Watch(ctx, key)
}

// TestHeadWatchesStartTogether: a pushed publisher-order subscription
// starts watching the head records of the publishers it finds together,
// not one after another (each start waits for the store), and receives
// every publisher's messages.
func TestHeadWatchesStartTogether(t *testing.T) {
	ctx := testCtx(t)
	store := &slowWatch{Store: newMem(t)}
	const (
		topic = "watches"
		pubs  = 20
	)
	for range pubs {
		_, err := newClient(t, store, WithOrdering(PublisherOrder)).Publish(ctx, topic, []byte("first"))
		require.NoError(t, err)
	}
	sc := newClient(t, store, WithOrdering(PublisherOrder))
	sub, err := sc.Subscribe(ctx, topic, FromStart())
	require.NoError(t, err)
	for range pubs {
		select {
		case <-sub.Messages():
		case <-ctx.Done():
			t.Fatal("a message did not arrive")
		}
	}
	require.Eventually(t, func() bool { return store.most.Load() >= 4 }, 5*time.Second, 10*time.Millisecond,
		"head watches started one at a time (most in flight %d)", store.most.Load())
}
