package core

// The publishing API: Publish, PublishBatch, their options and receipts,
// and the hand-off of messages to a topic's publisher pipeline.

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MaxPayload is the largest message payload in bytes.
const MaxPayload = 1 << 20

// ErrPayloadTooLarge: a payload exceeds MaxPayload.
var ErrPayloadTooLarge = fmt.Errorf("core: payload larger than %d bytes", MaxPayload)

// Receipt acknowledges one published message: it is durable in the
// publisher's log and announced (in the topic coordinator in topic order,
// by the publisher's head record in publisher order).
type Receipt struct {
	// Topic is the topic published to.
	Topic string
	// Seq is the message's sequence number (per publisher and topic).
	Seq uint64
	// Time is the publisher's clock when the message was queued.
	Time time.Time
}

// PublishOption configures Publish and PublishBatch.
type PublishOption func(*publishOptions)

type publishOptions struct{ ttl time.Duration }

// WithTTL limits how long the messages are retained: subscribers do not
// receive them after Time+ttl.
func WithTTL(ttl time.Duration) PublishOption { return func(o *publishOptions) { o.ttl = ttl } }

// Publish publishes one message to topic and returns once it is durable and
// announced. Concurrent calls through one client are coalesced into one log
// write and one coordinator update. If ctx ends first, the error is a
// *PublishError and the message stays queued (it will still be published
// while the client is open): do not publish it again.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, opts ...PublishOption) (Receipt, error) {
	rs, err := c.publish(ctx, topic, [][]byte{payload}, opts)
	if err != nil {
		c.emit(Event{Kind: EventPublishError, Topic: topic, Err: err})
		return Receipt{}, err
	}
	c.emit(Event{Kind: EventPublished, Topic: topic, Seq: rs[0].Seq, Count: 1})
	return rs[0], nil
}

// PublishBatch publishes several messages with consecutive sequence numbers
// in one log write. It returns once all are durable and announced.
func (c *Client) PublishBatch(ctx context.Context, topic string, payloads [][]byte, opts ...PublishOption) ([]Receipt, error) {
	if len(payloads) == 0 {
		return nil, nil
	}
	rs, err := c.publish(ctx, topic, payloads, opts)
	if err != nil {
		c.emit(Event{Kind: EventPublishError, Topic: topic, Err: err})
		return nil, err
	}
	c.emit(Event{Kind: EventBatchPublished, Topic: topic, Seq: rs[0].Seq, Count: len(rs)})
	return rs, nil
}

func (c *Client) publish(ctx context.Context, topic string, payloads [][]byte, opts []PublishOption) ([]Receipt, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	for _, p := range payloads {
		if len(p) > MaxPayload {
			return nil, fmt.Errorf("%w: %d bytes", ErrPayloadTooLarge, len(p))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var po publishOptions
	for _, fn := range opts {
		fn(&po)
	}
	p, err := c.publisher(topic)
	if err != nil {
		return nil, err
	}
	now := c.eng.now().UnixNano()
	msgs := make([]*pendingMsg, len(payloads))
	for i, pl := range payloads {
		msgs[i] = &pendingMsg{time: now, ttl: int64(po.ttl), payload: pl}
	}
	return p.submit(ctx, msgs)
}

// submit loads the publisher if needed, queues msgs (assigning their seqs)
// and waits for the outcome.
func (p *topicPublisher) submit(ctx context.Context, msgs []*pendingMsg) ([]Receipt, error) {
	c := p.c
	var req *pubRequest
	for {
		if err := p.load(ctx); err != nil {
			c.stats.failures.Add(1)
			return nil, err
		}
		var err error
		req, err = p.enqueue(msgs)
		if errors.Is(err, errReload) {
			continue // a permanent error reset the publisher meanwhile
		}
		if err != nil {
			return nil, err
		}
		break
	}
	// Hash the messages here, in the caller's goroutine, so that hashing
	// overlaps the flusher's round trips for the previous batch. (If the
	// flusher takes the messages first it hashes them itself; both produce
	// the same leaves.) The flusher signs the segment once.
	p.hashLeaves(msgs)
	if !p.flushDirect(ctx) {
		p.signal()
	}
	return p.wait(ctx, req)
}

// flushDirect writes the queued batch on the caller's goroutine when the
// pipeline is idle (nobody holds flushMu, nothing in flight), which spares
// a lone publisher two goroutine hand-offs per publish; it reports whether
// it took the pipeline. The write runs under ctx and the client's context
// both. A permanent error resets the publisher as in flushLoop; a batch
// that fails otherwise, or whose caller gave up, is left in flight for the
// run goroutine, which retries it exactly as formed, as it retries its
// own; the caller then waits like any other.
func (p *topicPublisher) flushDirect(ctx context.Context) bool {
	if !p.flushMu.TryLock() {
		return false
	}
	defer p.flushMu.Unlock()
	p.mu.Lock()
	if !p.loaded || p.closing || p.inflight != nil || len(p.queue) == 0 {
		p.mu.Unlock()
		return false
	}
	b := p.takeBatch()
	p.mu.Unlock()
	c := p.c
	fctx, cancel := withBoth(ctx, c.ctx)
	err := p.flush(fctx, b)
	cancel()
	if err != nil {
		// The run goroutine takes it from here (it was not woken yet); a
		// write cut short by the caller leaving is not a failure.
		if ctx.Err() == nil {
			p.noteFailure(err)
			if permanent(err) {
				p.reset(b, err)
				return true
			}
			c.stats.retries.Add(1)
		}
		p.signal()
		return true
	}
	p.flushed(c.ctx, b)
	p.mu.Lock()
	more := len(p.queue) > 0
	p.mu.Unlock()
	if more {
		p.signal()
	}
	return true
}

// wait waits for req's outcome.
func (p *topicPublisher) wait(ctx context.Context, req *pubRequest) ([]Receipt, error) {
	c := p.c
	select {
	case r := <-req.done:
		if r.err != nil {
			c.stats.failures.Add(1)
			return nil, &PublishError{Topic: p.tk.name, FirstSeq: req.first, LastSeq: req.last, Err: r.err,
				OutcomeUnknown: r.unknown, msgs: req.msgs, c: c}
		}
		c.stats.published.Add(uint64(len(req.msgs)))
		return req.receipts(p.tk.name), nil
	case <-ctx.Done():
		return nil, &PublishError{Topic: p.tk.name, FirstSeq: req.first, LastSeq: req.last, Err: ctx.Err(),
			StillQueued: true, msgs: req.msgs, req: req, c: c}
	}
}

func (c *Client) publisher(topic string) (*topicPublisher, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClientClosed
	}
	if p, ok := c.pubs[topic]; ok {
		return p, nil
	}
	p := &topicPublisher{c: c, tk: newTopicKeys(topic), wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	c.pubs[topic] = p
	c.wg.Go(p.run)
	return p, nil
}

func (r *pubRequest) receipts(topic string) []Receipt {
	rs := make([]Receipt, len(r.msgs))
	for i, m := range r.msgs {
		rs[i] = Receipt{Topic: topic, Seq: m.seq, Time: time.Unix(0, m.time)}
	}
	return rs
}

// withBoth returns a context that ends when ctx or other ends (with ctx's
// values), and its cancel function.
func withBoth(ctx, other context.Context) (context.Context, context.CancelFunc) {
	both, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return both, func() { stop(); cancel() }
}
