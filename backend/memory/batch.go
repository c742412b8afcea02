package memory

// UpdateWith (backend.Batcher): compare-and-puts of several keys and an
// update of one more, applied together under the Space's lock.

import (
	"context"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
)

// UpdateWith implements backend.Batcher as an optimistic loop, like Update:
// read key, call fn without the lock, then under the lock check that key
// is unchanged and every put's key is at its expected version before
// writing all of them. A put that does not match fails the batch with a
// *backend.ConflictError; a change of key between the read and the write
// makes it read again.
func (s *Store) UpdateWith(ctx context.Context, puts []backend.Put, key string, fn backend.UpdateFunc) (backend.Version, []backend.Version, error) {
	if fn == nil {
		return 0, nil, errors.New("memory: UpdateWith with nil UpdateFunc")
	}
	for {
		cur, err := s.Get(ctx, key)
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			return 0, nil, err
		}
		if err := s.checkPuts(ctx, puts, key); err != nil {
			return 0, nil, err
		}
		next, err := fn(cur)
		skip := errors.Is(err, backend.ErrSkipUpdate)
		if err != nil && !skip {
			return 0, nil, err
		}
		v, vers, again, err := s.commitBatch(ctx, puts, key, cur.Version, next, skip)
		if !again {
			return v, vers, err
		}
	}
}

// checkPuts validates the keys and values of a batch and, as a fast path,
// fails it before fn runs when a put already conflicts.
func (s *Store) checkPuts(ctx context.Context, puts []backend.Put, key string) error {
	sp := s.space
	sp.mu.Lock()
	defer sp.mu.Unlock()
	seen := map[string]bool{key: true}
	for _, p := range puts {
		if err := s.usable(ctx, p.Key); err != nil {
			return err
		}
		if seen[p.Key] {
			return fmt.Errorf("%w: %q appears twice in one batch", backend.ErrInvalidKey, p.Key)
		}
		seen[p.Key] = true
		if err := backend.CheckValue(p.Value, sp.caps); err != nil {
			return err
		}
		if cur := sp.entries[p.Key]; cur.Version != p.Expect {
			return s.conflict(p.Key, p.Expect, cur)
		}
	}
	return nil
}

// commitBatch writes the batch if key is still at ver and every put
// matches; again reports that key changed since it was read.
func (s *Store) commitBatch(ctx context.Context, puts []backend.Put, key string, ver backend.Version, next []byte, skip bool) (v backend.Version, vers []backend.Version, again bool, err error) {
	sp := s.space
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if err := s.usable(ctx, key); err != nil {
		return 0, nil, false, err
	}
	if !skip {
		if err := backend.CheckValue(next, sp.caps); err != nil {
			return 0, nil, false, err
		}
	}
	if sp.entries[key].Version != ver {
		return 0, nil, true, nil
	}
	for _, p := range puts {
		if cur := sp.entries[p.Key]; cur.Version != p.Expect {
			return 0, nil, false, s.conflict(p.Key, p.Expect, cur)
		}
	}
	vers = make([]backend.Version, len(puts))
	for i, p := range puts {
		e := backend.Entry{Value: clone(p.Value), Version: sp.nextVersion()}
		sp.entries[p.Key] = e
		sp.notify(p.Key, e.Version)
		vers[i] = e.Version
	}
	if skip {
		return ver, vers, false, nil
	}
	e := backend.Entry{Value: clone(next), Version: sp.nextVersion()}
	sp.entries[key] = e
	sp.notify(key, e.Version)
	return e.Version, vers, false, nil
}
