package bolt

import (
	"context"

	"github.com/stickypub/stickypub/backend"
)

// watcher is one channel returned by Watch.
type watcher struct {
	key  string
	ch   chan backend.Version
	stop func() bool // stops the context.AfterFunc that removes the watcher
}

// Watch implements backend.Watcher for writers in this process (bbolt has no
// cross-process notification). After each commit that changed key, the
// channel receives the key's new version, or 0 when the commit deleted it.
// The channel has a buffer of one and sends never block the committer: when
// the buffer is full its value is replaced by the newer version, so a slow
// receiver still learns the latest state. The channel is closed when ctx is
// done or the store is closed.
func (s *Store) Watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, s.errClosed
	}
	if err := backend.CheckKey(key, s.caps); err != nil {
		return nil, err
	}
	w := &watcher{key: key, ch: make(chan backend.Version, 1)}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.watchClosed {
		return nil, s.errClosed
	}
	set := s.watchers[key]
	if set == nil {
		set = make(map[*watcher]struct{})
		s.watchers[key] = set
	}
	set[w] = struct{}{}
	w.stop = context.AfterFunc(ctx, func() { s.unwatch(w) })
	return w.ch, nil
}

// unwatch removes w and closes its channel, unless that already happened.
func (s *Store) unwatch(w *watcher) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	set := s.watchers[w.key]
	if _, ok := set[w]; !ok {
		return
	}
	delete(set, w)
	if len(set) == 0 {
		delete(s.watchers, w.key)
	}
	close(w.ch)
}

// closeWatchers closes every watch channel; later Watch calls fail.
func (s *Store) closeWatchers() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.watchClosed = true
	for key, set := range s.watchers {
		for w := range set {
			w.stop()
			close(w.ch)
		}
		delete(s.watchers, key)
	}
}

// notify tells the watchers of every key the batch changed. It runs on the
// committer goroutine, the only sender, so the replace-when-full dance
// cannot race with another send.
func (s *Store) notify(batch []*op) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if len(s.watchers) == 0 {
		return
	}
	offer := func(o *op) {
		if o.changed {
			for w := range s.watchers[o.key] {
				backend.Offer(w.ch, o.ver)
			}
		}
	}
	for _, o := range batch {
		for _, p := range o.puts {
			offer(p)
		}
		offer(o)
	}
}
