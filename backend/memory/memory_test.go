package memory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDefaults(t *testing.T) {
	st := memory.New()
	defer st.Close()
	assert.Equal(t, backend.Capabilities{
		Consistency:  backend.Linearizable,
		MaxKeySize:   memory.DefaultMaxKeySize,
		MaxValueSize: memory.DefaultMaxValueSize,
		Persistent:   false,
	}, st.Capabilities())
}

func TestVersionsAreGlobalPerSpace(t *testing.T) {
	ctx := testCtx(t)
	sp := memory.NewSpace(memory.Options{})
	a, b := sp.Open(), sp.Open()
	defer a.Close()
	defer b.Close()
	va, err := a.CompareAndPut(ctx, "a", 0, []byte("x"))
	require.NoError(t, err)
	vb, err := b.CompareAndPut(ctx, "b", 0, []byte("y"))
	require.NoError(t, err)
	assert.Equal(t, va+1, vb, "one counter for every key and handle of a Space")

	// A separate Space is a separate namespace with its own counter.
	other := memory.New()
	defer other.Close()
	_, err = other.Get(ctx, "a")
	assert.ErrorIs(t, err, backend.ErrNotFound)
}

func TestReopenKeepsSpace(t *testing.T) {
	ctx := testCtx(t)
	sp := memory.NewSpace(memory.Options{})
	a := sp.Open()
	v1, err := a.CompareAndPut(ctx, "k", 0, []byte("x"))
	require.NoError(t, err)
	require.NoError(t, a.Close())
	assert.Same(t, sp, a.Space())

	b := sp.Open()
	defer b.Close()
	e, err := b.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("x"), Version: v1}, e)
}

func TestDeleteDoesNotReuseVersions(t *testing.T) {
	ctx := testCtx(t)
	st := memory.New()
	defer st.Close()
	v1, err := st.CompareAndPut(ctx, "k", 0, []byte("x"))
	require.NoError(t, err)
	require.NoError(t, st.Delete(ctx, "k", v1))
	v2, err := st.CompareAndPut(ctx, "k", 0, []byte("x"))
	require.NoError(t, err)
	assert.Greater(t, v2, v1)
}

func TestConflictCarriesCopy(t *testing.T) {
	ctx := testCtx(t)
	st := memory.New()
	defer st.Close()
	v, err := st.CompareAndPut(ctx, "k", 0, []byte("abc"))
	require.NoError(t, err)
	_, err = st.CompareAndPut(ctx, "k", 0, []byte("zzz"))
	cur, ok := backend.CurrentEntry(err)
	require.True(t, ok, "conflict carries the current entry: %v", err)
	assert.Equal(t, backend.Entry{Value: []byte("abc"), Version: v}, cur)
	cur.Value[0] = 'X'
	e, err := st.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "abc", string(e.Value), "mutating a conflict's entry changed the store")
}

func TestErrorOrder(t *testing.T) {
	ctx := testCtx(t)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	st := memory.NewSpace(memory.Options{MaxValueSize: 4}).Open()
	// A done context is reported before a bad key or value...
	_, err := st.CompareAndPut(cancelled, "", 0, []byte("too large"))
	assert.ErrorIs(t, err, context.Canceled)
	// ...and a closed handle before everything.
	require.NoError(t, st.Close())
	_, err = st.CompareAndPut(cancelled, "", 0, []byte("too large"))
	assert.ErrorIs(t, err, backend.ErrClosed)
}

func TestUpdateFuncGetsCopy(t *testing.T) {
	ctx := testCtx(t)
	st := memory.New()
	defer st.Close()
	_, err := st.CompareAndPut(ctx, "k", 0, []byte("abc"))
	require.NoError(t, err)
	_, err = st.Update(ctx, "k", func(cur backend.Entry) ([]byte, error) {
		cur.Value[0] = 'X' // scribbling on the argument must not leak
		return nil, backend.ErrSkipUpdate
	})
	require.NoError(t, err)
	e, err := st.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "abc", string(e.Value))
}

func TestUpdateMayUseStore(t *testing.T) {
	// fn runs without the Space's lock held, so it can read the store.
	ctx := testCtx(t)
	st := memory.New()
	defer st.Close()
	_, err := st.CompareAndPut(ctx, "other", 0, []byte("42"))
	require.NoError(t, err)
	_, err = st.Update(ctx, "k", func(backend.Entry) ([]byte, error) {
		e, err := st.Get(ctx, "other")
		return e.Value, err
	})
	require.NoError(t, err)
	e, err := st.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "42", string(e.Value))
}

func TestWatchCoalescesToNewest(t *testing.T) {
	ctx := testCtx(t)
	st := memory.New()
	defer st.Close()
	ch, err := st.Watch(ctx, "k")
	require.NoError(t, err)
	var v backend.Version
	for i := range 10 {
		v, err = st.CompareAndPut(ctx, "k", v, fmt.Appendf(nil, "%d", i))
		require.NoError(t, err)
	}
	assert.Equal(t, v, <-ch, "the one slot holds the newest version")
	select {
	case old := <-ch:
		t.Fatalf("unexpected second notification %d", old)
	default:
	}
	require.NoError(t, st.Delete(ctx, "k", v))
	assert.Equal(t, backend.Version(0), <-ch, "a delete notifies version 0")
}

func TestWatchOtherKeysAndHandles(t *testing.T) {
	ctx := testCtx(t)
	sp := memory.NewSpace(memory.Options{})
	a, b := sp.Open(), sp.Open()
	defer b.Close()
	ch, err := a.Watch(ctx, "k")
	require.NoError(t, err)
	_, err = b.CompareAndPut(ctx, "other", 0, nil)
	require.NoError(t, err)
	select {
	case v := <-ch:
		t.Fatalf("notified (%d) about another key", v)
	default:
	}
	v, err := b.CompareAndPut(ctx, "k", 0, nil)
	require.NoError(t, err)
	assert.Equal(t, v, <-ch, "a write through another handle notifies")

	// Closing b leaves a's watch alone; closing a closes it.
	require.NoError(t, b.Close())
	_, err = a.CompareAndPut(ctx, "k", v, nil)
	require.NoError(t, err)
	_, ok := <-ch
	assert.True(t, ok)
	require.NoError(t, a.Close())
	_, ok = <-ch
	assert.False(t, ok, "Close closes the handle's watches")
}

func TestWatchManyCancelled(t *testing.T) {
	// Watches whose contexts end are removed (goleak in TestMain checks
	// that nothing lingers).
	ctx := testCtx(t)
	st := memory.New()
	defer st.Close()
	var wg sync.WaitGroup
	for i := range 50 {
		wctx, cancel := context.WithCancel(ctx)
		ch, err := st.Watch(wctx, fmt.Sprintf("k%d", i%5))
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ch {
			}
		}()
		cancel()
	}
	wg.Wait()
}

func TestOpenURI(t *testing.T) {
	ctx := testCtx(t)
	for _, uri := range []string{"mem://", "mem:", "mem:///", "mem://?max_key_size=8&max_value_size=16"} {
		st, err := backend.Open(ctx, uri)
		require.NoError(t, err, uri)
		require.NoError(t, st.Close())
	}
	st, err := backend.Open(ctx, "mem://?max_key_size=8&max_value_size=16")
	require.NoError(t, err)
	defer st.Close()
	assert.Equal(t, 8, st.Capabilities().MaxKeySize)
	assert.Equal(t, 16, st.Capabilities().MaxValueSize)

	// Each Open is a fresh Space.
	a, err := backend.Open(ctx, "mem://")
	require.NoError(t, err)
	defer a.Close()
	_, err = a.CompareAndPut(ctx, "k", 0, nil)
	require.NoError(t, err)
	b, err := backend.Open(ctx, "mem://")
	require.NoError(t, err)
	defer b.Close()
	_, err = b.Get(ctx, "k")
	assert.ErrorIs(t, err, backend.ErrNotFound)

	for _, bad := range []string{"mem://name", "mem:name", "mem:///path", "mem://?max_key_size=0", "mem://?max_key_size=x", "mem://?colour=red", "mem://?max_key_size=1&max_key_size=2"} {
		_, err := backend.Open(ctx, bad)
		assert.True(t, errors.Is(err, backend.ErrBadURI), "%s: %v", bad, err)
	}
}
