package conformance

import (
	"context"
	"errors"
	"sync"

	"github.com/stickypub/stickypub/backend"
)

// SharedHarness adapts an engine that allows one open handle per process
// (bbolt locks its file) to the Harness contract: every NewStore returns a
// handle onto one shared underlying store, opened by open on first use and
// closed when the last handle closes, so that a later NewStore really
// reopens the engine. Each handle has its own Close, its own ErrClosed and
// its own watches, and forwards the optional interfaces the underlying
// store implements.
func SharedHarness(open func(ctx context.Context) (backend.Store, error), cleanup func()) Harness {
	return &sharedHarness{open: open, cleanup: cleanup}
}

type sharedHarness struct {
	open    func(ctx context.Context) (backend.Store, error)
	cleanup func()

	mu    sync.Mutex
	inner backend.Store
	refs  int
}

func (h *sharedHarness) NewStore(ctx context.Context) (backend.Store, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inner == nil {
		s, err := h.open(ctx)
		if err != nil {
			return nil, err
		}
		h.inner = s
	}
	h.refs++
	hctx, cancel := context.WithCancel(context.Background())
	sh := &sharedHandle{h: h, inner: h.inner, ctx: hctx, cancel: cancel}
	if _, ok := h.inner.(backend.Batcher); ok {
		return &sharedBatchHandle{sh}, nil
	}
	return sh, nil
}

func (h *sharedHarness) release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refs--; h.refs == 0 && h.inner != nil {
		err := h.inner.Close()
		h.inner = nil
		return err
	}
	return nil
}

func (h *sharedHarness) Close() {
	h.mu.Lock()
	if h.inner != nil {
		_ = h.inner.Close()
		h.inner, h.refs = nil, 0
	}
	h.mu.Unlock()
	if h.cleanup != nil {
		h.cleanup()
	}
}

// sharedHandle is one handle of a sharedHarness.
type sharedHandle struct {
	h      *sharedHarness
	inner  backend.Store
	ctx    context.Context // cancelled by Close: ends this handle's watches
	cancel context.CancelFunc
	once   sync.Once
	mu     sync.RWMutex
	closed bool
}

func (s *sharedHandle) check() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return backend.ErrClosed
	}
	return nil
}

func (s *sharedHandle) Get(ctx context.Context, key string) (backend.Entry, error) {
	if err := s.check(); err != nil {
		return backend.Entry{}, err
	}
	return s.inner.Get(ctx, key)
}

func (s *sharedHandle) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	return s.inner.CompareAndPut(ctx, key, expect, value)
}

func (s *sharedHandle) Capabilities() backend.Capabilities { return s.inner.Capabilities() }

func (s *sharedHandle) Close() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		err = s.h.release()
	})
	return err
}

func (s *sharedHandle) Watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	w, ok := s.inner.(backend.Watcher)
	if !ok {
		return nil, errNotOffered
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	ch, err := w.Watch(ctx, key)
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	go func() { // release the context once the inner watch ends
		<-ctx.Done()
		stop()
	}()
	return ch, nil
}

func (s *sharedHandle) Delete(ctx context.Context, key string, expect backend.Version) error {
	if err := s.check(); err != nil {
		return err
	}
	d, ok := s.inner.(backend.Deleter)
	if !ok {
		return errNotOffered
	}
	return d.Delete(ctx, key, expect)
}

func (s *sharedHandle) List(ctx context.Context, prefix string, fn backend.ListFunc) error {
	if err := s.check(); err != nil {
		return err
	}
	l, ok := s.inner.(backend.Lister)
	if !ok {
		return errNotOffered
	}
	return l.List(ctx, prefix, fn)
}

func (s *sharedHandle) Update(ctx context.Context, key string, fn backend.UpdateFunc) (backend.Version, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	u, ok := s.inner.(backend.Updater)
	if !ok {
		return 0, errNotOffered
	}
	return u.Update(ctx, key, fn)
}

// errNotOffered: the underlying store lacks an optional interface that a
// shared handle forwards.
var errNotOffered = errors.New("conformance: the shared store does not implement this optional interface")

// sharedBatchHandle is a sharedHandle onto a store that implements
// backend.Batcher (the others do not offer it, so the suite skips it).
type sharedBatchHandle struct{ *sharedHandle }

// UpdateWith implements backend.Batcher.
func (s *sharedBatchHandle) UpdateWith(ctx context.Context, puts []backend.Put, key string, fn backend.UpdateFunc) (backend.Version, []backend.Version, error) {
	if err := s.check(); err != nil {
		return 0, nil, err
	}
	return s.inner.(backend.Batcher).UpdateWith(ctx, puts, key, fn)
}
