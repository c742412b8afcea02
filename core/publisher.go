package core

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// MaxPayload is the largest message payload in bytes.
const MaxPayload = 1 << 20

// ErrPayloadTooLarge: a payload exceeds MaxPayload.
var ErrPayloadTooLarge = fmt.Errorf("core: payload larger than %d bytes", MaxPayload)

// Receipt acknowledges one published message: it is durable in the
// publisher's log and announced in the topic coordinator.
type Receipt struct {
	Topic string
	Seq   uint64
	Time  time.Time
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
	if err := p.load(ctx); err != nil {
		c.stats.failures.Add(1)
		return nil, err
	}
	req, rs, msgs, err := p.enqueue(payloads, po.ttl)
	if err != nil {
		return nil, err
	}
	// Sign here, in the caller's goroutine, so that signing overlaps the
	// flusher's round trips for the previous batch. (If the flusher takes
	// the messages first it signs them itself; Ed25519 is deterministic, so
	// both produce the same bytes.)
	p.sign(msgs)
	p.signal()
	select {
	case err := <-req.done:
		if err != nil {
			c.stats.failures.Add(1)
			return nil, &PublishError{Topic: topic, FirstSeq: req.first, LastSeq: req.last, Err: err}
		}
		c.stats.published.Add(uint64(len(rs)))
		return rs, nil
	case <-ctx.Done():
		return nil, &PublishError{Topic: topic, FirstSeq: req.first, LastSeq: req.last, Err: ctx.Err(), StillQueued: true}
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

// topicPublisher is the group-commit pipeline of one client on one topic.
// Callers enqueue messages (sequence numbers are assigned at enqueue); one
// goroutine takes everything queued, writes it as one segment, moves the
// head record, announces it in the coordinator, and acknowledges.
type topicPublisher struct {
	c       *Client
	tk      topicKeys
	wake    chan struct{}
	stopped chan struct{}

	loadMu sync.Mutex

	mu       sync.Mutex
	loaded   bool
	next     uint64
	queue    []*pendingMsg
	closing  bool
	closeCtx context.Context

	// Set by load under mu, then owned by the run goroutine.
	prevSeg    Ref
	headVer    backend.Version
	base       uint64 // first retained seq, written in the head record
	recent     []segSpan
	lastAnn    announcement
	registered bool      // registration seen in the coordinator (unordered mode)
	leaseUntil int64     // activity lease written in the coordinator (unordered mode)
	announced  uint64    // highest seq known announced in the coordinator (0: unknown)
	refreshed  time.Time // when its records were last refreshed (expiring stores)
	inflight   *inflightBatch
}

// segSpan remembers a segment written in this session, for age retention.
type segSpan struct {
	last uint64
	time int64
}

type pendingMsg struct {
	seq     uint64
	time    int64
	ttl     int64
	payload []byte
	sig     atomic.Pointer[[]byte] // set once by the caller or the flusher
	req     *pubRequest
}

type pubRequest struct {
	first, last uint64
	done        chan error
}

// inflightBatch is a batch being written. It is retried exactly as formed,
// so a retry after an ambiguous failure writes the same bytes.
type inflightBatch struct {
	msgs     []*pendingMsg
	ref      Ref
	headDone bool
}

// load reads the publisher's head record once, to resume the sequence after
// a restart.
func (p *topicPublisher) load(ctx context.Context) error {
	p.loadMu.Lock()
	defer p.loadMu.Unlock()
	p.mu.Lock()
	done := p.loaded
	p.mu.Unlock()
	if done {
		return nil
	}
	c := p.c
	e, err := p.readOwnHead(ctx)
	next := uint64(1)
	switch {
	case errors.Is(err, backend.ErrNotFound):
	case err != nil:
		return fmt.Errorf("core: read own head on %q: %w", p.tk.name, err)
	default:
		h, err := decodeHead(p.tk.name, e.Value)
		if err != nil {
			return fmt.Errorf("core: own head record on %q: %w", p.tk.name, err)
		}
		if PublisherIDOf(h.Publisher) != c.pid {
			return fmt.Errorf("%w: head record on %q belongs to another key", ErrMalformed, p.tk.name)
		}
		next = h.Last + 1
		p.mu.Lock()
		p.prevSeg, p.headVer, p.base = h.Seg, e.Version, h.Base
		// A previous run may have stopped between its head write and its
		// announcement: the run loop re-announces lastAnn when missing.
		p.lastAnn = announcement{Pub: c.pid, Seg: h.Seg, To: h.Last}
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.next, p.loaded = next, true
	if p.base == 0 {
		p.base = 1
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// readOwnHead reads the publisher's head record, retrying transient
// errors. On a backend that is not linearizable it reads several times and
// keeps the newest version, since a stale head would make sequence numbers
// collide (which the head's compare-and-put would then refuse).
func (p *topicPublisher) readOwnHead(ctx context.Context) (backend.Entry, error) {
	c := p.c
	reads := 1
	if c.caps.Consistency < backend.Linearizable {
		reads = 3
	}
	var best backend.Entry
	var bestErr error = backend.ErrNotFound
	for attempt := 0; reads > 0; attempt++ {
		e, err := c.store.Get(ctx, p.tk.head(c.pid))
		if err != nil && retryable(err) {
			if err := sleepJitter(ctx, attempt+4); err != nil {
				return backend.Entry{}, err
			}
			continue
		}
		reads--
		switch {
		case err == nil && e.Version > best.Version:
			best, bestErr = e, nil
		case err != nil && !errors.Is(err, backend.ErrNotFound):
			return backend.Entry{}, err
		}
	}
	return best, bestErr
}

func (p *topicPublisher) enqueue(payloads [][]byte, ttl time.Duration) (*pubRequest, []Receipt, []*pendingMsg, error) {
	now := p.c.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return nil, nil, nil, ErrClientClosed
	}
	req := &pubRequest{first: p.next, last: p.next + uint64(len(payloads)) - 1, done: make(chan error, 1)}
	rs := make([]Receipt, len(payloads))
	msgs := make([]*pendingMsg, len(payloads))
	for i, pl := range payloads {
		msgs[i] = &pendingMsg{seq: p.next, time: now.UnixNano(), ttl: int64(ttl), payload: pl, req: req}
		rs[i] = Receipt{Topic: p.tk.name, Seq: p.next, Time: now}
		p.next++
	}
	p.queue = append(p.queue, msgs...)
	return req, rs, msgs, nil
}

// signal wakes the flusher.
func (p *topicPublisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// close stops accepting messages and waits until the queue is flushed or
// ctx ends.
func (p *topicPublisher) close(ctx context.Context) error {
	p.mu.Lock()
	p.closing, p.closeCtx = true, ctx
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	select {
	case <-p.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("core: flush %q on close: %w", p.tk.name, ctx.Err())
	}
}

func (p *topicPublisher) run() {
	defer close(p.stopped)
	c := p.c
	var tick <-chan time.Time
	if c.caps.Consistency < backend.Linearizable && c.opts.verifyInterval > 0 {
		t := time.NewTicker(c.opts.verifyInterval)
		defer t.Stop()
		tick = t.C
	}
	failures := 0
	// Wait for load (it sets the head state this goroutine owns from then on).
	p.mu.Lock()
	for !p.loaded && !p.closing {
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-c.ctx.Done():
		}
		p.mu.Lock()
		if c.ctx.Err() != nil {
			p.closing = true
		}
	}
	p.mu.Unlock()
	p.verify(c.ctx)
	refreshTick, stopRefresh := p.refreshTicker()
	defer stopRefresh()
	for {
		p.maybeRefresh(c.ctx)
		p.mu.Lock()
		for p.inflight == nil && len(p.queue) == 0 && !p.closing {
			p.mu.Unlock()
			select {
			case <-p.wake:
			case <-tick:
				p.verify(c.ctx)
			case <-refreshTick:
				p.maybeRefresh(c.ctx)
			case <-c.ctx.Done():
			}
			p.mu.Lock()
			if c.ctx.Err() != nil {
				p.closing = true
			}
		}
		if p.inflight == nil && len(p.queue) == 0 {
			p.mu.Unlock()
			return
		}
		if p.inflight == nil {
			n := min(len(p.queue), c.opts.maxBatch)
			p.inflight = &inflightBatch{msgs: p.queue[:n:n]}
			p.queue = p.queue[n:]
		}
		ctx := c.ctx
		if p.closing && p.closeCtx != nil {
			ctx = p.closeCtx
		}
		b := p.inflight
		p.mu.Unlock()

		err := p.flush(ctx, b)
		if err == nil {
			failures = 0
			p.finish(b, nil)
			continue
		}
		c.stats.failures.Add(1)
		c.emit(Event{Kind: EventPublishError, Topic: p.tk.name, Err: err})
		c.opts.logger.Warn("stickypub: publish batch failed", "topic", p.tk.name, "err", err)
		if permanent(err) || ctx.Err() != nil || c.ctx.Err() != nil {
			p.failAll(err)
			return
		}
		failures++
		c.stats.retries.Add(1)
		if sleepJitter(ctx, failures+6) != nil {
			p.failAll(ctx.Err())
			return
		}
	}
}

// permanent reports errors that retrying cannot fix.
func permanent(err error) bool {
	return errors.Is(err, ErrConcurrentPublisher) || errors.Is(err, backend.ErrClosed) ||
		errors.Is(err, backend.ErrTooLarge) || errors.Is(err, backend.ErrInvalidKey) ||
		errors.Is(err, ErrMalformed) || errors.Is(err, backend.ErrCorrupt)
}

func (p *topicPublisher) finish(b *inflightBatch, err error) {
	p.mu.Lock()
	p.inflight = nil
	p.mu.Unlock()
	for _, m := range b.msgs {
		if m.seq == m.req.last || err != nil {
			select {
			case m.req.done <- err:
			default:
			}
		}
	}
}

func (p *topicPublisher) failAll(err error) {
	p.mu.Lock()
	b, rest := p.inflight, p.queue
	p.queue, p.closing = nil, true
	p.mu.Unlock()
	if b != nil {
		p.finish(b, err)
	}
	if len(rest) > 0 {
		p.finish(&inflightBatch{msgs: rest}, err)
	}
}

// flush writes batch b: segment blob, then head record, then announcement.
func (p *topicPublisher) flush(ctx context.Context, b *inflightBatch) error {
	c := p.c
	first, last := b.msgs[0].seq, b.msgs[len(b.msgs)-1].seq
	if !b.headDone {
		p.sign(b.msgs)
		seg := segment{Publisher: c.id.PublicKey(), Prev: p.prevSeg, First: first, Msgs: make([]segMsg, len(b.msgs))}
		for i, m := range b.msgs {
			seg.Msgs[i] = segMsg{Time: m.time, TTL: m.ttl, Payload: m.payload, Sig: *m.sig.Load()}
		}
		ref, err := c.blobs.put(ctx, seg.encode())
		if err != nil {
			return err
		}
		b.ref = ref
		if err := p.writeHead(ctx, last, ref); err != nil {
			return err
		}
		b.headDone = true
		p.prevSeg = ref
	}
	ann := announcement{Pub: c.pid, Seg: b.ref, To: last, Time: b.msgs[len(b.msgs)-1].time, known: p.announced}
	if c.ordered {
		// The announcement fixes the message's place in the topic order.
		if _, err := c.announce(ctx, p.tk, coordOp{anns: []announcement{ann}}); err != nil {
			return err
		}
	} else {
		// Unordered mode: the signed head record is the announcement; the
		// coordinator is only the registry, written once per publisher.
		if err := p.confirmHead(ctx); err != nil {
			return err
		}
		if err := p.register(ctx, ann); err != nil {
			return err
		}
	}
	p.lastAnn, p.announced = ann, last
	return nil
}

// confirmHead reads the head record back until the written version is
// visible (a backend that is not linearizable may serve a stale read).
func (p *topicPublisher) confirmHead(ctx context.Context) error {
	key := p.tk.head(p.c.pid)
	for attempt := 0; ; attempt++ {
		e, err := p.c.store.Get(ctx, key)
		if err == nil && e.Version >= p.headVer {
			return nil
		}
		if err != nil && !retryable(err) && !errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("core: read back head on %q: %w", p.tk.name, err)
		}
		if err := sleepJitter(ctx, attempt); err != nil {
			return err
		}
	}
}

// retainBase returns the first seq to keep after writing up to last at t,
// under the client's retention policy, counted per publisher.
func (p *topicPublisher) retainBase(last uint64, t int64) uint64 {
	r := p.c.opts.retention
	base := max(p.base, 1)
	if r.MaxMessages > 0 && last >= r.MaxMessages {
		base = max(base, last-r.MaxMessages+1)
	}
	if r.MaxAge > 0 {
		p.recent = append(p.recent, segSpan{last: last, time: t})
		cutoff := p.c.now().Add(-r.MaxAge).UnixNano()
		for len(p.recent) > 0 && p.recent[0].time < cutoff {
			base = max(base, p.recent[0].last+1)
			p.recent = p.recent[1:]
		}
	}
	return min(base, last+1)
}

// writeHead moves the publisher's head record to (last, ref). A conflict
// that shows this very record means an earlier ambiguous attempt landed.
func (p *topicPublisher) writeHead(ctx context.Context, last uint64, ref Ref) error {
	c := p.c
	key := p.tk.head(c.pid)
	base := p.retainBase(last, c.now().UnixNano())
	v, err := c.store.CompareAndPut(ctx, key, p.headVer, newHeadRecord(c.id, p.tk.name, base, last, ref).encode())
	if err == nil {
		p.headVer, p.base = v, base
		return nil
	}
	if !errors.Is(err, backend.ErrConflict) {
		return fmt.Errorf("core: write head on %q: %w", p.tk.name, err)
	}
	cur, ok := backend.CurrentEntry(err)
	if !ok {
		if cur, err = c.store.Get(ctx, key); err != nil {
			return fmt.Errorf("core: re-read head on %q: %w", p.tk.name, err)
		}
	}
	if cur.Version != 0 {
		if h, err := decodeHead(p.tk.name, cur.Value); err == nil && h.Last == last && h.Seg == ref {
			p.headVer, p.base = cur.Version, h.Base
			return nil
		}
	}
	return fmt.Errorf("%w: head of %q changed under us (version %d, expected %d)", ErrConcurrentPublisher, p.tk.name, cur.Version, p.headVer)
}

// sign signs the messages that are not signed yet, in parallel.
func (p *topicPublisher) sign(msgs []*pendingMsg) {
	id, topic := p.c.id, p.tk.name
	one := func(m *pendingMsg) {
		if m.sig.Load() == nil {
			sig := id.sign(signedBytes(topic, m.seq, m.time, m.ttl, m.payload))
			m.sig.CompareAndSwap(nil, &sig)
		}
	}
	workers := runtime.GOMAXPROCS(0)
	if len(msgs) < 16 || workers == 1 {
		for _, m := range msgs {
			one(m)
		}
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(msgs); i += workers {
				one(msgs[i])
			}
		})
	}
	wg.Wait()
}

// verify re-announces the publisher's last announcement if the coordinator
// lost it (possible on backends that are not linearizable, or after a crash
// between the head write and the announcement). In unordered mode only the
// registration matters: subscribers read the head record itself.
func (p *topicPublisher) verify(ctx context.Context) {
	if p.lastAnn.To == 0 {
		return
	}
	c := p.c
	st, _, err := c.readCoord(ctx, p.tk)
	if err != nil {
		return
	}
	if !c.ordered && p.leaseUntil > 0 && st.Active[c.pid] >= p.leaseUntil {
		return // the lease is there, so subscribers read this publisher's head
	}
	h, err := c.headOf(ctx, p.tk, st, c.pid)
	if err != nil {
		return
	}
	leaseOK := c.ordered || p.leaseUntil <= c.now().UnixNano() || st.Active[c.pid] >= p.leaseUntil
	if leaseOK && ((c.ordered && h >= p.lastAnn.To) || (!c.ordered && h > 0)) {
		p.announced = max(p.announced, min(h, p.lastAnn.To))
		return
	}
	op := coordOp{anns: []announcement{p.lastAnn}}
	if !leaseOK {
		op.active = map[PublisherID]int64{c.pid: p.leaseUntil}
	}
	c.stats.retries.Add(1)
	if _, err := c.announce(ctx, p.tk, op); err != nil {
		c.opts.logger.Warn("stickypub: re-announce failed", "topic", p.tk.name, "err", err)
	}
}
