package core

// Orphan sweep tests with stores that misbehave on purpose: a sweep racing
// a retried batch, a weak store, a lost chain segment, a real crash.

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

// stepStore is what racingSweepStore keeps of the memory store: not
// backend.Batcher, so its publishes go step by step (segment, then head).
type stepStore interface {
	backend.Store
	backend.Updater
	backend.Deleter
	backend.Lister
}

// racingSweepStore fails the first head write of each publisher with a
// transient error (the batch is retried) and, right before the retried
// head write, deletes the last segment written: what a sweep that judged
// it by an older head (and old messages) would do between the retry's
// segment write and its head write.
type racingSweepStore struct {
	stepStore
	mu      sync.Mutex
	failed  bool
	lastSeg string
	deleted int
}

func (s *racingSweepStore) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	s.mu.Lock()
	switch {
	case strings.HasPrefix(key, "x/"):
		s.lastSeg = key
	case strings.HasPrefix(key, "h/") && !s.failed:
		s.failed = true
		s.mu.Unlock()
		return 0, fmt.Errorf("injected: %w", backend.ErrUnavailable)
	case strings.HasPrefix(key, "h/") && s.lastSeg != "":
		if e, err := s.stepStore.Get(ctx, s.lastSeg); err == nil && s.stepStore.Delete(ctx, s.lastSeg, e.Version) == nil {
			s.deleted++
		}
		s.lastSeg = ""
	}
	s.mu.Unlock()
	return s.stepStore.CompareAndPut(ctx, key, expect, value)
}

// TestRetriedBatchRewritesSweptSegment: a batch whose head write is
// retried re-checks its segments after the head points to them and writes
// them again if a sweep deleted one meanwhile, so the messages are
// delivered: a batch stored as a segment of its own, and one that seals
// the open segment the head carried and stores its own large one.
func TestRetriedBatchRewritesSweptSegment(t *testing.T) {
	big := make([]byte, 2*openSegMax) // incompressible: stored, never carried
	_, _ = rand.Read(big)
	for _, tc := range []struct {
		name     string
		opts     []Option
		payloads [][]byte // the last one's head write is failed once
	}{
		{"stored", []Option{withoutOpenSegments()}, [][]byte{[]byte("m1")}},
		{"sealing", nil, [][]byte{[]byte("m1"), big}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			st := &racingSweepStore{stepStore: newMem(t), failed: true}
			pub := newClient(t, st, append(tc.opts, WithOrdering(PublisherOrder))...)
			for i, p := range tc.payloads {
				if i == len(tc.payloads)-1 {
					st.mu.Lock()
					st.failed, st.lastSeg = false, ""
					st.mu.Unlock()
				}
				_, err := pub.Publish(ctx, "raced", p)
				require.NoError(t, err)
			}
			require.Equal(t, 1, st.deleted, "the injected sweep did not run")
			sub := newClient(t, st, WithOrdering(PublisherOrder))
			s, err := sub.Subscribe(ctx, "raced", FromStart(), WithoutPush())
			require.NoError(t, err)
			got := receive(t, ctx, sub, s, len(tc.payloads))
			for i, p := range tc.payloads {
				require.Equal(t, p, got[i].Payload)
			}
			require.Zero(t, sub.Stats().Gaps)
		})
	}
}

// weakMem is a memory store that declares Eventual consistency.
type weakMem struct{ *memory.Store }

func (w weakMem) Capabilities() backend.Capabilities {
	c := w.Store.Capabilities()
	c.Consistency = backend.Eventual
	return c
}

// TestSweepOrphansWeakStore: on a store that is not linearizable a head
// may still be replaced by a concurrent writer's, so a segment the
// publisher went on without is only deleted past the grace period, like
// one beyond the head.
func TestSweepOrphansWeakStore(t *testing.T) {
	ctx := testCtx(t)
	st := weakMem{newMem(t)}
	id, err := GenerateIdentity()
	require.NoError(t, err)
	first := newClientAs(t, st, id)
	_, err = first.Publish(ctx, "weak", []byte("m1"))
	require.NoError(t, err)
	f := newForgerAs(t, st, id)
	young, err := f.CrashedSegment(ctx, "weak", time.Now(), []byte("lost young"))
	require.NoError(t, err)
	_, err = first.Publish(ctx, "weak", []byte("m2")) // goes on without it
	require.NoError(t, err)

	rep, err := newClient(t, st).SweepOrphans(ctx, "weak")
	require.NoError(t, err)
	// m1 and m2 ride in the head (an open segment): the crashed segment
	// is the only one stored.
	require.Equal(t, SweepReport{Blobs: rep.Blobs, Segments: 1, Reachable: 0, Kept: 1}, rep)
	requireGone(t, st, young, false, "a young superseded segment on a weak store")

	later := newClient(t, st, WithClock(func() time.Time { return time.Now().Add(2 * DefaultOrphanGrace) }))
	rep, err = later.SweepOrphans(ctx, "weak")
	require.NoError(t, err)
	require.Equal(t, 1, rep.Deleted, "%+v", rep)
	requireGone(t, st, young, true, "a superseded segment past the grace period")
}

// TestSweepKeepsBelowBreak: a segment below a break in its publisher's
// chain (a segment the store lost) is not judged an orphan, however old:
// announcements may still name it.
func TestSweepKeepsBelowBreak(t *testing.T) {
	ctx := testCtx(t)
	st := newMem(t)
	pub := newClient(t, st)
	var keys []string
	for i := range 3 {
		_, err := pub.Publish(ctx, "broken", fmt.Appendf(nil, "m%d", i))
		require.NoError(t, err)
		e, err := st.Get(ctx, newTopicKeys("broken").head(pub.pid))
		require.NoError(t, err)
		h, err := decodeHead("broken", e.Value)
		require.NoError(t, err)
		keys = append(keys, blobKey(h.Seg))
	}
	e, err := st.Get(ctx, keys[1])
	require.NoError(t, err)
	require.NoError(t, st.Delete(ctx, keys[1], e.Version)) // the store lost it

	later := newClient(t, st, WithClock(func() time.Time { return time.Now().Add(10 * DefaultOrphanGrace) }))
	rep, err := later.SweepOrphans(ctx, "broken")
	require.NoError(t, err)
	require.Equal(t, SweepReport{Blobs: rep.Blobs, Segments: 2, Reachable: 1, Kept: 1}, rep)
	requireGone(t, st, keys[0], false, "the segment below the break")
}

// crashingStore refuses head writes while crashed is set, as if the
// process died right after writing a segment.
type crashingStore struct {
	*memory.Store
	crashed atomic.Bool
}

func (s *crashingStore) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if s.crashed.Load() && strings.HasPrefix(key, "h/") {
		return 0, backend.ErrClosed
	}
	return s.Store.CompareAndPut(ctx, key, expect, value)
}

// TestSweepOrphanOfRealCrash: the publisher's own write path leaves the
// orphan (a chunked segment: larger than the store's value limit), the
// restarted publisher publishes the same seqs again, and the sweep deletes
// the orphan's root and every chunk of it, and nothing else.
func TestSweepOrphanOfRealCrash(t *testing.T) {
	ctx := testCtx(t)
	st := &crashingStore{Store: memory.NewSpace(memory.Options{MaxValueSize: 4096}).Open()}
	defer st.Close()
	id, err := GenerateIdentity()
	require.NoError(t, err)
	big := func(tag byte) []byte {
		p := make([]byte, 20000)
		_, _ = rand.Read(p) // incompressible: stored as a root and chunks
		p[0] = tag
		return p
	}
	count := func() int {
		n := 0
		require.NoError(t, st.List(ctx, "x/", func(keys []string) error { n += len(keys); return nil }))
		return n
	}
	pub := newClientAs(t, st, id, WithOrdering(PublisherOrder))
	_, err = pub.Publish(ctx, "crash", big('a'))
	require.NoError(t, err)
	before := count()

	st.crashed.Store(true)
	_, err = pub.Publish(ctx, "crash", big('b'))
	require.Error(t, err, "the publish whose head write failed")
	require.NoError(t, pub.Close(ctx))
	st.crashed.Store(false)
	written := count() - before
	require.Greater(t, written, 1, "the orphan is chunked")

	again := newClientAs(t, st, id, WithOrdering(PublisherOrder))
	_, err = again.Publish(ctx, "crash", big('c')) // the same seq, 2
	require.NoError(t, err)
	published := count()

	rep, err := newClient(t, st).SweepOrphans(ctx, "crash")
	require.NoError(t, err)
	require.Equal(t, SweepReport{Blobs: published, Segments: 3, Reachable: 2, Deleted: 1}, rep)
	require.Equal(t, published-written, count(), "the orphan's root and chunks, and only those, deleted")

	sub := newClient(t, st, WithOrdering(PublisherOrder))
	s, err := sub.Subscribe(ctx, "crash", FromStart(), WithoutPush())
	require.NoError(t, err)
	got := receive(t, ctx, sub, s, 2)
	require.Equal(t, []byte{'a', 'c'}, []byte{got[0].Payload[0], got[1].Payload[0]})
	require.Zero(t, sub.Stats().Gaps)
}
