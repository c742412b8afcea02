package core

// Push in publisher order: watching head records and hint-driven polls.

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/stickypub/stickypub/backend"
)

// Push in publisher order. A publish there changes only the publisher's head
// record, not the coordinator, so a pushed subscription also watches the
// head record of every publisher it knows (up to headWatchMax). A hint
// marks that publisher dirty and wakes the push loop; the next poll then
// reads the coordinator (new registrations, leases) and only the dirty
// heads, plus every live publisher whose head is not watched. Hints are
// only hints: the safety poll (pushSafetyInterval) reads every live head,
// as a poll without push does.

// headWatchMax bounds the head records one subscription watches. Beyond it,
// the heads that are not watched are read at every poll while their lease
// is live.
const headWatchMax = 1024

// headHints is the head-watch state of a pushed publisher-order
// subscription. Its own mutex guards it: the push loop and its forwarders
// write it, polls (under pollMu) read it.
type headHints struct {
	mu      sync.Mutex
	w       backend.Watcher
	watched map[PublisherID]bool
	dirty   map[PublisherID]bool
	wide    bool   // the next poll reads every live head
	coord   bool   // the coordinator changed: the next poll reads it
	kick    func() // a hint arrived: make the subscription poll
	wg      *sync.WaitGroup
	// watching: a watchNewAsync goroutine runs; rewatch: it runs watchNew
	// once more (publishers may have become known meanwhile).
	watching, rewatch bool
}

func newHeadHints(w backend.Watcher, wg *sync.WaitGroup, kick func()) *headHints {
	return &headHints{w: w, wg: wg, watched: map[PublisherID]bool{}, dirty: map[PublisherID]bool{}, wide: true,
		kick: kick}
}

// mark records a hint for p (nil: a coordinator hint) and kicks a poll.
func (h *headHints) mark(p *PublisherID) {
	if p != nil {
		h.mu.Lock()
		h.dirty[*p] = true
		h.mu.Unlock()
	}
	h.kick()
}

// setWide makes the next poll read every live head (safety poll).
func (h *headHints) setWide() {
	h.mu.Lock()
	h.wide = true
	h.mu.Unlock()
}

// setCoord makes the next poll read the coordinator (it changed).
func (h *headHints) setCoord() {
	h.mu.Lock()
	h.coord = true
	h.mu.Unlock()
}

// take returns what the next poll must read: wide (the coordinator and
// every live head), or the coordinator if coord, the dirty publishers, and
// the set of watched ones (whose heads need not be read without a hint).
// It clears the flags and the dirty set; a poll that does not complete
// restores them with untake.
func (h *headHints) take() (wide, coord bool, dirty, watched map[PublisherID]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	wide, coord, dirty = h.wide, h.coord || h.wide, h.dirty
	h.wide, h.coord, h.dirty = false, false, map[PublisherID]bool{}
	return wide, coord, dirty, maps.Clone(h.watched)
}

// untake restores what take cleared, for a poll that failed.
func (h *headHints) untake(wide bool, dirty map[PublisherID]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.wide = h.wide || wide
	h.coord = true
	for p := range dirty {
		h.dirty[p] = true
	}
}

// watchStarts bounds the head watches one subscription starts at a time.
// Starting a watch waits for the store to confirm it (a round trip on
// Redis), so starting a hundred one after another kept a new subscriber's
// first live polls waiting for as many round trips.
const watchStarts = 64

// watchNewAsync runs watchNew in the background, with the publishers known
// then (known is called on that goroutine: it takes the poll lock), unless
// it is running already: then it runs once more when the running one
// ends. Polls go on meanwhile: a live publisher whose head is not watched
// yet is read at every poll, and watchNew marks each head it starts
// watching, so what moved before its watch started is read.
func (h *headHints) watchNewAsync(ctx context.Context, tk topicKeys, known func() []PublisherID) {
	h.mu.Lock()
	if h.watching {
		h.rewatch = true
		h.mu.Unlock()
		return
	}
	h.watching = true
	h.mu.Unlock()
	h.wg.Go(func() {
		for {
			h.watchNew(ctx, tk, known())
			h.mu.Lock()
			if !h.rewatch || ctx.Err() != nil {
				h.watching, h.rewatch = false, false
				h.mu.Unlock()
				return
			}
			h.rewatch = false
			h.mu.Unlock()
		}
	})
}

// watchNew starts watching the head records of the known publishers that
// are not watched yet (up to headWatchMax), up to watchStarts at a time,
// and marks them dirty: a head that moved between its last read and the
// watch start is read again. It reports whether it started any (and then
// wakes the loop).
func (h *headHints) watchNew(ctx context.Context, tk topicKeys, known []PublisherID) bool {
	h.mu.Lock()
	var add []PublisherID
	for _, p := range known {
		if len(h.watched)+len(add) >= headWatchMax {
			break
		}
		if !h.watched[p] {
			add = append(add, p)
		}
	}
	h.mu.Unlock()
	var (
		started atomic.Bool
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, watchStarts)
	for _, p := range add {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ch, err := h.w.Watch(ctx, tk.head(p))
			if err != nil {
				return // read at every poll instead
			}
			h.mu.Lock()
			h.watched[p], h.dirty[p] = true, true
			h.mu.Unlock()
			started.Store(true)
			h.wg.Go(func() { h.forward(p, ch) })
		})
	}
	wg.Wait()
	if started.Load() {
		h.mark(nil)
	}
	return started.Load()
}

// forward turns the notifications of p's head into hints, and forgets the
// watch when its channel closes (subscription or store closed).
func (h *headHints) forward(p PublisherID, ch <-chan backend.Version) {
	for range ch {
		h.mark(&p)
	}
	h.mu.Lock()
	delete(h.watched, p)
	h.mu.Unlock()
}

// knownPublishers returns the publishers the subscription knows.
func (s *Subscription) knownPublishers() []PublisherID {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	return slices.SortedFunc(maps.Keys(s.known), comparePID)
}

// narrowHeads reduces want (the live publishers a poll would read) to what
// a hint-driven poll must read: the dirty publishers and the live ones whose
// head is not watched.
func narrowHeads(want, dirty, watched map[PublisherID]bool) {
	for p := range want {
		if watched[p] && !dirty[p] {
			delete(want, p)
		}
	}
	for p := range dirty {
		want[p] = true
	}
}

// untakeHints gives back the hints a failed poll took.
func (s *Subscription) untakeHints(wide bool, dirty map[PublisherID]bool) {
	if h := s.headHints(); h != nil {
		h.untake(wide, dirty)
	}
}
