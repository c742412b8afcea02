package core

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

func TestIdentitySaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "id.pem")
	id, created, err := LoadOrCreateIdentity(path)
	require.NoError(t, err)
	require.True(t, created)
	again, created, err := LoadOrCreateIdentity(path)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, id.PublicKey(), again.PublicKey())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	bad := filepath.Join(dir, "bad.pem")
	require.NoError(t, os.WriteFile(bad, []byte("hello"), 0o600))
	_, err = LoadIdentity(bad)
	require.ErrorIs(t, err, ErrBadIdentity)
	_, err = LoadIdentity(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = IdentityFromSeed([]byte("short"))
	require.ErrorIs(t, err, ErrBadIdentity)
}

func TestLoadOrCreateIdentityConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id.pem")
	const n = 16
	ids := make([]*Identity, n)
	var created atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id, c, err := LoadOrCreateIdentity(path)
			assert.NoError(t, err)
			ids[i] = id
			if c {
				created.Add(1)
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, created.Load(), "exactly one caller creates the identity")
	onDisk, err := LoadIdentity(path)
	require.NoError(t, err)
	for _, id := range ids {
		require.Equal(t, onDisk.PublicKey(), id.PublicKey(), "every caller uses the identity on disk")
	}
	left, err := filepath.Glob(path + ".*")
	require.NoError(t, err)
	require.Empty(t, left, "temporary files left behind")
}

func TestPublishBadInput(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t, newMem(t))
	_, err := c.Publish(ctx, "", []byte("x"))
	require.ErrorIs(t, err, ErrInvalidTopic)
	_, err = c.Publish(ctx, string([]byte{0xff}), []byte("x"))
	require.ErrorIs(t, err, ErrInvalidTopic)
	_, err = c.Publish(ctx, "t", make([]byte, MaxPayload+1))
	require.ErrorIs(t, err, ErrPayloadTooLarge)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Publish(cancelled, "t", []byte("x"))
	require.ErrorIs(t, err, context.Canceled)
	rs, err := c.PublishBatch(ctx, "t", nil)
	require.NoError(t, err)
	require.Empty(t, rs)

	require.NoError(t, c.Close(ctx))
	_, err = c.Publish(ctx, "t", []byte("x"))
	require.ErrorIs(t, err, ErrClientClosed)
	_, err = c.Subscribe(ctx, "t")
	require.ErrorIs(t, err, ErrClientClosed)
	require.ErrorIs(t, c.StartPolling(time.Second), ErrClientClosed)
	require.NoError(t, c.Close(ctx), "Close is idempotent")
}

func TestSequenceResumesAfterRestart(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	id, err := GenerateIdentity()
	require.NoError(t, err)
	first := newClientAs(t, store, id)
	for i := 1; i <= 3; i++ {
		r, err := first.Publish(ctx, "t", []byte("a"))
		require.NoError(t, err)
		require.EqualValues(t, i, r.Seq)
	}
	require.NoError(t, first.Close(ctx))
	second := newClientAs(t, store, id)
	r, err := second.Publish(ctx, "t", []byte("b"))
	require.NoError(t, err)
	require.EqualValues(t, 4, r.Seq)
}

func TestSameIdentityTwoClients(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	id, err := GenerateIdentity()
	require.NoError(t, err)
	a, b := newClientAs(t, store, id), newClientAs(t, store, id)
	_, err = a.Publish(ctx, "t", []byte("a"))
	require.NoError(t, err)
	// b loaded nothing yet: it resumes after a's message.
	r, err := b.Publish(ctx, "t", []byte("b"))
	require.NoError(t, err)
	require.EqualValues(t, 2, r.Seq)
	// Now a's view of its head is stale: a second publish through it must
	// be refused, not fork the log.
	_, err = a.Publish(ctx, "t", []byte("a2"))
	require.ErrorIs(t, err, ErrConcurrentPublisher)
}

func TestEventsAndStats(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	var mu sync.Mutex
	kinds := map[EventKind]int{}
	handler := WithEventHandler(func(ev Event) {
		mu.Lock()
		kinds[ev.Kind]++
		mu.Unlock()
	})
	c := newClient(t, store, handler)
	sub, err := c.Subscribe(ctx, "t", WithoutPush(), FromStart())
	require.NoError(t, err)
	_, err = c.Publish(ctx, "t", []byte("one"))
	require.NoError(t, err)
	_, err = c.PublishBatch(ctx, "t", [][]byte{[]byte("two"), []byte("three")})
	require.NoError(t, err)
	require.NoError(t, c.StartPolling(5*time.Millisecond))
	require.ErrorIs(t, c.StartPolling(time.Millisecond), ErrPollingActive)
	got := []string{}
	for len(got) < 3 {
		select {
		case m := <-sub.Messages():
			got = append(got, string(m.Payload))
		case <-ctx.Done():
			t.Fatal("background polling delivered nothing")
		}
	}
	require.Equal(t, []string{"one", "two", "three"}, got)
	st := c.Stats()
	require.True(t, st.Polling)
	require.EqualValues(t, 3, st.Published)
	require.EqualValues(t, 3, st.Received)
	require.Equal(t, 1, st.ActiveSubscriptions)
	c.StopPolling()
	require.False(t, c.Stats().Polling)
	require.NoError(t, c.Renew(ctx, "t"))
	require.NoError(t, c.Unsubscribe(ctx, "t"))
	require.ErrorIs(t, c.Unsubscribe(ctx, "t"), ErrNotSubscribed)
	_, err = c.Poll(ctx, "t")
	require.ErrorIs(t, err, ErrNotSubscribed)

	mu.Lock()
	defer mu.Unlock()
	for _, k := range []EventKind{EventPublished, EventBatchPublished, EventSubscribed, EventMessage,
		EventPollUpdate, EventPollingStarted, EventPollingStopped, EventRenewed, EventUnsubscribed} {
		assert.Positive(t, kinds[k], "no %s event", k)
	}
	assert.Equal(t, 3, kinds[EventMessage])
}

func TestMessageTTL(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store)
	_, err := pub.Publish(ctx, "t", []byte("short"), WithTTL(time.Minute))
	require.NoError(t, err)
	_, err = pub.Publish(ctx, "t", []byte("long"), WithTTL(time.Hour))
	require.NoError(t, err)
	later := func() time.Time { return time.Now().Add(2 * time.Minute) }
	sc := newClient(t, store, WithClock(later))
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	msgs := receive(t, ctx, sc, sub, 1)
	require.Equal(t, "long", string(msgs[0].Payload))
	require.EqualValues(t, 1, sc.Stats().Expired)
	require.Zero(t, sc.Stats().Gaps, "an expired message is not a gap")
}

// flaky fails every call with ErrUnavailable while down is set.
type flaky struct {
	backend.Store
	down atomic.Bool
}

func (f *flaky) Get(ctx context.Context, key string) (backend.Entry, error) {
	if f.down.Load() {
		return backend.Entry{}, fmt.Errorf("%w: down", backend.ErrUnavailable)
	}
	return f.Store.Get(ctx, key)
}

func (f *flaky) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if f.down.Load() {
		return 0, fmt.Errorf("%w: down", backend.ErrUnavailable)
	}
	return f.Store.CompareAndPut(ctx, key, expect, value)
}

func TestPublishSurvivesOutage(t *testing.T) {
	ctx := testCtx(t)
	store := &flaky{Store: newMem(t)}
	pub := newClient(t, store)
	_, err := pub.Publish(ctx, "t", []byte("before"))
	require.NoError(t, err)
	store.down.Store(true)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = pub.Publish(short, "t", []byte("during"))
	var pe *PublishError
	require.ErrorAs(t, err, &pe)
	require.True(t, pe.StillQueued)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	store.down.Store(false)
	// The queued message goes out once the store is back; nothing is lost
	// and nothing doubles.
	_, err = pub.Publish(ctx, "t", []byte("after"))
	require.NoError(t, err)
	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	msgs := receive(t, ctx, sc, sub, 3)
	var got []string
	for _, m := range msgs {
		got = append(got, string(m.Payload))
	}
	require.Equal(t, []string{"before", "during", "after"}, got)
}

func TestGapReportedForMissingSegment(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store)
	for _, p := range []string{"a", "b", "c"} {
		_, err := pub.Publish(ctx, "t", []byte(p))
		require.NoError(t, err)
	}
	// Lose the middle message's segment behind the protocol's back.
	tk := newTopicKeys("t")
	st, _, err := pub.eng.readCoord(ctx, tk)
	require.NoError(t, err)
	key := blobKey(st.Window[1].Seg)
	e, err := store.Get(ctx, key)
	require.NoError(t, err)
	require.NoError(t, store.Delete(ctx, key, e.Version))

	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	msgs := receive(t, ctx, sc, sub, 2)
	require.Equal(t, "a", string(msgs[0].Payload))
	require.Equal(t, "c", string(msgs[1].Payload))
	g := <-sub.Gaps()
	require.Equal(t, Gap{Topic: "t", Publisher: pub.Identity().ID(), From: 2, To: 2, Reason: "segment missing from the store"}, g)
	require.EqualValues(t, 1, sc.Stats().Gaps)
}

func TestHubGroupCommitsAcrossClients(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	hub, err := NewHub(store)
	require.NoError(t, err)
	const n, per = 20, 25
	pubs := make([]*Client, n)
	for i := range pubs {
		pubs[i] = newClient(t, store, WithHub(hub))
	}
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Go(func() {
			for range per {
				_, err := p.Publish(ctx, "t", []byte("m"))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	for _, p := range pubs {
		require.NoError(t, p.Close(ctx))
	}
	hub.Close()
	sc := newClient(t, store)
	info, err := sc.Info(ctx, "t")
	require.NoError(t, err)
	require.EqualValues(t, n*per, info.Messages)
	require.Len(t, info.Publishers, n)
	t.Logf("%d messages from %d clients in %d announcements", n*per, n, info.Announcements)
	_, err = New(newMem(t), pubs[0].Identity(), WithHub(hub))
	require.Error(t, err, "a hub is bound to its store")
}

func TestUnsubscribeOnClose(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	c := newClient(t, store)
	observer := newClient(t, store)
	sub, err := c.Subscribe(ctx, "t")
	require.NoError(t, err)
	info, err := observer.Info(ctx, "t")
	require.NoError(t, err)
	require.Len(t, info.Subscribers, 1)
	require.NoError(t, c.StartPolling(time.Millisecond))
	require.NoError(t, c.Close(ctx))
	_, open := <-sub.Messages()
	require.False(t, open)
	info, err = observer.Info(ctx, "t")
	require.NoError(t, err)
	require.Empty(t, info.Subscribers)
	require.False(t, c.Polling())
}

func TestLargePayloadChunked(t *testing.T) {
	ctx := testCtx(t)
	store := newMem(t)
	pub := newClient(t, store)
	big := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB, the maximum
	_, err := pub.Publish(ctx, "t", big)
	require.NoError(t, err)
	sc := newClient(t, store)
	sub, err := sc.Subscribe(ctx, "t", FromStart(), WithoutPush())
	require.NoError(t, err)
	msgs := receive(t, ctx, sc, sub, 1)
	require.True(t, bytes.Equal(big, msgs[0].Payload))
}
