package conformance_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/conformance"
)

// Deliberately broken adapters, each wrapping the memory adapter and
// implementing only backend.Store. Each has exactly one bug that a real
// adapter could plausibly have; TestBroken checks that the suite catches it.

// brokenAdapters maps a name to a harness maker for the adapter with that
// bug. "mapper-ok" is the control: the version-mapping wrapper of the
// reuse and backwards bugs with a correct counter, which must pass.
var brokenAdapters = map[string]conformance.MakeHarness{
	"lost-update": wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store { return &lostUpdateStore{inner: inner} }),
	"stale-read": wrapHarness(func(inner backend.Store, sh *wrapShared) backend.Store {
		return &staleReadStore{inner: inner, shared: sh}
	}),
	"reuse-after-reopen": wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store {
		// The counter lives in the handle, so every reopen (and every
		// second handle) starts again from 1.
		var n atomic.Uint64
		return &versionMapper{inner: inner, next: func() backend.Version { return backend.Version(n.Add(1)) }}
	}),
	"backwards": wrapHarness(func(inner backend.Store, sh *wrapShared) backend.Store {
		// Shared and never reset, but every third version steps back.
		return &versionMapper{inner: inner, next: func() backend.Version {
			n := sh.counter.Add(1)
			if n%3 == 0 {
				n -= 2
			}
			return backend.Version(n)
		}}
	}),
	"ignores-context":    wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store { return &ctxIgnoringStore{inner} }),
	"pooled-buffer":      wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store { return &pooledBufferStore{Store: inner} }),
	"silent-watch":       wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store { return &silentWatchStore{Store: inner} }),
	"update-not-atomic":  wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store { return &nonAtomicUpdateStore{inner} }),
	"batch-not-atomic":   wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store { return &halfBatchStore{inner} }),
	"watch-never-closes": wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store { return &openWatchStore{inner} }),
	"delete-reuses-versions": wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store {
		return newRestartingDeleteStore(inner)
	}),
	"list-skips-keys": wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store { return &skippingLister{inner} }),
	"list-foreign-keys": wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store {
		return &foreignLister{inner}
	}),
	"mapper-ok": wrapHarness(func(inner backend.Store, sh *wrapShared) backend.Store {
		return &versionMapper{inner: inner, next: func() backend.Version { return backend.Version(sh.counter.Add(1)) }}
	}),
}

// wrapShared is state shared by the handles of one wrapped harness.
type wrapShared struct {
	counter atomic.Uint64

	mu      sync.Mutex
	history map[string][]backend.Entry // stale-read: entries written per key
}

// wrapHarness builds a MakeHarness whose handles are wrap(memory handle).
// The wrapped space gets 8 extra value bytes for versionMapper's header.
func wrapHarness(wrap func(inner backend.Store, sh *wrapShared) backend.Store) conformance.MakeHarness {
	return func(context.Context, *testing.T) (conformance.Harness, error) {
		sp := memory.NewSpace(memory.Options{MaxKeySize: 128, MaxValueSize: 4096 + headerSize})
		return &wrappedHarness{space: sp, wrap: wrap, shared: &wrapShared{history: map[string][]backend.Entry{}}}, nil
	}
}

type wrappedHarness struct {
	space  *memory.Space
	wrap   func(backend.Store, *wrapShared) backend.Store
	shared *wrapShared
}

func (h *wrappedHarness) NewStore(context.Context) (backend.Store, error) {
	return h.wrap(h.space.Open(), h.shared), nil
}

func (h *wrappedHarness) Close() {}

// capsOf is the inner store's capabilities minus the mapper header.
func capsOf(inner backend.Store) backend.Capabilities {
	c := inner.Capabilities()
	c.MaxValueSize -= headerSize
	return c
}

// lostUpdateStore checks the expected version and writes in two steps, so
// two writers that both read version v can both succeed. lost, when set,
// counts the writes that replaced a version the writer never expected.
type lostUpdateStore struct {
	inner backend.Store
	lost  *atomic.Int64
}

func (s *lostUpdateStore) Get(ctx context.Context, key string) (backend.Entry, error) {
	return s.inner.Get(ctx, key)
}

func (s *lostUpdateStore) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := backend.CheckValue(value, s.Capabilities()); err != nil {
		return 0, err
	}
	cur, err := s.inner.Get(ctx, key)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return 0, err
	}
	if cur.Version != expect {
		return 0, &backend.ConflictError{Key: key, Expected: expect, Current: cur, Known: true}
	}
	runtime.Gosched() // the window between check and write
	// BUG: writes over whatever is there now instead of over expect.
	now, err := s.inner.Get(ctx, key)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return 0, err
	}
	v, err := s.inner.CompareAndPut(ctx, key, now.Version, value)
	if err == nil && now.Version != expect && s.lost != nil {
		s.lost.Add(1)
	}
	return v, err
}

func (s *lostUpdateStore) Capabilities() backend.Capabilities { return capsOf(s.inner) }
func (s *lostUpdateStore) Close() error                       { return s.inner.Close() }

// staleReadStore returns the previous entry of a key on every third Get.
type staleReadStore struct {
	inner  backend.Store
	shared *wrapShared
	gets   atomic.Uint64
}

func (s *staleReadStore) Get(ctx context.Context, key string) (backend.Entry, error) {
	e, err := s.inner.Get(ctx, key)
	if err != nil || s.gets.Add(1)%3 != 0 {
		return e, err
	}
	s.shared.mu.Lock()
	defer s.shared.mu.Unlock()
	// BUG: a lagging replica answers.
	h := s.shared.history[key]
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Version < e.Version {
			return backend.Entry{Value: append([]byte(nil), h[i].Value...), Version: h[i].Version}, nil
		}
	}
	return e, nil
}

func (s *staleReadStore) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := backend.CheckValue(value, s.Capabilities()); err != nil {
		return 0, err
	}
	v, err := s.inner.CompareAndPut(ctx, key, expect, value)
	if err == nil {
		s.shared.mu.Lock()
		s.shared.history[key] = append(s.shared.history[key], backend.Entry{Value: append([]byte(nil), value...), Version: v})
		s.shared.mu.Unlock()
	}
	return v, err
}

func (s *staleReadStore) Capabilities() backend.Capabilities { return capsOf(s.inner) }
func (s *staleReadStore) Close() error                       { return s.inner.Close() }

// headerSize is the length of versionMapper's version header.
const headerSize = 8

// versionMapper hands out its own versions, from next, and keeps them in
// an 8-byte header of the stored value; the inner store's versions only
// make the compare-and-put atomic. With a correct next it is a correct
// adapter (the "mapper-ok" control).
type versionMapper struct {
	inner backend.Store
	next  func() backend.Version
}

// read returns the mapped entry of key and the inner version (0 if absent).
func (s *versionMapper) read(ctx context.Context, key string) (backend.Entry, backend.Version, error) {
	e, err := s.inner.Get(ctx, key)
	if err != nil {
		return backend.Entry{}, 0, err
	}
	if len(e.Value) < headerSize {
		return backend.Entry{}, 0, fmt.Errorf("%w: %q has no version header", backend.ErrCorrupt, key)
	}
	return backend.Entry{Value: e.Value[headerSize:], Version: backend.Version(binary.BigEndian.Uint64(e.Value))}, e.Version, nil
}

func (s *versionMapper) Get(ctx context.Context, key string) (backend.Entry, error) {
	e, _, err := s.read(ctx, key)
	return e, err
}

func (s *versionMapper) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := backend.CheckValue(value, s.Capabilities()); err != nil {
		return 0, err
	}
	cur, innerV, err := s.read(ctx, key)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return 0, err
	}
	if cur.Version != expect {
		return 0, &backend.ConflictError{Key: key, Expected: expect, Current: cur, Known: true}
	}
	v := s.next()
	buf := binary.BigEndian.AppendUint64(make([]byte, 0, headerSize+len(value)), uint64(v))
	if _, err := s.inner.CompareAndPut(ctx, key, innerV, append(buf, value...)); err != nil {
		if errors.Is(err, backend.ErrConflict) {
			return 0, &backend.ConflictError{Key: key, Expected: expect}
		}
		return 0, err
	}
	return v, nil
}

func (s *versionMapper) Capabilities() backend.Capabilities { return capsOf(s.inner) }
func (s *versionMapper) Close() error                       { return s.inner.Close() }

// ctxIgnoringStore drops the caller's context.
type ctxIgnoringStore struct{ inner backend.Store }

func (s *ctxIgnoringStore) Get(_ context.Context, key string) (backend.Entry, error) {
	return s.inner.Get(context.Background(), key) // BUG
}

func (s *ctxIgnoringStore) CompareAndPut(_ context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := backend.CheckValue(value, s.Capabilities()); err != nil {
		return 0, err
	}
	return s.inner.CompareAndPut(context.Background(), key, expect, value) // BUG
}

func (s *ctxIgnoringStore) Capabilities() backend.Capabilities { return capsOf(s.inner) }
func (s *ctxIgnoringStore) Close() error                       { return s.inner.Close() }

// pooledBufferStore returns every Get's value in one reused buffer, so a
// value the caller kept changes under it at the next Get.
type pooledBufferStore struct {
	backend.Store
	mu  sync.Mutex
	buf []byte
}

func (s *pooledBufferStore) Get(ctx context.Context, key string) (backend.Entry, error) {
	e, err := s.Store.Get(ctx, key)
	if err != nil {
		return e, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cap(s.buf) < len(e.Value) {
		s.buf = make([]byte, 0, max(len(e.Value), 64<<10))
	}
	s.buf = append(s.buf[:0], e.Value...)
	e.Value = s.buf[:len(e.Value):len(e.Value)]
	return e, nil
}

// silentWatchStore's watches forward three notifications, then go silent
// (the channel stays open).
type silentWatchStore struct{ backend.Store }

func (s *silentWatchStore) Watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	in, err := s.Store.(backend.Watcher).Watch(ctx, key)
	if err != nil {
		return nil, err
	}
	out := make(chan backend.Version, 1)
	go func() {
		defer close(out)
		sent := 0
		for v := range in {
			if sent < 3 {
				sent++
				out <- v
			}
		}
	}()
	return out, nil
}

// nonAtomicUpdateStore runs Update as a read, the function, and a write
// over whatever is stored by then, so concurrent Updates lose each other's
// work.
type nonAtomicUpdateStore struct{ backend.Store }

func (s *nonAtomicUpdateStore) Update(ctx context.Context, key string, fn backend.UpdateFunc) (backend.Version, error) {
	cur, err := s.Store.Get(ctx, key)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return 0, err
	}
	next, err := fn(cur)
	if errors.Is(err, backend.ErrSkipUpdate) {
		return cur.Version, nil
	}
	if err != nil {
		return 0, err
	}
	runtime.Gosched() // the window between read and write
	// BUG: writes over the version found now, not the one fn saw.
	now, err := s.Store.Get(ctx, key)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return 0, err
	}
	return s.Store.CompareAndPut(ctx, key, now.Version, next)
}

// openWatchStore's watch channels are never closed, neither when their
// context ends nor when the store closes.
type openWatchStore struct{ backend.Store }

func (s *openWatchStore) Watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	in, err := s.Store.(backend.Watcher).Watch(ctx, key)
	if err != nil {
		return nil, err
	}
	out := make(chan backend.Version, 1)
	go func() {
		for v := range in {
			select {
			case out <- v:
			default:
			}
		}
		// BUG: out is never closed.
	}()
	return out, nil
}

// restartingDeleteStore keeps a per-key version counter in the value's
// header (versionMapper's) that a Delete throws away, so a key recreated
// after a delete hands out its old versions again.
type restartingDeleteStore struct{ versionMapper }

func newRestartingDeleteStore(inner backend.Store) *restartingDeleteStore {
	return &restartingDeleteStore{versionMapper{inner: inner}}
}

func (s *restartingDeleteStore) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	// BUG: the next version is derived from the key's own history, which
	// a delete erases.
	m := versionMapper{inner: s.inner, next: func() backend.Version { return expect + 1 }}
	return m.CompareAndPut(ctx, key, expect, value)
}

func (s *restartingDeleteStore) Delete(ctx context.Context, key string, expect backend.Version) error {
	cur, innerV, err := s.read(ctx, key)
	if err != nil {
		return err
	}
	if cur.Version != expect {
		return &backend.ConflictError{Key: key, Expected: expect, Current: cur, Known: true}
	}
	return s.inner.(backend.Deleter).Delete(ctx, key, innerV)
}

// halfBatchStore applies a batch's puts one by one and then the update, so
// a put that conflicts, or an update function that fails, leaves the puts
// before it written.
type halfBatchStore struct{ backend.Store }

func (s *halfBatchStore) UpdateWith(ctx context.Context, puts []backend.Put, key string, fn backend.UpdateFunc) (backend.Version, []backend.Version, error) {
	var vers []backend.Version
	for _, p := range puts {
		// BUG: each put lands on its own.
		v, err := s.Store.CompareAndPut(ctx, p.Key, p.Expect, p.Value)
		if err != nil {
			return 0, nil, err
		}
		vers = append(vers, v)
	}
	for {
		cur, err := s.Store.Get(ctx, key)
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			return 0, nil, err
		}
		next, err := fn(cur)
		if errors.Is(err, backend.ErrSkipUpdate) {
			return cur.Version, vers, nil
		}
		if err != nil {
			return 0, nil, err
		}
		v, err := s.Store.CompareAndPut(ctx, key, cur.Version, next)
		if errors.Is(err, backend.ErrConflict) {
			continue
		}
		return v, vers, err
	}
}

// skippingLister lists in pages of 100 and, like an off-by-one resume
// ("seek past the last key, then Next"), drops the first key of every
// page after the first.
type skippingLister struct{ backend.Store }

func (s *skippingLister) List(ctx context.Context, prefix string, fn backend.ListFunc) error {
	var all []string
	if err := s.Store.(backend.Lister).List(ctx, prefix, func(keys []string) error {
		all = append(all, keys...)
		return nil
	}); err != nil {
		return err
	}
	for page := 0; len(all) > 0; page++ {
		n := min(len(all), 100)
		keys := all[:n]
		if page > 0 {
			keys = keys[1:]
		}
		if len(keys) > 0 {
			if err := fn(keys); err != nil {
				return err
			}
		}
		all = all[n:]
	}
	return nil
}

// foreignLister matches the prefix without its last byte (a glob built
// from a trimmed prefix), so "a/" also lists "a0" and "ab/1".
type foreignLister struct{ backend.Store }

func (s *foreignLister) List(ctx context.Context, prefix string, fn backend.ListFunc) error {
	return s.Store.(backend.Lister).List(ctx, strings.TrimSuffix(prefix, prefix[max(len(prefix)-1, 0):]), fn)
}
