package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// breakable fails chosen calls: CompareAndPut on keys with prefix failPrefix
// returns failErr while failing is set (after the write is applied when
// afterApply is set). It hides the inner store's optional interfaces.
type breakable struct {
	backend.Store
	failPrefix string
	failErr    error
	afterApply bool
	failing    atomic.Bool
	failed     atomic.Int32
}

func (b *breakable) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if !b.failing.Load() || !strings.HasPrefix(key, b.failPrefix) {
		return b.Store.CompareAndPut(ctx, key, expect, value)
	}
	b.failed.Add(1)
	if b.afterApply {
		if _, err := b.Store.CompareAndPut(ctx, key, expect, value); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("%w: injected on %q", b.failErr, key)
}

// payloads returns the payloads of msgs as strings.
func payloads(msgs []*Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Payload))
	}
	return out
}

// A permanent error fails its batch only: the next publish reloads the head
// and proceeds (issue 7: the topic publisher used to be wedged with "client
// closed" after ErrConcurrentPublisher).
func TestPublishAfterConcurrentPublisherError(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	id, err := GenerateIdentity()
	require.NoError(t, err)
	a, b := newClientAs(t, store, id), newClientAs(t, store, id)
	_, err = a.Publish(ctx, "t", []byte("a1"))
	require.NoError(t, err)
	_, err = b.Publish(ctx, "t", []byte("b2"))
	require.NoError(t, err)
	_, err = a.Publish(ctx, "t", []byte("refused"))
	require.ErrorIs(t, err, ErrConcurrentPublisher)
	require.NotErrorIs(t, err, ErrOutcomeUnknown, "a refused head write is a known outcome")
	r, err := a.Publish(ctx, "t", []byte("a3"))
	require.NoError(t, err, "the publisher reloads its head after a permanent error")
	require.EqualValues(t, 3, r.Seq)

	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	require.Equal(t, []string{"a1", "b2", "a3"}, payloads(receive(t, ctx, sc, sub, 3)))
	require.Zero(t, sc.Stats().Gaps)
}

// Any permanent store error fails one batch, not the topic publisher.
func TestPublishAfterPermanentStoreError(t *testing.T) {
	ctx := testCtx(t)
	store := &breakable{Store: newMem(t), failPrefix: "x/", failErr: backend.ErrCorrupt}
	pub := newClient(t, store)
	_, err := pub.Publish(ctx, "t", []byte("one"))
	require.NoError(t, err)
	store.failing.Store(true)
	_, err = pub.Publish(ctx, "t", []byte("lost"))
	require.ErrorIs(t, err, backend.ErrCorrupt)
	require.NotErrorIs(t, err, ErrOutcomeUnknown, "nothing was written: the outcome is known")
	var pe *PublishError
	require.ErrorAs(t, err, &pe)
	require.Contains(t, pe.Error(), "not published")
	store.failing.Store(false)
	r, err := pub.Publish(ctx, "t", []byte("two"))
	require.NoError(t, err)
	require.EqualValues(t, 2, r.Seq, "the failed batch's seq is reused: it was never written")

	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	require.Equal(t, []string{"one", "two"}, payloads(receive(t, ctx, sc, sub, 2)))
}

// A batch whose head record was written before a permanent failure has an
// unknown outcome (it will be delivered once anyone announces it): the error
// says so, and a retry with the same publisher and seq does not duplicate.
func TestPublishOutcomeUnknownAfterHeadWritten(t *testing.T) {
	ctx := testCtx(t)
	store := &breakable{Store: newMem(t), failPrefix: "c/", failErr: backend.ErrClosed}
	pub := newClient(t, store)
	_, err := pub.Publish(ctx, "t", []byte("one"))
	require.NoError(t, err)
	store.failing.Store(true)
	_, err = pub.Publish(ctx, "t", []byte("two"))
	require.Error(t, err)
	require.ErrorIs(t, err, ErrOutcomeUnknown)
	var pe *PublishError
	require.ErrorAs(t, err, &pe)
	require.Contains(t, pe.Error(), "outcome unknown")
	require.EqualValues(t, 2, pe.FirstSeq)
	store.failing.Store(false)

	rs, err := pub.Retry(ctx, pe)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.EqualValues(t, 2, rs[0].Seq, "the retry keeps the seq")
	// Retrying again is harmless too.
	rs, err = pub.Retry(ctx, pe)
	require.NoError(t, err)
	require.EqualValues(t, 2, rs[0].Seq)
	r, err := pub.Publish(ctx, "t", []byte("three"))
	require.NoError(t, err)
	require.EqualValues(t, 3, r.Seq)

	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	require.Equal(t, []string{"one", "two", "three"}, payloads(receive(t, ctx, sc, sub, 3)))
	quiet, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	n, _ := sc.Poll(quiet, "t")
	require.Zero(t, n, "no duplicate")
	select {
	case m := <-sub.Messages():
		t.Fatalf("duplicate delivery of seq %d", m.Seq)
	default:
	}
}

// Retry of a batch that never reached the log publishes it (once).
func TestRetryUnwrittenBatch(t *testing.T) {
	ctx := testCtx(t)
	store := &breakable{Store: newMem(t), failPrefix: "h/", failErr: backend.ErrTooLarge}
	pub := newClient(t, store)
	store.failing.Store(true)
	_, err := pub.Publish(ctx, "t", []byte("one"))
	var pe *PublishError
	require.ErrorAs(t, err, &pe)
	store.failing.Store(false)
	rs, err := pub.Retry(ctx, pe)
	require.NoError(t, err)
	require.EqualValues(t, 1, rs[0].Seq)
	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	require.Equal(t, []string{"one"}, payloads(receive(t, ctx, sc, sub, 1)))
}

// lostHeads is a weak store on which a head record's compare-and-put that
// lost a race is accepted anyway and replaces the winner (both writers are
// told they succeeded, as measured on libp2p). Reads of a head record
// written once wait until it has been written twice, so both writers read
// back after both writes.
type lostHeads struct {
	backend.Store
	writes atomic.Int32
	both   chan struct{}
	once   sync.Once
}

func (l *lostHeads) Capabilities() backend.Capabilities {
	c := l.Store.Capabilities()
	c.Consistency = backend.Eventual
	return c
}

func (l *lostHeads) Get(ctx context.Context, key string) (backend.Entry, error) {
	if strings.HasPrefix(key, "h/") && l.writes.Load() == 1 {
		select {
		case <-l.both:
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
			return backend.Entry{}, ctx.Err()
		}
	}
	return l.Store.Get(ctx, key)
}

func (l *lostHeads) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	v, err := l.Store.CompareAndPut(ctx, key, expect, value)
	if !strings.HasPrefix(key, "h/") {
		return v, err
	}
	if cur, ok := backend.CurrentEntry(err); ok && errors.Is(err, backend.ErrConflict) {
		v, err = l.Store.CompareAndPut(ctx, key, cur.Version, value)
	}
	if err == nil && l.writes.Add(1) == 2 {
		l.once.Do(func() { close(l.both) })
	}
	return v, err
}

// Two clients with one identity on a weak store both wrote seq 1 and were
// both acknowledged, while only one message exists (issue 7). The read-back
// compares content: one of them learns ErrConcurrentPublisher, and no
// message is acknowledged that is not the one stored.
func TestSameIdentityWeakStoreDetected(t *testing.T) {
	ctx := testCtx(t)
	store := &lostHeads{Store: newMem(t), both: make(chan struct{})}
	id, err := GenerateIdentity()
	require.NoError(t, err)
	a, b := newClientAs(t, store, id), newClientAs(t, store, id)
	for _, c := range []*Client{a, b} { // both load before either writes
		p, err := c.publisher("t")
		require.NoError(t, err)
		require.NoError(t, p.load(ctx))
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []*Client{a, b} {
		wg.Go(func() { _, errs[i] = c.Publish(ctx, "t", []byte{'a' + byte(i)}) })
	}
	wg.Wait()
	acked := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, acked, "both publishers were acknowledged for seq 1")
			acked = i
		} else {
			require.ErrorIs(t, err, ErrConcurrentPublisher)
		}
	}
	require.NotEqual(t, -1, acked, "neither was acknowledged")

	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	got := receive(t, ctx, sc, sub, 1)
	require.Equal(t, []byte{'a' + byte(acked)}, got[0].Payload, "the acknowledged message is the stored one")
}

// A publisher that crashed after writing its head record but before
// announcing it left its messages invisible until it published again
// (issue 7). A subscriber announces what the signed head shows: at
// Subscribe, and by its periodic audit while subscribed.
func TestUnannouncedHeadAnnouncedBySubscriber(t *testing.T) {
	ctx := testCtx(t)
	mem := newMem(t)
	crashy := &breakable{Store: mem, failPrefix: "c/", failErr: backend.ErrClosed}
	pub := newClient(t, crashy)
	live := newClient(t, mem, WithHeadAudit(50*time.Millisecond))
	liveSub, err := live.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	_, err = pub.Publish(ctx, "t", []byte("one"))
	require.NoError(t, err)
	require.Equal(t, []string{"one"}, payloads(receive(t, ctx, live, liveSub, 1)))
	crashy.failing.Store(true) // the "crash": the announcement never lands
	_, err = pub.Publish(ctx, "t", []byte("two"))
	require.ErrorIs(t, err, ErrOutcomeUnknown)

	// A new subscriber announces it at once.
	sc := newClient(t, mem)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	require.Equal(t, []string{"one", "two"}, payloads(receive(t, ctx, sc, sub, 2)))
	// The subscriber that was already there gets it too, in the same order.
	require.Equal(t, []string{"two"}, payloads(receive(t, ctx, live, liveSub, 1)))
}

// The live subscriber's audit alone finds the unannounced head.
func TestUnannouncedHeadFoundByAudit(t *testing.T) {
	ctx := testCtx(t)
	mem := newMem(t)
	crashy := &breakable{Store: mem, failPrefix: "c/", failErr: backend.ErrClosed}
	pub := newClient(t, crashy)
	live := newClient(t, mem, WithHeadAudit(50*time.Millisecond))
	liveSub, err := live.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	_, err = pub.Publish(ctx, "t", []byte("one"))
	require.NoError(t, err)
	require.Equal(t, []string{"one"}, payloads(receive(t, ctx, live, liveSub, 1)))
	crashy.failing.Store(true)
	_, err = pub.Publish(ctx, "t", []byte("two"))
	require.Error(t, err)
	require.Equal(t, []string{"two"}, payloads(receive(t, ctx, live, liveSub, 1)))
}

// When the second writer's record replaces the first one only after the
// first read it back (so both were acknowledged), the first writer's next
// verification reports ErrConcurrentPublisher.
func TestSameIdentityWeakStoreReplacedLater(t *testing.T) {
	ctx := testCtx(t)
	store := &lostHeads{Store: newMem(t), both: make(chan struct{})}
	close(store.both) // no waiting: a reads back before b writes
	store.once.Do(func() {})
	id, err := GenerateIdentity()
	require.NoError(t, err)
	reported := make(chan error, 16)
	a := newClientAs(t, store, id, WithVerifyInterval(20*time.Millisecond), WithEventHandler(func(e Event) {
		if errors.Is(e.Err, ErrConcurrentPublisher) {
			reported <- e.Err
		}
	}))
	b := newClientAs(t, store, id)
	for _, c := range []*Client{a, b} {
		p, err := c.publisher("t")
		require.NoError(t, err)
		require.NoError(t, p.load(ctx))
	}
	_, err = a.Publish(ctx, "t", []byte("a"))
	require.NoError(t, err)
	_, err = b.Publish(ctx, "t", []byte("b"))
	require.NoError(t, err)
	select {
	case err := <-reported:
		require.Contains(t, err.Error(), "was replaced")
	case <-ctx.Done():
		t.Fatal("the replaced head was not reported")
	}
}

// Retry of a still-queued publish waits for it; Retry of something else is
// refused.
func TestRetryStillQueuedAndForeign(t *testing.T) {
	ctx := testCtx(t)
	store := &flaky{Store: newMem(t)}
	pub := newClient(t, store)
	_, err := pub.Publish(ctx, "t", []byte("before"))
	require.NoError(t, err)
	store.down.Store(true)
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	_, err = pub.Publish(short, "t", []byte("queued"))
	var pe *PublishError
	require.ErrorAs(t, err, &pe)
	require.True(t, pe.StillQueued)
	require.NotErrorIs(t, err, ErrOutcomeUnknown)
	_, err = newClient(t, store).Retry(ctx, err)
	require.Error(t, err, "another client's error")
	_, err = pub.Retry(ctx, errors.New("x"))
	require.Error(t, err)
	store.down.Store(false)
	rs, err := pub.Retry(ctx, pe)
	require.NoError(t, err)
	require.EqualValues(t, 2, rs[0].Seq)
}
