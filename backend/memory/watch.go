package memory

import (
	"context"

	"github.com/stickypub/stickypub/backend"
)

// watch is one open Watch call.
type watch struct {
	key   string
	owner *Store
	// ch has one slot. It always holds the newest unread version: a writer
	// that finds it full replaces the old version (coalescing) instead of
	// waiting for the reader.
	ch chan backend.Version
	// stop cancels the context.AfterFunc that ends the watch.
	stop func() bool
	// closed reports that ch was closed; guarded by the Space's mu.
	closed bool
}

// Watch implements backend.Watcher. The channel receives the new version of
// key after each change (0 after a delete) made through any handle on the
// Space, and is closed when ctx is done or this handle is closed. Writers
// never block on it: a slow reader sees only the newest version.
//
// No goroutine waits for ctx: context.AfterFunc runs the cleanup when ctx is
// done, and Close runs it for every open watch of the handle.
func (s *Store) Watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	sp := s.space
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if err := s.usable(ctx, key); err != nil {
		return nil, err
	}
	w := &watch{key: key, owner: s, ch: make(chan backend.Version, 1)}
	if sp.watches[key] == nil {
		sp.watches[key] = make(map[*watch]struct{})
	}
	sp.watches[key][w] = struct{}{}
	s.watches[w] = struct{}{}
	// If ctx ends while we still hold the lock, the callback simply waits
	// for it and then removes the watch.
	w.stop = context.AfterFunc(ctx, func() {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		sp.dropWatch(w)
	})
	return w.ch, nil
}

// notify tells every watch of key about version v without blocking. The
// caller holds sp.mu, which is also what serialises notify with closing a
// channel in dropWatch.
func (sp *Space) notify(key string, v backend.Version) {
	for w := range sp.watches[key] {
		select {
		case w.ch <- v:
			continue
		default:
		}
		// Full: drop the unread (older) version and put the newest one in.
		// Only writers send, and they hold sp.mu, so the second send finds
		// a free slot; the default branch is mere belt and braces.
		select {
		case <-w.ch:
		default:
		}
		select {
		case w.ch <- v:
		default:
		}
	}
}

// dropWatch unregisters w and closes its channel, once. The caller holds
// sp.mu.
func (sp *Space) dropWatch(w *watch) {
	if w.closed {
		return
	}
	w.closed = true
	if set := sp.watches[w.key]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(sp.watches, w.key)
		}
	}
	delete(w.owner.watches, w)
	close(w.ch)
}
