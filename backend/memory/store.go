package memory

import (
	"context"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
)

// Store is one handle on a Space. It implements backend.Store,
// backend.Watcher, backend.Deleter, backend.Updater and backend.Lister, and
// is safe for concurrent use.
type Store struct {
	space *Space

	// closed and watches are guarded by space.mu, so that an operation
	// either runs entirely before Close or fails with ErrClosed.
	closed  bool
	watches map[*watch]struct{}
}

// Compile-time checks that Store offers the contract and every optional
// interface. An adapter should list the ones it implements the same way.
var (
	_ backend.Store   = (*Store)(nil)
	_ backend.Watcher = (*Store)(nil)
	_ backend.Deleter = (*Store)(nil)
	_ backend.Updater = (*Store)(nil)
)

// Space returns the Space this handle was opened on.
func (s *Store) Space() *Space { return s.space }

// Capabilities implements backend.Store. It works on a closed handle too.
func (s *Store) Capabilities() backend.Capabilities { return s.space.caps }

// usable is the common precondition of every operation, checked with
// space.mu held and before anything changes. The order is: closed handle,
// then done context, then bad key (CompareAndPut checks the value next).
func (s *Store) usable(ctx context.Context, key string) error {
	if s.closed {
		return backend.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err // returned unwrapped so that err == context.Canceled holds too
	}
	return backend.CheckKey(key, s.space.caps)
}

// Get implements backend.Store. The returned Value is the caller's own copy.
func (s *Store) Get(ctx context.Context, key string) (backend.Entry, error) {
	sp := s.space
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if err := s.usable(ctx, key); err != nil {
		return backend.Entry{}, err
	}
	e, ok := sp.entries[key]
	if !ok {
		return backend.Entry{}, fmt.Errorf("%w: %q", backend.ErrNotFound, key)
	}
	return backend.Entry{Value: clone(e.Value), Version: e.Version}, nil
}

// CompareAndPut implements backend.Store. A mismatch returns a
// *backend.ConflictError carrying a copy of the current entry (Known is
// always true here; Current.Version is 0 when the key does not exist).
func (s *Store) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	sp := s.space
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if err := s.usable(ctx, key); err != nil {
		return 0, err
	}
	if err := backend.CheckValue(value, sp.caps); err != nil {
		return 0, err
	}
	cur := sp.entries[key] // the zero Entry (Version 0) when absent
	if cur.Version != expect {
		return 0, s.conflict(key, expect, cur)
	}
	e := backend.Entry{Value: clone(value), Version: sp.nextVersion()}
	sp.entries[key] = e
	sp.notify(key, e.Version)
	return e.Version, nil
}

// Delete implements backend.Deleter. The version counter is not touched, so
// a later create of the same key gets a greater version than any before.
func (s *Store) Delete(ctx context.Context, key string, expect backend.Version) error {
	sp := s.space
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if err := s.usable(ctx, key); err != nil {
		return err
	}
	cur, ok := sp.entries[key]
	if !ok {
		return fmt.Errorf("%w: %q", backend.ErrNotFound, key)
	}
	if cur.Version != expect {
		return s.conflict(key, expect, cur)
	}
	delete(sp.entries, key)
	sp.notify(key, 0) // 0: the key has no version any more
	return nil
}

// Update implements backend.Updater as an optimistic loop: read, call fn
// without holding the lock, then compare-and-put, retrying on conflict. fn
// therefore never runs under the Space's lock (it may even use the store)
// and may run several times, as the contract allows. An engine with
// server-side transactions would run fn inside one instead.
func (s *Store) Update(ctx context.Context, key string, fn backend.UpdateFunc) (backend.Version, error) {
	for {
		cur, err := s.Get(ctx, key)
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			return 0, err
		}
		// cur is a private copy (or the zero Entry when absent), so fn may
		// modify it freely.
		next, err := fn(cur)
		if errors.Is(err, backend.ErrSkipUpdate) {
			return cur.Version, nil
		}
		if err != nil {
			return 0, err
		}
		v, err := s.CompareAndPut(ctx, key, cur.Version, next)
		if errors.Is(err, backend.ErrConflict) {
			continue // someone else wrote in between: read again
		}
		return v, err
	}
}

// Close implements backend.Store. It closes the channels of this handle's
// watches before returning. Closing twice is a no-op.
func (s *Store) Close() error {
	sp := s.space
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for w := range s.watches {
		w.stop() // the context no longer needs to end the watch
		sp.dropWatch(w)
	}
	return nil
}

// conflict builds the error for a version mismatch. cur is the current
// entry, the zero Entry when the key does not exist.
func (s *Store) conflict(key string, expect backend.Version, cur backend.Entry) error {
	if cur.Version != 0 {
		cur.Value = clone(cur.Value)
	}
	return &backend.ConflictError{Key: key, Expected: expect, Current: cur, Known: true}
}
