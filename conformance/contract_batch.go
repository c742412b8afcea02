package conformance

// The optional Batcher interface: several compare-and-puts and an update
// applied all or nothing.

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// testBatchApply: puts that create and replace keys and the update land
// together, with new versions, each readable afterwards.
func (s *suite) testBatchApply(t *testing.T) {
	f := s.setup(t, basicTimeout)
	b := batcher(t, f.store)
	va := f.put(f.store, "a", 0, []byte("a1"))
	v, vers, err := b.UpdateWith(f.ctx, []backend.Put{{Key: "a", Expect: va, Value: []byte("a2")}, {Key: "b", Value: []byte("b1")}},
		"u", func(cur backend.Entry) ([]byte, error) {
			if cur.Version != 0 {
				return nil, fmt.Errorf("missing key passed to UpdateFunc as %+v, want the zero Entry", cur)
			}
			return []byte("u1"), nil
		})
	require.NoError(t, err, "UpdateWith")
	require.Len(t, vers, 2, "UpdateWith returns one version per put")
	require.Greater(t, vers[0], va, "the version of a replaced key grows")
	require.NotZero(t, vers[1])
	require.NotZero(t, v)
	f.mustGet(f.store, "a", backend.Entry{Value: []byte("a2"), Version: vers[0]})
	f.mustGet(f.store, "b", backend.Entry{Value: []byte("b1"), Version: vers[1]})
	f.mustGet(f.store, "u", backend.Entry{Value: []byte("u1"), Version: v})

	// ErrSkipUpdate leaves the key; the puts still land.
	v2, vers, err := b.UpdateWith(f.ctx, []backend.Put{{Key: "b", Expect: vers[1], Value: []byte("b2")}}, "u",
		func(backend.Entry) ([]byte, error) { return nil, backend.ErrSkipUpdate })
	require.NoError(t, err, "UpdateWith whose update is skipped")
	require.Equal(t, v, v2, "a skipped update returns the key's current version")
	f.mustGet(f.store, "u", backend.Entry{Value: []byte("u1"), Version: v})
	f.mustGet(f.store, "b", backend.Entry{Value: []byte("b2"), Version: vers[0]})
}

// testBatchAllOrNothing: a conflicting put, an error from the update
// function, an oversize value and a repeated key each leave every key as
// it was.
func (s *suite) testBatchAllOrNothing(t *testing.T) {
	f := s.setup(t, basicTimeout)
	b := batcher(t, f.store)
	va := f.put(f.store, "a", 0, []byte("a1"))
	vu := f.put(f.store, "u", 0, []byte("u1"))
	unchanged := func(why string) {
		t.Helper()
		f.mustGet(f.store, "a", backend.Entry{Value: []byte("a1"), Version: va})
		f.mustGet(f.store, "u", backend.Entry{Value: []byte("u1"), Version: vu})
		f.mustNotExist(f.store, "b")
		if t.Failed() {
			t.Fatalf("a failed batch (%s) changed keys: batches must be all or nothing", why)
		}
	}

	_, _, err := b.UpdateWith(f.ctx, []backend.Put{{Key: "b", Value: []byte("b1")}, {Key: "a", Expect: va + 1000, Value: []byte("a2")}}, "u", setString("u2"))
	f.requireConflict(err, "a", va+1000, backend.Entry{Value: []byte("a1"), Version: va})
	unchanged("a put with a stale version")

	boom := errors.New("boom")
	_, _, err = b.UpdateWith(f.ctx, []backend.Put{{Key: "b", Value: []byte("b1")}}, "u", func(backend.Entry) ([]byte, error) { return nil, boom })
	require.ErrorIs(t, err, boom, "UpdateWith returns the UpdateFunc's error")
	unchanged("the update function failed")

	_, _, err = b.UpdateWith(f.ctx, []backend.Put{{Key: "b", Value: []byte("b1")}, {Key: "b", Value: []byte("b2")}}, "u", setString("u2"))
	require.ErrorIs(t, err, backend.ErrInvalidKey, "a key twice in one batch")
	unchanged("a key twice in one batch")

	if f.caps.MaxValueSize < maxTestValue {
		_, _, err = b.UpdateWith(f.ctx, []backend.Put{{Key: "b", Value: []byte("b1")}}, "u",
			func(backend.Entry) ([]byte, error) { return pattern(f.caps.MaxValueSize + 1), nil })
		require.ErrorIs(t, err, backend.ErrTooLarge, "an oversize update")
		unchanged("an oversize update")
		_, _, err = b.UpdateWith(f.ctx, []backend.Put{{Key: "b", Value: pattern(f.caps.MaxValueSize + 1)}}, "u", setString("u2"))
		require.ErrorIs(t, err, backend.ErrTooLarge, "an oversize put")
		unchanged("an oversize put")
	}
}

// testBatchConcurrent: workers on several handles each increment a shared
// counter and, in the same batch, advance a key of their own; a batch whose
// own put was refused must not have counted. In the end the counter equals
// the number of successful batches and every worker's key its count.
func (s *suite) testBatchConcurrent(t *testing.T) {
	f := s.setup(t, stressTimeout)
	batcher(t, f.store)
	if !f.linearizable() {
		t.Skip("counting batches needs a linearizable store")
	}
	const handles, workers = 4, 8
	per := s.scale(10, 40)
	stores := []backend.Store{f.store}
	for len(stores) < handles {
		stores = append(stores, f.open())
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			b := stores[w%handles].(backend.Batcher)
			key := fmt.Sprintf("own/%d", w)
			var ver backend.Version
			for i := range per {
				_, vers, err := b.UpdateWith(f.ctx, []backend.Put{{Key: key, Expect: ver, Value: []byte(strconv.Itoa(i + 1))}}, "counter", incrCounter)
				if !assert.NoError(t, err, "worker %d: UpdateWith %d", w, i) {
					return
				}
				ver = vers[0]
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	e, err := f.store.Get(f.ctx, "counter")
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(workers*per), string(e.Value), "the counter after %d batches of %d workers", per, workers)
	for w := range workers {
		e, err := f.store.Get(f.ctx, fmt.Sprintf("own/%d", w))
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(per), string(e.Value), "worker %d's own key", w)
	}
}
