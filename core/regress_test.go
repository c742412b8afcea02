package core

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

// wipeable is a store that can lose everything at once, as Redis does when
// it restarts without persistence (versions start again from 1).
type wipeable struct {
	mu    sync.Mutex
	inner *memory.Store
}

func newWipeable(t *testing.T) *wipeable {
	w := &wipeable{inner: memory.New()}
	t.Cleanup(func() { _ = w.cur().Close() })
	return w
}

func (w *wipeable) cur() *memory.Store {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inner
}

func (w *wipeable) wipe() {
	w.mu.Lock()
	old := w.inner
	w.inner = memory.New()
	w.mu.Unlock()
	_ = old.Close()
}

func (w *wipeable) Capabilities() backend.Capabilities { return w.cur().Capabilities() }
func (w *wipeable) Get(ctx context.Context, key string) (backend.Entry, error) {
	return w.cur().Get(ctx, key)
}
func (w *wipeable) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	return w.cur().CompareAndPut(ctx, key, expect, value)
}
func (w *wipeable) Close() error { return nil }

// Redis restarted without persistence (issue 12): the publisher used to
// start again at seq 1 and a live subscriber silently never showed the new
// messages. The publisher reports the regression and never reuses a seq it
// acknowledged; the live subscriber reports it and delivers what follows.
func TestStoreWipedUnderLiveClients(t *testing.T) {
	ctx := testCtx(t)
	store := newWipeable(t)
	var mu sync.Mutex
	var events []Event
	record := WithEventHandler(func(e Event) {
		if errors.Is(e.Err, ErrLogRegressed) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}
	})
	pub := newClient(t, store, record)
	sc := newClient(t, store, record)
	sub, err := sc.Subscribe(ctx, "t", WithoutPush())
	require.NoError(t, err)
	publishN(t, ctx, pub, "t", "before", 5, 1)
	require.Equal(t, []string{"before-1", "before-2", "before-3", "before-4", "before-5"}, payloads(receive(t, ctx, sc, sub, 5)))

	store.wipe()
	// The subscriber record is gone with everything else; re-subscribe
	// would write it, but the live subscription must cope on its own.
	_, err = pub.Publish(ctx, "t", []byte("first after"))
	if err != nil {
		require.ErrorIs(t, err, ErrLogRegressed, "the error says what happened")
		require.Contains(t, err.Error(), "lost data")
		_, err = pub.Publish(ctx, "t", []byte("first after"))
	}
	require.NoError(t, err)
	r, err := pub.Publish(ctx, "t", []byte("second after"))
	require.NoError(t, err)
	require.EqualValues(t, 7, r.Seq, "no acknowledged seq is reused")

	got := receive(t, ctx, sc, sub, 2)
	require.Equal(t, []string{"first after", "second after"}, payloads(got))
	require.EqualValues(t, []uint64{6, 7}, []uint64{got[0].Seq, got[1].Seq})
	mu.Lock()
	defer mu.Unlock()
	kinds := map[EventKind]bool{}
	for _, e := range events {
		kinds[e.Kind] = true
	}
	require.True(t, kinds[EventPublishError], "the publisher reports the regression: %v", events)
	require.True(t, kinds[EventPollError], "the subscriber reports the regression: %v", events)
}

// A subscriber that resumes from a cursor on a wiped store reports it and
// delivers what the store holds.
func TestDurableResumeOnWipedStore(t *testing.T) {
	ctx := testCtx(t)
	store := newWipeable(t)
	regressed := make(chan Event, 16)
	pub := newClient(t, store)
	id, err := GenerateIdentity()
	require.NoError(t, err)
	first := newClientAs(t, store, id)
	sub, err := first.Subscribe(ctx, "t", FromStart(), Durable("d"), WithoutPush())
	require.NoError(t, err)
	publishN(t, ctx, pub, "t", "m", 5, 1)
	got := receive(t, ctx, first, sub, 5)
	require.NoError(t, sub.AckSync(ctx, got[4]))
	cur := got[4].Cursor
	require.NoError(t, first.Close(ctx))

	store.wipe()
	_, err = pub.Publish(ctx, "t", []byte("x"))
	if err != nil {
		require.ErrorIs(t, err, ErrLogRegressed)
	}
	publishN(t, ctx, pub, "t", "n", 2, 1)
	second := newClientAs(t, store, id, WithEventHandler(func(e Event) {
		if errors.Is(e.Err, ErrLogRegressed) {
			regressed <- e
		}
	}))
	// The durable record went with the wipe: resume from the saved cursor.
	sub2, err := second.Subscribe(ctx, "t", FromCursor(cur), WithoutPush())
	require.NoError(t, err)
	msgs := receive(t, ctx, second, sub2, 2)
	require.Equal(t, []string{"n-1", "n-2"}, payloads(msgs[len(msgs)-2:]))
	require.Greater(t, msgs[0].Seq, uint64(5), "no seq acknowledged before the wipe is reused")
	select {
	case e := <-regressed:
		require.Equal(t, EventSubscribeError, e.Kind)
	default:
		t.Fatal("the regression was not reported")
	}
}
