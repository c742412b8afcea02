package redis

import (
	"context"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickypub/stickypub/backend"
)

// Watch tuning.
const (
	// watchReadyTimeout bounds the wait for the server to confirm a new
	// subscription.
	watchReadyTimeout = 10 * time.Second
	// unsubscribeTimeout bounds an UNSUBSCRIBE after the last watcher of a
	// key leaves.
	unsubscribeTimeout = 5 * time.Second
	// pubsubBuffer is the go-redis channel size between the connection
	// reader and the dispatcher.
	pubsubBuffer = 1024
)

// Watch implements backend.Watcher. The returned channel receives the new
// version after each change of key (0 after a delete, and 0 after the
// subscription was re-established following a connection loss, since
// changes may have been missed). It is closed when ctx is done or the Store
// is closed. Watch returns once the server has confirmed the subscription,
// so every change committed after it returns is notified (barring a
// connection loss, which the 0 then reports).
func (s *Store) Watch(ctx context.Context, key string) (<-chan backend.Version, error) {
	if err := s.check(ctx, "watch", key); err != nil {
		return nil, err
	}
	return s.watch.add(ctx, key)
}

// watchHub multiplexes every watcher of a Store onto one PubSub connection.
type watchHub struct {
	s *Store

	// subMu serialises SUBSCRIBE and UNSUBSCRIBE so that an unsubscribe of
	// an abandoned channel cannot overtake a new subscribe of it.
	subMu sync.Mutex

	mu      sync.Mutex
	ps      *goredis.PubSub
	subs    map[string]*subscription // by channel
	closed  bool
	closing chan struct{} // closed by close
	done    chan struct{} // closed when the dispatcher exits (nil: none started)
}

// subscription is one subscribed channel and its watchers.
type subscription struct {
	watchers  map[*watcher]struct{}
	ready     chan struct{} // closed at the first subscribe confirmation
	confirmed bool
}

// watcher is one Watch call.
type watcher struct {
	ch     chan backend.Version
	closed bool
	stop   func() bool // unregisters the context.AfterFunc
}

func (h *watchHub) init(s *Store) {
	h.s = s
	h.subs = make(map[string]*subscription)
	h.closing = make(chan struct{})
}

// add registers a watcher of key and waits for the subscription.
func (h *watchHub) add(ctx context.Context, key string) (<-chan backend.Version, error) {
	channel := h.s.prefix + key
	w := &watcher{ch: make(chan backend.Version, 1)}

	h.subMu.Lock()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.subMu.Unlock()
		return nil, fmt.Errorf("redis watch %q: %w", key, backend.ErrClosed)
	}
	if h.ps == nil {
		h.ps = h.s.client.Subscribe(context.Background())
		msgs := h.ps.ChannelWithSubscriptions(goredis.WithChannelSize(pubsubBuffer))
		h.done = make(chan struct{})
		go h.dispatch(msgs, h.done)
	}
	ps := h.ps
	sub := h.subs[channel]
	isNew := sub == nil
	if isNew {
		sub = &subscription{watchers: make(map[*watcher]struct{}), ready: make(chan struct{})}
		h.subs[channel] = sub
	}
	sub.watchers[w] = struct{}{}
	h.mu.Unlock()
	if isNew {
		if err := ps.Subscribe(ctx, channel); err != nil {
			h.subMu.Unlock()
			h.remove(channel, w)
			return nil, h.s.wrap(ctx, "watch", key, err)
		}
	}
	h.subMu.Unlock()

	timer := time.NewTimer(watchReadyTimeout)
	defer timer.Stop()
	select {
	case <-sub.ready:
	case <-ctx.Done():
		h.remove(channel, w)
		return nil, fmt.Errorf("redis watch %q: %w", key, ctx.Err())
	case <-h.closing:
		return nil, fmt.Errorf("redis watch %q: %w", key, backend.ErrClosed)
	case <-timer.C:
		h.remove(channel, w)
		return nil, fmt.Errorf("redis watch %q on %s: %w: subscription not confirmed within %s",
			key, h.s.where, backend.ErrUnavailable, watchReadyTimeout)
	}
	stop := context.AfterFunc(ctx, func() { h.remove(channel, w) })
	h.mu.Lock()
	if w.closed {
		stop()
	} else {
		w.stop = stop
	}
	h.mu.Unlock()
	return w.ch, nil
}

// remove ends watcher w of channel, closing its Go channel, and
// unsubscribes the channel when w was its last watcher.
func (h *watchHub) remove(channel string, w *watcher) {
	h.mu.Lock()
	if w.closed {
		h.mu.Unlock()
		return
	}
	w.closed = true
	close(w.ch)
	last := false
	if sub := h.subs[channel]; sub != nil {
		delete(sub.watchers, w)
		if len(sub.watchers) == 0 {
			delete(h.subs, channel)
			last = true
		}
	}
	h.mu.Unlock()
	if !last {
		return
	}
	h.subMu.Lock()
	defer h.subMu.Unlock()
	h.mu.Lock()
	abandoned := !h.closed && h.subs[channel] == nil
	ps := h.ps
	h.mu.Unlock()
	if abandoned {
		ctx, cancel := context.WithTimeout(context.Background(), unsubscribeTimeout)
		defer cancel()
		// An error leaves the channel subscribed until the next reconnect:
		// its messages find no watcher and are dropped.
		_ = ps.Unsubscribe(ctx, channel)
	}
}

// dispatch forwards PubSub traffic to the watchers until the PubSub closes.
func (h *watchHub) dispatch(msgs <-chan any, done chan struct{}) {
	defer close(done)
	for m := range msgs {
		switch m := m.(type) {
		case *goredis.Message:
			v, err := parseVersionString(m.Payload)
			if err != nil {
				v = 0 // not ours or garbled: still a reason to re-read
			}
			h.notify(m.Channel, v)
		case *goredis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			h.mu.Lock()
			sub := h.subs[m.Channel]
			switch {
			case sub == nil:
			case !sub.confirmed:
				sub.confirmed = true
				close(sub.ready)
			default:
				// Resubscribed after a reconnect: messages may be lost.
				for w := range sub.watchers {
					backend.Offer(w.ch, 0)
				}
			}
			h.mu.Unlock()
		}
	}
}

// notify sends v to every watcher of channel.
func (h *watchHub) notify(channel string, v backend.Version) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if sub := h.subs[channel]; sub != nil {
		for w := range sub.watchers {
			backend.Offer(w.ch, v)
		}
	}
}

// close ends every watcher and the PubSub connection, and waits for the
// dispatcher to exit.
func (h *watchHub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.closing)
	for _, sub := range h.subs {
		for w := range sub.watchers {
			if w.stop != nil {
				w.stop()
			}
			w.closed = true
			close(w.ch)
		}
	}
	h.subs = nil
	ps, done := h.ps, h.done
	h.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
		<-done
	}
}
