package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/stickypub/stickypub/core"
)

// retryMillis is the reconnection delay the stream suggests to EventSource.
const retryMillis = 1000

// handleEvents streams a topic as Server-Sent Events. Without a position
// the follower gets what is published from now on (sharing the topic's
// live subscription); ?from=start sends the retained history first, with
// a subscription of the follower's own. Last-Event-ID or ?from=CURSOR
// resumes after a cursor.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	topic := r.PathValue("topic")
	if err := checkTopic(topic); err != nil {
		fail(w, err)
		return
	}
	from := r.URL.Query().Get("from")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		from = id
	}
	var src source
	switch from {
	case "", "now":
		f, l, err := s.attach(topic)
		if err != nil {
			fail(w, err)
			return
		}
		defer s.detach(f, l)
		src = source{events: l.ch, done: l.done, err: func() error { return l.err }}
	default:
		var opts []core.SubscribeOption
		if from == "start" {
			opts = []core.SubscribeOption{core.FromStart()}
		} else {
			var err error
			if opts, err = resumeOptions(from); err != nil {
				fail(w, err)
				return
			}
		}
		own, err := s.subscribeOwn(topic, opts)
		if err != nil {
			fail(w, err)
			return
		}
		defer own.close()
		src = own.source()
	}
	s.mu.Lock()
	s.streams++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.streams--
		s.mu.Unlock()
	}()
	err := s.stream(r.Context(), w, src)
	if err != nil && !errors.Is(err, context.Canceled) {
		s.cfg.Logger.Debug("gateway: stream ended", "topic", topic, "err", err)
	}
}

// source is where a stream's events come from.
type source struct {
	events <-chan event
	done   <-chan struct{} // closed when no more events come
	err    func() error    // why, after done
}

// stream writes the SSE response until the client leaves, the source ends
// or the gateway closes.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, src source) error {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	deadline := func() error {
		if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	write := func(format string, args ...any) error {
		if err := deadline(); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write("retry: %d\n: subscribed\n\n", retryMillis); err != nil {
		return err
	}
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return ErrClosed
		case <-src.done:
			return src.err()
		case <-beat.C:
			if err := write(": ping\n\n"); err != nil {
				return err
			}
		case ev := <-src.events:
			if err := deadline(); err != nil {
				return err
			}
			if err := writeEvent(w, ev); err != nil {
				return err
			}
			// Write what else is already queued before one flush.
			for more := true; more; {
				select {
				case ev := <-src.events:
					if err := writeEvent(w, ev); err != nil {
						return err
					}
				default:
					more = false
				}
			}
			if err := write(""); err != nil {
				return err
			}
		}
	}
}

func writeEvent(w io.Writer, ev event) error {
	var err error
	if ev.id != "" {
		_, err = fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.id, ev.name, ev.data)
	} else {
		_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.name, ev.data)
	}
	return err
}

// ownStream is a follower's own subscription (history or resume).
type ownStream struct {
	s      *Server
	client *core.Client
	events chan event
	done   chan struct{}
	cancel context.CancelFunc
	err    error
}

// subscribeOwn subscribes with a client of the follower's own; a pump
// copies messages and gaps to the stream, waiting for the follower (the
// subscription only delivers as fast as the follower reads).
func (s *Server) subscribeOwn(topic string, opts []core.SubscribeOption) (*ownStream, error) {
	c, err := s.newReader()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	sub, err := c.Subscribe(ctx, topic, append(opts, core.WithBuffer(s.cfg.StreamBuffer))...)
	if err == nil {
		err = c.StartPolling(s.cfg.PollInterval)
	}
	if err != nil {
		_ = s.closeReader(ctx, c)
		return nil, err
	}
	pctx, pcancel := context.WithCancel(s.ctx)
	o := &ownStream{s: s, client: c, events: make(chan event), done: make(chan struct{}), cancel: pcancel}
	s.wg.Go(func() {
		defer close(o.done)
		msgs, gaps := sub.Messages(), sub.Gaps()
		for msgs != nil {
			var ev event
			select {
			case <-pctx.Done():
				o.err = pctx.Err()
				return
			case m, ok := <-msgs:
				if !ok {
					msgs = nil
					continue
				}
				ev = messageEvent(m)
			case g, ok := <-gaps:
				if !ok {
					gaps = nil
					continue
				}
				ev = gapEvent(g)
			}
			select {
			case o.events <- ev:
			case <-pctx.Done():
				o.err = pctx.Err()
				return
			}
		}
		o.err = errFeedEnded
	})
	return o, nil
}

func (o *ownStream) source() source {
	return source{events: o.events, done: o.done, err: func() error { return o.err }}
}

// close stops the pump and removes the follower's subscription.
func (o *ownStream) close() {
	o.cancel()
	<-o.done
	ctx, cancel := context.WithTimeout(context.Background(), o.s.cfg.Timeout)
	defer cancel()
	if err := o.s.closeReader(ctx, o.client); err != nil {
		o.s.cfg.Logger.Warn("gateway: closing a follower's subscription", "err", err)
	}
}
