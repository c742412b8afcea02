package bittorrent

import (
	"slices"
	"sync"
	"time"
)

// republishSet remembers the signed items a handle wrote or read, so that
// it can re-put them before storing nodes let them expire.
type republishSet struct {
	mu    sync.Mutex
	items map[Target]*repubEntry
}

// repubEntry is one remembered item.
type repubEntry struct {
	salt []byte
	item item
	used time.Time
}

func newRepublishSet() *republishSet { return &republishSet{items: make(map[Target]*repubEntry)} }

// touch records that it was written or read now; an older seq never
// replaces a newer one.
func (r *republishSet) touch(t Target, salt []byte, it item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.items[t]
	if e == nil {
		if len(r.items) >= maxRepublish {
			r.evictOldest()
		}
		r.items[t] = &repubEntry{salt: salt, item: it, used: time.Now()}
		return
	}
	if it.Seq >= e.item.Seq {
		e.item = it
	}
	e.used = time.Now()
}

// maxRepublish bounds the set; beyond it the least recently used tenth is
// forgotten (and may expire on the network).
const maxRepublish = 100_000

// evictOldest forgets the least recently used tenth. The caller holds mu.
func (r *republishSet) evictOldest() {
	type aged struct {
		t    Target
		used time.Time
	}
	all := make([]aged, 0, len(r.items))
	for t, e := range r.items {
		all = append(all, aged{t, e.used})
	}
	slices.SortFunc(all, func(a, b aged) int { return a.used.Compare(b.used) })
	for _, a := range all[:len(all)/10+1] {
		delete(r.items, a.t)
	}
}

// known returns the item remembered for t, if any.
func (r *republishSet) known(t Target) (item, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.items[t]; e != nil {
		return e.item, true
	}
	return item{}, false
}

// due returns the entries used within window and forgets the others.
func (r *republishSet) due(window time.Duration) map[Target]repubEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[Target]repubEntry, len(r.items))
	for t, e := range r.items {
		if time.Since(e.used) > window {
			delete(r.items, t)
			continue
		}
		out[t] = *e
	}
	return out
}

// Len is the number of remembered items.
func (r *republishSet) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

// republishLoop re-puts remembered items every RepublishInterval until the
// handle closes. Storing nodes refresh an item when the same signed item
// is put again (an older one is refused with 302, which is harmless).
func (s *Store) republishLoop() {
	t := time.NewTicker(s.opts.RepublishInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.RepublishNow()
	}
}

// RepublishNow re-puts, once, every signed item the handle wrote or read
// within the last RepublishWindow to the closest nodes of its target.
func (s *Store) RepublishNow() {
	for target, e := range s.repub.due(s.opts.RepublishWindow) {
		if s.ctx.Err() != nil {
			return
		}
		// Every node of the closest set is asked (askAll): each gets the item.
		v, err := s.read(s.ctx, target, e.salt, s.opts.ReadQuorum, askAll)
		if err != nil {
			s.opts.Logger.Debug("bittorrent: republish read failed", "err", err)
			continue
		}
		// Every node gets the item, also those that hold it: an equal put
		// resets their expiry.
		for _, p := range v.peers {
			if s.putOne(s.ctx, p, e.salt, e.item, 0) == nil {
				s.stats.republished.Add(1)
			}
		}
	}
}
