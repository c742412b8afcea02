package core

// The one-step publish (flushBatched): taken where the store batches,
// left for the step-by-step path where it cannot be, and exactly once when
// its outcome is unknown.

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

// batchCounter is a memory store that counts batches and single writes of
// head records, and can make the next batches report an unknown outcome
// after they landed.
type batchCounter struct {
	*memory.Store
	mu         sync.Mutex
	batches    int
	headPuts   int
	lostAnswer int    // batches still to land but report an ambiguous error
	onLost     func() // called when an answer is lost (nil: nothing)
}

var errAnswerLost = errors.New("test: connection reset after the request was sent")

func (s *batchCounter) UpdateWith(ctx context.Context, puts []backend.Put, key string, fn backend.UpdateFunc) (backend.Version, []backend.Version, error) {
	v, vers, err := s.Store.UpdateWith(ctx, puts, key, fn)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	if err == nil && s.lostAnswer > 0 {
		s.lostAnswer--
		if s.onLost != nil {
			s.onLost()
		}
		return 0, nil, errAnswerLost
	}
	return v, vers, err
}

func (s *batchCounter) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if strings.HasPrefix(key, "h/") {
		s.mu.Lock()
		s.headPuts++
		s.mu.Unlock()
	}
	return s.Store.CompareAndPut(ctx, key, expect, value)
}

func (s *batchCounter) counts() (batches, headPuts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batches, s.headPuts
}

// readAll subscribes a fresh client from the start and returns the
// payloads of n messages, failing on more.
func readAll(t *testing.T, ctx context.Context, store backend.Store, topic string, n int, opts ...Option) []string {
	t.Helper()
	c := newClient(t, store, opts...)
	sub, err := c.Subscribe(ctx, topic, FromStart(), WithoutPush())
	require.NoError(t, err)
	var got []string
	for _, m := range receive(t, ctx, c, sub, n) {
		got = append(got, string(m.Payload))
	}
	_, _ = c.Poll(ctx, topic)
	require.Empty(t, sub.Messages(), "more messages than published")
	return got
}

func TestPublishOneStep(t *testing.T) {
	for _, order := range []Ordering{TopicOrder, PublisherOrder} {
		t.Run(order.String(), func(t *testing.T) {
			ctx := testCtx(t)
			store := &batchCounter{Store: newMem(t)}
			c := newClient(t, store, WithOrdering(order))
			var want []string
			for i := range 20 {
				p := strings.Repeat("x", i)
				_, err := c.Publish(ctx, "t", []byte(p))
				require.NoError(t, err)
				want = append(want, p)
			}
			batches, headPuts := store.counts()
			require.Equal(t, 20, batches, "one batch per publish")
			require.Zero(t, headPuts, "no head record written on its own")
			require.Equal(t, want, readAll(t, ctx, store, "t", 20, WithOrdering(order)))
		})
	}
}

// TestPublishOneStepTooBig: a segment that needs chunking takes the
// step-by-step path, and arrives.
func TestPublishOneStepTooBig(t *testing.T) {
	ctx := testCtx(t)
	store := &batchCounter{Store: memory.NewSpace(memory.Options{MaxValueSize: 1000}).Open()}
	t.Cleanup(func() { _ = store.Close() })
	c := newClient(t, store, WithOrdering(TopicOrder))
	big := string(randomBytes(t, 4000)) // incompressible: chunked
	_, err := c.Publish(ctx, "t", []byte(big))
	require.NoError(t, err)
	_, err = c.Publish(ctx, "t", []byte("small"))
	require.NoError(t, err)
	batches, headPuts := store.counts()
	require.Equal(t, 1, batches, "the small message in one step")
	require.Equal(t, 1, headPuts, "the big one step by step")
	require.Equal(t, []string{big, "small"}, readAll(t, ctx, store, "t", 2))
}

// TestPublishOneStepLostAnswer: a batch that landed but whose answer was
// lost is retried step by step, which finds its own records: acknowledged,
// stored once, delivered once.
func TestPublishOneStepLostAnswer(t *testing.T) {
	ctx := testCtx(t)
	store := &batchCounter{Store: newMem(t), lostAnswer: 1}
	c := newClient(t, store, WithOrdering(TopicOrder))
	_, err := c.Publish(ctx, "t", []byte("once"))
	require.NoError(t, err, "the retry finds the landed batch")
	_, err = c.Publish(ctx, "t", []byte("twice"))
	require.NoError(t, err)
	require.Equal(t, []string{"once", "twice"}, readAll(t, ctx, store, "t", 2))
	require.EqualValues(t, 1, c.Stats().Failures, "one failed attempt, then the retry")
}

// TestRetryKeepsBase: a batch whose one-step write landed but whose answer
// was lost is retried with the same retention floor (fixed at its first
// encoding), although the clock moved past MaxAge meanwhile: the retry
// writes the same segment and head record, so it finds the landed attempt
// instead of taking it for another writer's.
func TestRetryKeepsBase(t *testing.T) {
	ctx := testCtx(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	store := &batchCounter{Store: newMem(t), onLost: func() { mu.Lock(); now = now.Add(2 * time.Minute); mu.Unlock() }}
	c := newClient(t, store, WithOrdering(TopicOrder), WithClock(clock), WithRetention(Retention{MaxAge: time.Minute}))
	_, err := c.Publish(ctx, "t", []byte("one"))
	require.NoError(t, err)
	store.mu.Lock()
	store.lostAnswer = 1
	store.mu.Unlock()
	r, err := c.Publish(ctx, "t", []byte("two"))
	require.NoError(t, err, "the retry finds the landed batch")
	require.EqualValues(t, 2, r.Seq)
	e, err := store.Get(ctx, newTopicKeys("t").head(c.Identity().ID()))
	require.NoError(t, err)
	h, err := decodeHead("t", e.Value)
	require.NoError(t, err)
	require.EqualValues(t, 1, h.Base, "the base of the first attempt")
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// TestMergedBatchConflict: announcements merged into one step with their
// records, where one request's record conflicts: that request alone fails
// (with the conflict), the other lands with its records' versions.
func TestMergedBatchConflict(t *testing.T) {
	store := newMem(t)
	c := newClient(t, store, WithOrdering(TopicOrder))
	tk := newTopicKeys("t")
	taken, err := store.CompareAndPut(testCtx(t), "taken", 0, []byte("someone else's"))
	require.NoError(t, err)
	good := &annRequest{done: make(chan annResult, 1), op: coordOp{
		anns:  []announcement{{Pub: PublisherID{1}, Seg: Ref{1}, To: 1}},
		batch: &putBatch{puts: []backend.Put{{Key: "good/a", Value: []byte("a")}, {Key: "good/b", Value: []byte("b")}}},
	}}
	bad := &annRequest{done: make(chan annResult, 1), op: coordOp{
		anns:  []announcement{{Pub: PublisherID{2}, Seg: Ref{2}, To: 1}},
		batch: &putBatch{puts: []backend.Put{{Key: "taken", Expect: 0, Value: []byte("mine")}}},
	}}
	a := &announcer{e: c.eng, tk: tk}
	a.mergeAndAnnounce(testCtx(t), []*annRequest{good, bad})

	r := <-good.done
	require.NoError(t, r.err)
	require.Len(t, good.op.batch.vers, 2)
	for i, k := range []string{"good/a", "good/b"} {
		e, err := store.Get(testCtx(t), k)
		require.NoError(t, err)
		require.Equal(t, good.op.batch.vers[i], e.Version, k)
	}
	r = <-bad.done
	require.ErrorIs(t, r.err, backend.ErrConflict)
	e, err := store.Get(testCtx(t), "taken")
	require.NoError(t, err)
	require.Equal(t, taken, e.Version, "the conflicting record is untouched")
	st, _, err := c.eng.readCoord(testCtx(t), tk)
	require.NoError(t, err)
	require.Contains(t, st.hot, PublisherID{1}, "the good announcement landed")
	require.NotContains(t, st.hot, PublisherID{2}, "the failed one did not")
}

// rerunBatcher is a memory store whose UpdateWith behaves like one that
// runs the update function away from the data under contention (Redis, a
// remote handle of a shared bolt file): it finds the key moved and runs
// the function again, up to reruns times, before writing.
type rerunBatcher struct {
	*memory.Store
	reruns int
	mu     sync.Mutex
	most   int // the most runs of fn seen in one UpdateWith
}

func (s *rerunBatcher) UpdateWith(ctx context.Context, puts []backend.Put, key string, fn backend.UpdateFunc) (backend.Version, []backend.Version, error) {
	runs := 0
	defer func() {
		s.mu.Lock()
		s.most = max(s.most, runs)
		s.mu.Unlock()
	}()
	cur, err := s.Get(ctx, key)
	if errors.Is(err, backend.ErrNotFound) {
		cur, err = backend.Entry{}, nil
	}
	if err != nil {
		return 0, nil, err
	}
	for ; runs < s.reruns; runs++ {
		if _, err := fn(cur); err != nil && !errors.Is(err, backend.ErrSkipUpdate) {
			runs++
			return 0, nil, err // the function's answer on an entry read from the store
		}
	}
	return s.Store.UpdateWith(ctx, puts, key, func(e backend.Entry) ([]byte, error) { runs++; return fn(e) })
}

// TestContendedBatchFallsBack: a batched coordinator update that keeps
// finding the coordinator moved stops after maxBatchRuns runs and the
// publish takes the step-by-step path (rerunning the whole batch lost to
// it: Redis, 100 separate publishers in topic order); every message is
// delivered once.
func TestContendedBatchFallsBack(t *testing.T) {
	ctx := testCtx(t)
	store := &rerunBatcher{Store: newMem(t), reruns: 10}
	c := newClient(t, store, WithOrdering(TopicOrder))
	var want []string
	for i := range 5 {
		p := strings.Repeat("y", i+1)
		_, err := c.Publish(ctx, "t", []byte(p))
		require.NoError(t, err)
		want = append(want, p)
	}
	store.mu.Lock()
	most := store.most
	store.mu.Unlock()
	require.Equal(t, maxBatchRuns+1, most, "the update refuses its run after maxBatchRuns")
	require.Equal(t, want, readAll(t, ctx, store, "t", 5, WithOrdering(TopicOrder)))
}
