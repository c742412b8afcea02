package core

// Push without a goroutine per subscription: one coordinator watch and one
// safety ticker per topic and engine, and a poll goroutine per subscription
// only while it has something to do.

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// pushSafetyInterval is how often a push-driven subscription polls anyway,
// because change notifications are hints that can be lost.
const pushSafetyInterval = 2 * time.Second

// topicPush follows one topic's coordinator for every pushed subscription
// of an engine's clients on that topic: one store watch, one goroutine and
// one ticker, however many subscriptions there are. A notification (and
// each safety tick) kicks every subscription, which polls in a goroutine
// of its own that ends once the poll finds nothing more to do. An idle
// subscription therefore holds no goroutine, no timer and no watch.
type topicPush struct {
	e      *engine
	tk     topicKeys
	cancel context.CancelFunc

	mu sync.Mutex // guards subs, each one's pushIdx, rr and dead
	// subs are the subscriptions, each at its pushIdx (a slice: 8 bytes
	// a subscription, where a map's slots cost about three times that).
	subs []*Subscription
	rr   int  // which subscription the next safety tick kicks anyway
	dead bool // the watch ended (store or engine closed): join no more
	// audited is when one of the subscriptions last ran the topic's
	// periodic head audit.
	audited time.Time
	// base is the registered heads the last FromNow subscription started
	// from (see registeredShared).
	base *sharedBase
}

// sharedBase is a registered-heads map (never written) and what it was
// computed from: the coordinator's registry root and hot heads.
type sharedBase struct {
	registry Ref
	hot      map[PublisherID]uint64
	heads    map[PublisherID]uint64
}

// pushKeys returns the keys of topic, those of its push on this engine
// if it has one: the subscriptions of a topic then share their strings.
func (e *engine) pushKeys(topic string) *topicKeys {
	e.mu.Lock()
	tp := e.pushes[topic]
	e.mu.Unlock()
	if tp != nil {
		return &tp.tk
	}
	tk := newTopicKeys(topic)
	return &tk
}

// registeredShared returns e.registered(tk, st) and whether the map is
// shared: while the topic has a push on this engine, subscriptions
// starting FromNow at the same registry and hot heads (most of them: a
// subscription changes only the coordinator's subscriber list) share one
// map, which none of them writes (see Subscription.ownBase), instead of
// each holding a copy.
func (e *engine) registeredShared(ctx context.Context, tk topicKeys, st *coordState) (map[PublisherID]uint64, bool, error) {
	e.mu.Lock()
	tp := e.pushes[tk.name]
	e.mu.Unlock()
	if tp != nil {
		tp.mu.Lock()
		b := tp.base
		tp.mu.Unlock()
		if b != nil && b.registry == st.Registry && maps.Equal(b.hot, st.hot) {
			return b.heads, true, nil
		}
	}
	heads, err := e.registered(ctx, tk, st)
	if err != nil || tp == nil {
		return heads, false, err
	}
	tp.mu.Lock()
	tp.base = &sharedBase{registry: st.Registry, hot: maps.Clone(st.hot), heads: heads}
	tp.mu.Unlock()
	return heads, true, nil
}

// kickKind says why a subscription is kicked.
type kickKind uint8

const (
	kickStart  kickKind = iota // first poll after subscribing
	kickCoord                  // the coordinator changed
	kickSafety                 // periodic safety poll
	kickHint                   // a head hint (publisher order)
)

// joinPush adds s to the push of its topic on engine e, starting it (the
// coordinator watch) on first use, and kicks s for its first poll.
func (e *engine) joinPush(w backend.Watcher, s *Subscription) error {
	for {
		e.mu.Lock()
		tp := e.pushes[s.tk.name]
		if tp == nil {
			ctx, cancel := context.WithCancel(e.ctx)
			ch, err := w.Watch(ctx, s.tk.coord)
			if err != nil {
				e.mu.Unlock()
				cancel()
				return err
			}
			tp = &topicPush{e: e, tk: *s.tk, cancel: cancel}
			e.pushes[s.tk.name] = tp
			e.wg.Go(func() { tp.run(ctx, ch) })
		}
		e.mu.Unlock()
		tp.mu.Lock()
		if tp.dead {
			tp.mu.Unlock()
			e.dropPush(tp)
			continue
		}
		s.pushIdx = int32(len(tp.subs))
		tp.subs = append(tp.subs, s)
		tp.mu.Unlock()
		s.pushTopic = tp
		s.kick(kickStart)
		return nil
	}
}

// leave removes s; the last subscription to leave stops the watch.
func (tp *topicPush) leave(s *Subscription) {
	tp.mu.Lock()
	if i := int(s.pushIdx); i < len(tp.subs) && tp.subs[i] == s {
		n := len(tp.subs) - 1
		tp.subs[i] = tp.subs[n]
		tp.subs[i].pushIdx = int32(i)
		tp.subs[n] = nil
		tp.subs = tp.subs[:n]
		if cap(tp.subs) > 64 && n < cap(tp.subs)/4 {
			tp.subs = slices.Clone(tp.subs) // most left: give the room back
		}
	}
	last := len(tp.subs) == 0 && !tp.dead
	if last {
		tp.dead = true
	}
	tp.mu.Unlock()
	if last {
		tp.cancel()
		tp.e.dropPush(tp)
	}
}

// dropPush forgets tp if it is still the topic's push.
func (e *engine) dropPush(tp *topicPush) {
	e.mu.Lock()
	if e.pushes[tp.tk.name] == tp {
		delete(e.pushes, tp.tk.name)
	}
	e.mu.Unlock()
}

// run forwards coordinator notifications and safety ticks to the
// subscriptions until the watch ends.
func (tp *topicPush) run(ctx context.Context, ch <-chan backend.Version) {
	t := time.NewTicker(pushSafetyInterval)
	defer t.Stop()
	defer func() {
		tp.mu.Lock()
		tp.dead = true
		tp.mu.Unlock()
		tp.cancel()
		tp.e.dropPush(tp)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			tp.kickAll(kickCoord)
		case <-t.C:
			tp.kickStale(ctx)
		}
	}
}

func (tp *topicPush) kickAll(k kickKind) {
	tp.mu.Lock()
	subs := slices.Clone(tp.subs)
	tp.mu.Unlock()
	for _, s := range subs {
		s.kick(k)
	}
}

// kickStale is the safety poll: it reads the coordinator once and kicks
// the subscriptions that may have missed something, not those whose last
// poll ended complete at this very coordinator version (in topic order:
// nothing was withheld or left behind, and nothing changed since). One
// subscription is kicked anyway, which runs the topic's periodic head
// audit for all of them (see auditDue). So an idle topic costs one read
// per safety interval, however many subscriptions follow it.
func (tp *topicPush) kickStale(ctx context.Context) {
	_, v, err := tp.e.readCoordShared(ctx, tp.tk)
	tp.mu.Lock()
	var subs []*Subscription
	if n := len(tp.subs); n > 0 {
		tp.rr = (tp.rr + 1) % n // the one kicked anyway, in turn
	}
	for i, s := range tp.subs {
		if i == tp.rr || err != nil || v == 0 || s.headHints() != nil || s.idleAt.Load() != uint64(v) {
			subs = append(subs, s)
		}
	}
	tp.mu.Unlock()
	for _, s := range subs {
		s.kick(kickSafety)
	}
}

// claimAudit reports whether the topic's periodic head audit, every d, is
// due now, and if so claims it: the engine's subscriptions on the topic
// audit it once per interval between them, not each of them.
func (tp *topicPush) claimAudit(now time.Time, d time.Duration) bool {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if now.Sub(tp.audited) < d {
		return false
	}
	tp.audited = now
	return true
}

// pushRunner is a subscription's on-demand poll goroutine: at most one
// runs, and a kick while it runs makes it poll once more. Guarded by the
// subscription's runMu (kept apart so that the flags pack with others).
type pushRunner struct {
	running bool
	again   bool
	stopped bool // unsubscribing: start no more
}

// kick makes the subscription poll soon: it starts the poll goroutine, or
// asks the running one for another round.
func (s *Subscription) kick(k kickKind) {
	if h := s.headHints(); h != nil {
		switch k {
		case kickCoord:
			h.setCoord()
		case kickSafety:
			h.setWide()
		}
	}
	r := &s.runner
	s.runMu.Lock()
	if r.stopped {
		s.runMu.Unlock()
		return
	}
	if r.running {
		r.again = true
		s.runMu.Unlock()
		return
	}
	r.running = true
	var ctx context.Context
	if s.life != nil {
		ctx = s.life.ctx
	} else {
		ctx, s.runCancel = context.WithCancel(context.Background())
	}
	s.wg.Add(1)
	s.runMu.Unlock()
	go s.pushRounds(ctx)
}

// pushRounds polls until a round ends without a new kick.
func (s *Subscription) pushRounds(ctx context.Context) {
	defer s.wg.Done()
	r := &s.runner
	defer func() {
		s.runMu.Lock()
		r.running = false
		if s.runCancel != nil {
			s.runCancel()
			s.runCancel = nil
		}
		s.runMu.Unlock()
	}()
	for {
		s.runMu.Lock()
		r.again = false
		s.runMu.Unlock()
		if _, err := s.pollEmit(ctx); err != nil && ctx.Err() != nil {
			return
		}
		if h := s.headHints(); h != nil {
			h.watchNewAsync(s.life.ctx, *s.tk, s.knownPublishers)
		}
		s.runMu.Lock()
		if !r.again || r.stopped {
			s.runMu.Unlock()
			return
		}
		s.runMu.Unlock()
	}
}

// stopPush ends push for s: no new poll goroutine starts, and the running
// one's context is cancelled (the caller then cancels s.life, if any, and
// waits for s.wg).
func (s *Subscription) stopPush() {
	s.runMu.Lock()
	s.runner.stopped = true
	if s.runCancel != nil {
		s.runCancel()
	}
	s.runMu.Unlock()
	if tp := s.pushTopic; tp != nil {
		tp.leave(s)
	}
}

// startPush follows the coordinator's change notifications through the
// topic's shared watch (and, in publisher order, the head records of the
// known publishers): each one, and a periodic safety poll, triggers a
// poll. The first poll delivers the history of a FromStart subscription.
func (s *Subscription) startPush(w backend.Watcher) error {
	if !s.c.eng.ordered {
		// Publisher order: a publish moves only its head record.
		hints := newHeadHints(w, &s.wg, func() { s.kick(kickHint) })
		s.pollMu.Lock()
		s.hints = hints
		s.pollMu.Unlock()
	}
	return s.c.eng.joinPush(w, s)
}

// canPush reports whether store can notify changes (push delivery).
func canPush(store backend.Store) bool {
	_, ok := store.(backend.Watcher)
	return ok
}
