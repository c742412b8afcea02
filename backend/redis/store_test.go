package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

func TestCompareAndPutSemantics(t *testing.T) {
	s, _ := anyStore(t)
	ctx := testCtx(t)

	_, err := s.Get(ctx, "k")
	require.ErrorIs(t, err, backend.ErrNotFound)

	// expect != 0 on a missing key: conflict that knows the key is absent.
	_, err = s.CompareAndPut(ctx, "k", 7, []byte("x"))
	require.ErrorIs(t, err, backend.ErrConflict)
	cur, known := backend.CurrentEntry(err)
	require.True(t, known)
	require.Equal(t, backend.Version(0), cur.Version)

	v1 := mustPut(t, s, "k", 0, "one")
	require.Equal(t, backend.Version(1), v1)

	// Create-only on an existing key: conflict carrying the current entry.
	_, err = s.CompareAndPut(ctx, "k", 0, []byte("other"))
	var ce *backend.ConflictError
	require.ErrorAs(t, err, &ce)
	require.True(t, ce.Known)
	require.Equal(t, "k", ce.Key)
	require.Equal(t, backend.Version(0), ce.Expected)
	require.Equal(t, backend.Entry{Value: []byte("one"), Version: v1}, ce.Current)

	v2 := mustPut(t, s, "k", v1, "two")
	require.Greater(t, v2, v1)

	// A stale version conflicts and changes nothing.
	_, err = s.CompareAndPut(ctx, "k", v1, []byte("stale"))
	require.ErrorIs(t, err, backend.ErrConflict)
	cur, known = backend.CurrentEntry(err)
	require.True(t, known)
	require.Equal(t, backend.Entry{Value: []byte("two"), Version: v2}, cur)

	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, backend.Entry{Value: []byte("two"), Version: v2}, e)
}

func TestValuesAreBinarySafe(t *testing.T) {
	s, _ := anyStore(t)
	ctx := testCtx(t)
	values := map[string][]byte{
		"empty":  {},
		"nil":    nil,
		"binary": {0, 1, 2, 0xff, 0xfe, '\r', '\n', 0},
		"big":    []byte(strings.Repeat("x", 1<<20)),
	}
	for name, val := range values {
		key := "bin/" + name + "/\x00\xff{tag}"
		v := mustPut(t, s, key, 0, string(val))
		e, err := s.Get(ctx, key)
		require.NoError(t, err, name)
		require.Equal(t, v, e.Version, name)
		require.NotNil(t, e.Value, name)
		require.Equal(t, len(val), len(e.Value), name)
		require.True(t, string(val) == string(e.Value), name)
	}
}

func TestInvalidInputChangesNothing(t *testing.T) {
	s, _ := anyStore(t, func(o *Options) { o.MaxValueSize = 16; o.MaxKeySize = 8 })
	ctx := testCtx(t)
	caps := s.Capabilities()
	require.Equal(t, backend.Linearizable, caps.Consistency)
	require.Equal(t, 16, caps.MaxValueSize)
	require.Equal(t, 8, caps.MaxKeySize)
	require.True(t, caps.Persistent)

	_, err := s.CompareAndPut(ctx, "", 0, []byte("x"))
	require.ErrorIs(t, err, backend.ErrInvalidKey)
	_, err = s.Get(ctx, "")
	require.ErrorIs(t, err, backend.ErrInvalidKey)
	_, err = s.CompareAndPut(ctx, "123456789", 0, []byte("x"))
	require.ErrorIs(t, err, backend.ErrInvalidKey)
	require.ErrorIs(t, s.Delete(ctx, "", 1), backend.ErrInvalidKey)
	_, err = s.Watch(ctx, "")
	require.ErrorIs(t, err, backend.ErrInvalidKey)

	_, err = s.CompareAndPut(ctx, "big", 0, make([]byte, 17))
	require.ErrorIs(t, err, backend.ErrTooLarge)
	_, err = s.Get(ctx, "big")
	require.ErrorIs(t, err, backend.ErrNotFound)
	mustPut(t, s, "big", 0, strings.Repeat("y", 16))
}

func TestCancelledContext(t *testing.T) {
	s, _ := anyStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.CompareAndPut(ctx, "k", 0, []byte("x"))
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, s.Delete(ctx, "k", 1), context.Canceled)
	_, err = s.Watch(ctx, "k")
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Get(testCtx(t), "k")
	require.ErrorIs(t, err, backend.ErrNotFound, "a cancelled write must change nothing")
}

func TestClosedStore(t *testing.T) {
	s, _ := anyStore(t)
	ctx := testCtx(t)
	mustPut(t, s, "k", 0, "x")
	w, err := s.Watch(ctx, "k")
	require.NoError(t, err)

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, ok := <-w
	require.False(t, ok, "Close ends watches")

	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, backend.ErrClosed)
	_, err = s.CompareAndPut(ctx, "k", 1, []byte("y"))
	require.ErrorIs(t, err, backend.ErrClosed)
	require.ErrorIs(t, s.Delete(ctx, "k", 1), backend.ErrClosed)
	_, err = s.Watch(ctx, "k")
	require.ErrorIs(t, err, backend.ErrClosed)
}

func TestNewDoesNotOwnClient(t *testing.T) {
	srv := redistest.Require(t)
	client := srv.Client(t)
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, srv, prefix)
	s, err := New(client, Options{Prefix: prefix})
	require.NoError(t, err)
	mustPut(t, s, "k", 0, "x")
	require.NoError(t, s.Close())
	require.NoError(t, client.Ping(testCtx(t)).Err(), "the caller's client stays open")
	_, err = New(nil, Options{})
	require.Error(t, err)
	_, err = New(client, Options{MaxValueSize: MaxValueSizeLimit + 1})
	require.Error(t, err)
}

func TestVersionsNeverReusedAfterDelete(t *testing.T) {
	s, srv := anyStore(t)
	ctx := testCtx(t)
	require.ErrorIs(t, s.Delete(ctx, "k", 0), backend.ErrNotFound)

	v1 := mustPut(t, s, "k", 0, "a")
	v2 := mustPut(t, s, "k", v1, "b")

	err := s.Delete(ctx, "k", v1)
	require.ErrorIs(t, err, backend.ErrConflict)
	cur, known := backend.CurrentEntry(err)
	require.True(t, known)
	require.Equal(t, v2, cur.Version)
	require.ErrorIs(t, s.Delete(ctx, "k", 0), backend.ErrConflict)

	require.NoError(t, s.Delete(ctx, "k", v2))
	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, backend.ErrNotFound)
	require.ErrorIs(t, s.Delete(ctx, "k", v2), backend.ErrNotFound)
	_, err = s.CompareAndPut(ctx, "k", v2, []byte("c"))
	require.ErrorIs(t, err, backend.ErrConflict, "a deleted key is absent: only expect 0 creates it")

	seen := map[backend.Version]bool{v1: true, v2: true}
	prev := v2
	for i := range 5 {
		v := mustPut(t, s, "k", 0, fmt.Sprint("again", i))
		require.Greater(t, v, prev)
		require.False(t, seen[v])
		seen[v] = true
		require.NoError(t, s.Delete(ctx, "k", v))
		prev = v
	}

	// A second handle on the same prefix continues the same history.
	s2, err := Open(ctx, optionsFor(srv, s.Prefix()))
	require.NoError(t, err)
	defer s2.Close()
	v := mustPut(t, s2, "k", 0, "second handle")
	require.Greater(t, v, prev)
}

func TestConcurrentWritersLoseNothing(t *testing.T) {
	s, _ := anyStore(t)
	ctx := testCtx(t)
	const writers, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				var expect backend.Version
				var n int
				for {
					_, err := s.CompareAndPut(ctx, "counter", expect, []byte(fmt.Sprint(n+1)))
					if err == nil {
						break
					}
					cur, ok := backend.CurrentEntry(err)
					if !errors.Is(err, backend.ErrConflict) || !ok {
						errs <- err
						return
					}
					expect = cur.Version
					if cur.Version != 0 {
						_, _ = fmt.Sscan(string(cur.Value), &n)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	e, err := s.Get(ctx, "counter")
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprint(writers*each), string(e.Value))
	assert.Equal(t, backend.Version(writers*each), e.Version)
}

func TestRetriedWriteIsIdempotent(t *testing.T) {
	s, _ := anyStore(t)
	ctx := testCtx(t)
	rkey := s.RedisKey("k")
	run := func(op, expect, token string, value ...any) writeReply {
		args := append([]any{op, expect, token, ""}, value...)
		res, err := writeScript.Run(ctx, s.client, []string{rkey}, args...).Result()
		require.NoError(t, err)
		r, err := parseWriteReply(res)
		require.NoError(t, err)
		return r
	}
	r := run("put", "0", "tok-1", "a")
	require.Equal(t, writeReply{outcome: outcomeDone, version: 1}, r)
	r = run("put", "0", "tok-1", "a") // the same request again: same answer
	require.Equal(t, writeReply{outcome: outcomeDone, version: 1}, r)
	r = run("put", "0", "tok-2", "b") // another request: a real conflict
	require.Equal(t, int64(outcomeConflict), r.outcome)
	require.Equal(t, "a", string(r.value))

	r = run("del", "1", "tok-3")
	require.Equal(t, writeReply{outcome: outcomeDone, version: 1}, r)
	r = run("del", "1", "tok-3")
	require.Equal(t, writeReply{outcome: outcomeDone, version: 1}, r)
	r = run("del", "1", "tok-4")
	require.Equal(t, int64(outcomeNotFound), r.outcome)
}
