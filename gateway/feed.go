package gateway

import (
	"context"
	"errors"
	"sync"

	"github.com/stickypub/stickypub/core"
)

// Why a live follower's stream ended.
var (
	// ErrSlowFollower: the follower fell StreamBuffer events behind.
	ErrSlowFollower = errors.New("gateway: follower too slow, disconnected")
	// errFeedEnded: the shared subscription ended (gateway closing).
	errFeedEnded = errors.New("gateway: subscription ended")
)

// feed is the one subscription that the live followers of a topic share.
// A pump goroutine copies every delivered message to each follower's
// bounded channel without ever waiting for a follower.
type feed struct {
	s     *Server
	topic string

	ready  chan struct{} // closed when start has finished
	err    error         // start's error, set before ready closes
	client *core.Client
	sub    *core.Subscription

	mu        sync.Mutex
	listeners map[*listener]struct{}
	stopOnce  sync.Once
}

// listener is one live follower of a feed.
type listener struct {
	ch   chan event
	done chan struct{} // closed when the follower is dropped or the feed ends
	once sync.Once
	err  error // why done was closed; read after <-done
}

func (l *listener) drop(err error) {
	l.once.Do(func() { l.err = err; close(l.done) })
}

// attach registers a live follower of topic, starting the topic's feed if
// it is the first one.
func (s *Server) attach(topic string) (*feed, *listener, error) {
	l := &listener{ch: make(chan event, s.cfg.StreamBuffer), done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, ErrClosed
	}
	f, exists := s.feeds[topic]
	if !exists {
		f = &feed{s: s, topic: topic, ready: make(chan struct{}), listeners: map[*listener]struct{}{}}
		s.feeds[topic] = f
	}
	f.mu.Lock()
	f.listeners[l] = struct{}{}
	f.mu.Unlock()
	s.mu.Unlock()
	if !exists {
		f.start()
	}
	<-f.ready
	if f.err != nil {
		s.detach(f, l)
		return nil, nil, f.err
	}
	return f, l, nil
}

// detach removes a follower; the last one stops the feed.
func (s *Server) detach(f *feed, l *listener) {
	l.drop(errFeedEnded)
	s.mu.Lock()
	f.mu.Lock()
	delete(f.listeners, l)
	last := len(f.listeners) == 0
	f.mu.Unlock()
	if last && s.feeds[f.topic] == f {
		delete(s.feeds, f.topic)
	} else {
		last = false
	}
	s.mu.Unlock()
	if last {
		f.stop()
	}
}

// start subscribes (from now) with a client of its own and starts the pump.
func (f *feed) start() {
	defer close(f.ready)
	s := f.s
	c, err := s.newReader()
	if err != nil {
		f.err = err
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	sub, err := c.Subscribe(ctx, f.topic)
	if err == nil {
		err = c.StartPolling(s.cfg.PollInterval)
	}
	if err != nil {
		f.err = err
		_ = s.closeReader(ctx, c)
		s.mu.Lock()
		if s.feeds[f.topic] == f {
			delete(s.feeds, f.topic)
		}
		s.mu.Unlock()
		return
	}
	f.client, f.sub = c, sub
	s.wg.Go(f.pump)
}

// stop ends the feed's subscription (its pump then drops every follower).
func (f *feed) stop() {
	<-f.ready
	if f.err != nil {
		return
	}
	f.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), f.s.cfg.Timeout)
		defer cancel()
		if err := f.s.closeReader(ctx, f.client); err != nil {
			f.s.cfg.Logger.Warn("gateway: closing a topic's subscription", "topic", f.topic, "err", err)
		}
	})
}

func (f *feed) pump() {
	msgs, gaps := f.sub.Messages(), f.sub.Gaps()
	for msgs != nil {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			f.broadcast(messageEvent(m))
		case g, ok := <-gaps:
			if !ok {
				gaps = nil
				continue
			}
			f.broadcast(gapEvent(g))
		}
	}
	f.mu.Lock()
	for l := range f.listeners {
		l.drop(errFeedEnded)
	}
	f.mu.Unlock()
}

// broadcast offers ev to every follower; one whose buffer is full is
// dropped (it can reconnect and resume), so no follower slows the others
// or the publishers.
func (f *feed) broadcast(ev event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for l := range f.listeners {
		select {
		case <-l.done:
			continue
		default:
		}
		select {
		case l.ch <- ev:
		default:
			l.drop(ErrSlowFollower)
		}
	}
}
