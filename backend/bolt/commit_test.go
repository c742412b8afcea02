package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"
)

// versionSet records versions and fails on the first one handed out twice.
type versionSet struct {
	mu   sync.Mutex
	seen map[backend.Version]string
	dups []string
}

func (vs *versionSet) add(v backend.Version, who string) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.seen == nil {
		vs.seen = make(map[backend.Version]string)
	}
	if prev, ok := vs.seen[v]; ok {
		vs.dups = append(vs.dups, fmt.Sprintf("version %d: %s and %s", v, prev, who))
		return
	}
	vs.seen[v] = who
}

func encodeCounter(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func decodeCounter(t *testing.T, b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	if len(b) != 8 {
		t.Errorf("counter of %d bytes", len(b))
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// TestConcurrentCASCounters has 100 goroutines increment a few shared
// counters with Get/CompareAndPut loops: every counter must end at the number
// of successful compare-and-puts on it, and no version may be returned twice.
func TestConcurrentCASCounters(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	const (
		writers   = 100
		perWriter = 20
		counters  = 4
	)
	var (
		versions  versionSet
		successes [counters]int
		mu        sync.Mutex
		wg        sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				c := (w + i) % counters
				key := fmt.Sprintf("counter%d", c)
				for {
					e, err := s.Get(ctx, key)
					if err != nil && !errors.Is(err, backend.ErrNotFound) {
						t.Errorf("get: %v", err)
						return
					}
					v, err := s.CompareAndPut(ctx, key, e.Version, encodeCounter(decodeCounter(t, e.Value)+1))
					if errors.Is(err, backend.ErrConflict) {
						continue
					}
					if err != nil {
						t.Errorf("cas: %v", err)
						return
					}
					if v <= e.Version {
						t.Errorf("new version %d not greater than %d", v, e.Version)
					}
					versions.add(v, fmt.Sprintf("writer %d op %d", w, i))
					mu.Lock()
					successes[c]++
					mu.Unlock()
					break
				}
			}
		})
	}
	wg.Wait()
	require.Empty(t, versions.dups)

	total := 0
	for c := range counters {
		e, err := s.Get(ctx, fmt.Sprintf("counter%d", c))
		require.NoError(t, err)
		assert.Equal(t, uint64(successes[c]), decodeCounter(t, e.Value), "counter %d", c)
		total += successes[c]
	}
	assert.Equal(t, writers*perWriter, total)
	assert.Len(t, versions.seen, writers*perWriter)
}

// TestConcurrentUpdate has 100 goroutines increment one counter with Update:
// every increment must be applied, each with its own version.
func TestConcurrentUpdate(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	const (
		writers   = 100
		perWriter = 20
	)
	var (
		versions versionSet
		wg       sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				v, err := s.Update(ctx, "counter", func(cur backend.Entry) ([]byte, error) {
					return encodeCounter(decodeCounter(t, cur.Value) + 1), nil
				})
				if err != nil {
					t.Errorf("update: %v", err)
					return
				}
				versions.add(v, fmt.Sprintf("writer %d op %d", w, i))
			}
		})
	}
	wg.Wait()
	require.Empty(t, versions.dups)
	e, err := s.Get(ctx, "counter")
	require.NoError(t, err)
	assert.Equal(t, uint64(writers*perWriter), decodeCounter(t, e.Value))
	assert.Len(t, versions.seen, writers*perWriter)
	var maxV backend.Version
	for v := range versions.seen {
		maxV = max(maxV, v)
	}
	assert.Equal(t, maxV, e.Version)
}

func TestUpdateSemantics(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)

	// On an absent key fn sees Version 0.
	v1, err := s.Update(ctx, "k", func(cur backend.Entry) ([]byte, error) {
		assert.Equal(t, backend.Version(0), cur.Version)
		assert.Nil(t, cur.Value)
		return []byte("a"), nil
	})
	require.NoError(t, err)
	require.Greater(t, v1, backend.Version(0))

	// ErrSkipUpdate returns the current version without writing.
	v, err := s.Update(ctx, "k", func(cur backend.Entry) ([]byte, error) {
		assert.Equal(t, backend.Entry{Value: []byte("a"), Version: v1}, cur)
		return nil, backend.ErrSkipUpdate
	})
	require.NoError(t, err)
	assert.Equal(t, v1, v)
	v, err = s.Update(ctx, "absent", func(backend.Entry) ([]byte, error) { return nil, backend.ErrSkipUpdate })
	require.NoError(t, err)
	assert.Equal(t, backend.Version(0), v)
	_, err = s.Get(ctx, "absent")
	require.ErrorIs(t, err, backend.ErrNotFound)

	// An fn error is returned (wrapped) and changes nothing.
	boom := errors.New("boom")
	_, err = s.Update(ctx, "k", func(backend.Entry) ([]byte, error) { return []byte("b"), boom })
	require.ErrorIs(t, err, boom)

	// fn may scribble on its copy of the current value.
	v2, err := s.Update(ctx, "k", func(cur backend.Entry) ([]byte, error) {
		cur.Value[0] = 'Z'
		return append(cur.Value, 'b'), nil
	})
	require.NoError(t, err)
	require.Greater(t, v2, v1)
	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("Zb"), Version: v2}, e)
}

// TestBatchIsolation queues operations that succeed, conflict, fail, panic
// and skip into one batch and checks that each gets its own result, that
// later operations see earlier ones, and that failures write nothing.
func TestBatchIsolation(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	base, err := s.CompareAndPut(ctx, "k", 0, []byte("base"))
	require.NoError(t, err)

	b := blockCommitter(t, ctx, s, "block")
	boom := errors.New("boom")
	var results []<-chan result
	queue := func(f func() (backend.Version, error)) {
		results = append(results, async(f))
		waitQueued(t, ctx, s, len(results))
	}
	queue(func() (backend.Version, error) { return s.CompareAndPut(ctx, "k", base, []byte("first")) })  // 0 ok
	queue(func() (backend.Version, error) { return s.CompareAndPut(ctx, "k", base, []byte("second")) }) // 1 conflict
	queue(func() (backend.Version, error) {                                                             // 2 fn error
		return s.Update(ctx, "k", func(backend.Entry) ([]byte, error) { return []byte("bad"), boom })
	})
	panicked := make(chan any, 1)
	queue(func() (v backend.Version, err error) { // 3 fn panic, re-raised in this goroutine
		defer func() { panicked <- recover() }()
		return s.Update(ctx, "k", func(backend.Entry) ([]byte, error) { panic("kaboom") })
	})
	queue(func() (backend.Version, error) { // 4 sees "first"
		return s.Update(ctx, "k", func(cur backend.Entry) ([]byte, error) {
			return append(cur.Value, "+update"...), nil
		})
	})
	queue(func() (backend.Version, error) { // 5 too large
		return s.Update(ctx, "k", func(backend.Entry) ([]byte, error) { return make([]byte, DefaultMaxValueSize+1), nil })
	})
	queue(func() (backend.Version, error) { // 6 skip
		return s.Update(ctx, "k", func(backend.Entry) ([]byte, error) { return nil, backend.ErrSkipUpdate })
	})
	queue(func() (backend.Version, error) { return 0, s.Delete(ctx, "missing", 1) }) // 7 not found
	queue(func() (backend.Version, error) { return s.CompareAndPut(ctx, "other", 0, []byte("o")) })

	require.NoError(t, b.unblock(t, ctx))
	r := make([]result, len(results))
	for i, ch := range results {
		r[i] = await(t, ctx, ch)
	}

	require.NoError(t, r[0].err)
	require.Greater(t, r[0].ver, base)
	require.ErrorIs(t, r[1].err, backend.ErrConflict)
	cur, ok := backend.CurrentEntry(r[1].err)
	require.True(t, ok)
	assert.Equal(t, backend.Entry{Value: []byte("first"), Version: r[0].ver}, cur, "the conflict sees the earlier op of the batch")
	require.ErrorIs(t, r[2].err, boom)
	assert.Contains(t, fmt.Sprint(<-panicked), "kaboom")
	require.NoError(t, r[4].err)
	require.Greater(t, r[4].ver, r[0].ver)
	require.ErrorIs(t, r[5].err, backend.ErrTooLarge)
	require.NoError(t, r[6].err)
	assert.Equal(t, r[4].ver, r[6].ver)
	require.ErrorIs(t, r[7].err, backend.ErrNotFound)
	require.NoError(t, r[8].err)

	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("first+update"), Version: r[4].ver}, e)
}

// TestCommitFailureFailsWholeBatch makes one commit fail (the file would
// outgrow its cap): every operation of the batch gets the error and nothing
// of the batch is stored; the store keeps working afterwards.
func TestCommitFailureFailsWholeBatch(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t, WithMaxFileSize(1<<20))
	v, err := s.CompareAndPut(ctx, "k", 0, []byte("before"))
	require.NoError(t, err)

	b := blockCommitter(t, ctx, s, "block")
	small := async(func() (backend.Version, error) { return s.CompareAndPut(ctx, "k", v, []byte("after")) })
	waitQueued(t, ctx, s, 1)
	huge := async(func() (backend.Version, error) { return s.CompareAndPut(ctx, "huge", 0, make([]byte, 4<<20)) })
	waitQueued(t, ctx, s, 2)
	require.NoError(t, b.unblock(t, ctx))

	rs, rh := await(t, ctx, small), await(t, ctx, huge)
	require.Error(t, rs.err)
	require.Error(t, rh.err)
	assert.Equal(t, rs.err, rh.err)
	assert.Contains(t, rs.err.Error(), "none applied")

	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("before"), Version: v}, e)
	_, err = s.Get(ctx, "huge")
	require.ErrorIs(t, err, backend.ErrNotFound)

	v2, err := s.CompareAndPut(ctx, "k", v, []byte("after"))
	require.NoError(t, err)
	require.Greater(t, v2, v)
}

// TestGroupCommitBatches checks that concurrent writers really share
// commits.
func TestGroupCommitBatches(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	before := s.Stats()
	const writers, perWriter = 50, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprintf("w%d", w)
			var ver backend.Version
			for range perWriter {
				v, err := s.CompareAndPut(ctx, key, ver, []byte("x"))
				if err != nil {
					t.Errorf("cas: %v", err)
					return
				}
				ver = v
			}
		})
	}
	wg.Wait()
	after := s.Stats()
	commits, ops := after.Commits-before.Commits, after.Operations-before.Operations
	t.Logf("%d writes in %d commits", ops, commits)
	assert.Equal(t, uint64(writers*perWriter), ops)
	assert.Less(t, commits, uint64(writers*perWriter/2), "writes should be coalesced")
}

// TestGetIsConcurrentWithCommit checks that reads do not queue behind a
// commit in progress.
func TestGetIsConcurrentWithCommit(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	v, err := s.CompareAndPut(ctx, "k", 0, []byte("v"))
	require.NoError(t, err)
	b := blockCommitter(t, ctx, s, "block")
	getCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	e, err := s.Get(getCtx, "k")
	require.NoError(t, err)
	assert.Equal(t, v, e.Version)
	require.NoError(t, b.unblock(t, ctx))
}

// TestUpdateGoexit checks that an UpdateFunc calling runtime.Goexit (as
// t.FailNow would) re-panics in its caller, fails its batch without
// applying it, and leaves the store working.
func TestUpdateGoexit(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	b := blockCommitter(t, ctx, s, "block")
	other := async(func() (backend.Version, error) { return s.CompareAndPut(ctx, "other", 0, []byte("x")) })
	waitQueued(t, ctx, s, 1)
	panicked := make(chan any, 1)
	exiting := async(func() (backend.Version, error) {
		defer func() { panicked <- recover() }()
		return s.Update(ctx, "k", func(backend.Entry) ([]byte, error) {
			runtime.Goexit()
			return nil, nil
		})
	})
	waitQueued(t, ctx, s, 2)
	require.NoError(t, b.unblock(t, ctx))
	await(t, ctx, exiting)
	assert.Contains(t, fmt.Sprint(<-panicked), "Goexit")
	r := await(t, ctx, other)
	require.Error(t, r.err)
	assert.Contains(t, r.err.Error(), "none applied")
	_, err := s.Get(ctx, "other")
	require.ErrorIs(t, err, backend.ErrNotFound)

	// The store carries on with a new committer.
	v, err := s.CompareAndPut(ctx, "other", 0, []byte("y"))
	require.NoError(t, err)
	require.Greater(t, v, backend.Version(0))
	require.NoError(t, s.Close())
}

// setCounter rewrites the persisted version counter behind the store's back.
func setCounter(t *testing.T, path string, seq uint64) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(metaBucketName)).SetSequence(seq)
	}))
	require.NoError(t, db.Close())
}

// TestDamagedCounter: a counter behind the stored versions never makes a
// key's version go back, and an exhausted counter fails writes instead of
// wrapping around.
func TestDamagedCounter(t *testing.T) {
	ctx := testCtx(t)
	path := tempPath(t)
	s, err := Open(path)
	require.NoError(t, err)
	var v backend.Version
	for range 10 {
		v, err = s.CompareAndPut(ctx, "k", v, []byte("x"))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())

	setCounter(t, path, 1)
	s, err = Open(path)
	require.NoError(t, err)
	v2, err := s.CompareAndPut(ctx, "k", v, []byte("y"))
	require.NoError(t, err)
	require.Greater(t, v2, v)
	require.NoError(t, s.Close())

	setCounter(t, path, math.MaxUint64-1)
	s = openAt(t, path)
	_, err = s.CompareAndPut(ctx, "k", v2, []byte("z"))
	require.ErrorIs(t, err, backend.ErrCorrupt)
	_, err = s.CompareAndPut(ctx, "new", 0, []byte("z"))
	require.ErrorIs(t, err, backend.ErrCorrupt)
	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, v2, e.Version)
}
