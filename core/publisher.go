package core

import (
	"bytes"
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
	now := c.now().UnixNano()
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
	p.signal()
	return p.wait(ctx, req)
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

// errReload: the publisher must reload its head record before queueing.
var errReload = errors.New("core: publisher reloading")

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
	headVal    []byte // the head record last written (compared on read-back)
	base       uint64 // first retained seq, written in the head record
	recent     []segSpan
	lastAnn    announcement
	registered bool      // registration seen in the coordinator (unordered mode)
	leaseUntil int64     // activity lease written in the coordinator (unordered mode)
	announced  uint64    // highest seq known announced in the coordinator (0: unknown)
	refreshed  time.Time // when its records were last refreshed (expiring stores)
	own        ownReclaim
	inflight   *inflightBatch
	// ackedMax is the highest seq this client acknowledged on the topic
	// (guarded by mu; kept across reloads): a reload that finds the log
	// shorter reports ErrLogRegressed and continues after it.
	ackedMax uint64
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
	leaf    atomic.Pointer[[32]byte] // its leaf hash, set once by the caller or the flusher
	req     *pubRequest
}

type pubRequest struct {
	first, last uint64
	msgs        []*pendingMsg
	done        chan pubResult
}

func (r *pubRequest) receipts(topic string) []Receipt {
	rs := make([]Receipt, len(r.msgs))
	for i, m := range r.msgs {
		rs[i] = Receipt{Topic: topic, Seq: m.seq, Time: time.Unix(0, m.time)}
	}
	return rs
}

// pubResult is the outcome of a request: unknown means the messages may
// have reached the log although err says the publish failed.
type pubResult struct {
	err     error
	unknown bool
}

// inflightBatch is a batch being written. It is retried exactly as formed,
// so a retry after an ambiguous failure writes the same bytes.
type inflightBatch struct {
	msgs     []*pendingMsg
	ref      Ref
	headDone bool
	// headMaybe: a head write of this batch failed in a way that does not
	// rule out that it was applied.
	headMaybe bool
}

// outcomeUnknown reports whether the batch may be in the log.
func (b *inflightBatch) outcomeUnknown() bool { return b.headDone || b.headMaybe }

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
	// Refuse a topic of the other ordering before writing anything.
	if _, _, err := c.readCoord(ctx, p.tk); errors.Is(err, ErrOrderingMismatch) {
		return err
	}
	if err := c.checkAllowed(ctx, p.tk); err != nil {
		return err
	}
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
		p.prevSeg, p.headVer, p.headVal, p.base = h.Seg, e.Version, e.Value, h.Base
		p.own = ownReclaim{loaded: h.Seg}
		// A previous run may have stopped between its head write and its
		// announcement: the run loop re-announces lastAnn when missing.
		p.lastAnn = announcement{Pub: c.pid, Seg: h.Seg, To: h.Last}
		p.mu.Unlock()
	}
	p.mu.Lock()
	if acked := p.ackedMax; acked >= next {
		// The store lost what this client had published: start a new
		// log after the last acknowledged seq (Base marks it), never
		// reusing one. Subscribers report what they miss as a gap.
		err := fmt.Errorf("%w: the log of %q in the store ends at seq %d, but this client had seq %d acknowledged; continuing at seq %d",
			ErrLogRegressed, p.tk.name, next-1, acked, acked+1)
		next, p.base, p.prevSeg, p.lastAnn = acked+1, acked+1, Ref{}, announcement{}
		p.headVer, p.headVal = e.Version, e.Value
		p.mu.Unlock()
		c.stats.failures.Add(1)
		c.emit(Event{Kind: EventPublishError, Topic: p.tk.name, Err: err})
		c.opts.logger.Warn("stickypub: publisher log went backwards", "topic", p.tk.name, "err", err)
		p.mu.Lock()
	}
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

// enqueue assigns the next seqs to msgs (time, TTL and payload set) and
// queues them.
func (p *topicPublisher) enqueue(msgs []*pendingMsg) (*pubRequest, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return nil, ErrClientClosed
	}
	if !p.loaded {
		return nil, errReload
	}
	req := &pubRequest{first: p.next, last: p.next + uint64(len(msgs)) - 1, msgs: msgs, done: make(chan pubResult, 1)}
	for _, m := range msgs {
		m.seq, m.req = p.next, req
		p.next++
	}
	p.queue = append(p.queue, msgs...)
	return req, nil
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
	for {
		// Wait for load (it sets the head state this goroutine owns from
		// then on).
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
		if !p.flushLoop(tick) {
			return
		}
	}
}

// flushLoop writes queued batches until the publisher closes (false) or a
// permanent error resets it (true: wait for the next load). On expiring
// stores it also refreshes the publisher's own records.
func (p *topicPublisher) flushLoop(tick <-chan time.Time) bool {
	c := p.c
	failures := 0
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
			return false
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
			p.finish(b, nil, false)
			p.maybeReclaimOwn(ctx)
			continue
		}
		c.stats.failures.Add(1)
		c.emit(Event{Kind: EventPublishError, Topic: p.tk.name, Err: err})
		c.opts.logger.Warn("stickypub: publish batch failed", "topic", p.tk.name, "err", err)
		if ctx.Err() != nil || c.ctx.Err() != nil {
			p.failAll(err)
			return false
		}
		if permanent(err) {
			p.reset(b, err)
			return true
		}
		failures++
		c.stats.retries.Add(1)
		if sleepJitter(ctx, failures+6) != nil {
			p.failAll(ctx.Err())
			return false
		}
	}
}

// reset fails batch b with err after a permanent error, and with it the
// messages queued behind it (their seqs follow b's), and forgets the head
// state: the next publish reloads the head record and proceeds (or fails
// with the same error), so one failure never wedges the topic.
func (p *topicPublisher) reset(b *inflightBatch, err error) {
	p.mu.Lock()
	rest := p.queue
	p.queue, p.loaded = nil, false
	p.prevSeg, p.headVer, p.headVal, p.base, p.recent = Ref{}, 0, nil, 0, nil
	p.own = ownReclaim{}
	p.lastAnn, p.registered = announcement{}, false
	// What it knew of the coordinator and its own records is re-learnt
	// after the next load.
	p.leaseUntil, p.announced, p.refreshed = 0, 0, time.Time{}
	p.mu.Unlock()
	p.finish(b, err, b.outcomeUnknown())
	if len(rest) > 0 {
		p.finish(&inflightBatch{msgs: rest}, fmt.Errorf("queued behind a failed batch: %w", err), false)
	}
}

// permanent reports errors that retrying cannot fix.
func permanent(err error) bool {
	return errors.Is(err, ErrConcurrentPublisher) || errors.Is(err, ErrLogRegressed) || errors.Is(err, backend.ErrClosed) ||
		errors.Is(err, backend.ErrTooLarge) || errors.Is(err, backend.ErrInvalidKey) ||
		errors.Is(err, ErrMalformed) || errors.Is(err, backend.ErrCorrupt) || errors.Is(err, ErrOrderingMismatch) ||
		errors.Is(err, ErrNotAllowed) || errors.Is(err, ErrForgedPolicy)
}

func (p *topicPublisher) finish(b *inflightBatch, err error, unknown bool) {
	p.mu.Lock()
	if p.inflight == b {
		p.inflight = nil
	}
	if err == nil && len(b.msgs) > 0 {
		p.ackedMax = max(p.ackedMax, b.msgs[len(b.msgs)-1].seq)
	}
	p.mu.Unlock()
	for _, m := range b.msgs {
		if m.seq == m.req.last || err != nil {
			select {
			case m.req.done <- pubResult{err: err, unknown: unknown}:
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
		p.finish(b, err, b.outcomeUnknown())
	}
	if len(rest) > 0 {
		p.finish(&inflightBatch{msgs: rest}, err, false)
	}
}

// flush writes batch b: segment blob, then head record, then announcement.
func (p *topicPublisher) flush(ctx context.Context, b *inflightBatch) error {
	c := p.c
	first, last := b.msgs[0].seq, b.msgs[len(b.msgs)-1].seq
	if !b.headDone {
		p.hashLeaves(b.msgs)
		seg := segment{Publisher: c.id.PublicKey(), Prev: p.prevSeg, First: first, Msgs: make([]segMsg, len(b.msgs))}
		leaves := make([][32]byte, len(b.msgs))
		for i, m := range b.msgs {
			seg.Msgs[i] = segMsg{Time: m.time, TTL: m.ttl, Payload: m.payload}
			leaves[i] = *m.leaf.Load()
		}
		seg.sign(c.id, p.tk.name, leaves)
		ref, err := c.blobs.put(ctx, seg.encode())
		if err != nil {
			return err
		}
		b.ref = ref
		if err := p.writeHead(ctx, last, ref); err != nil {
			if !refused(err) {
				b.headMaybe = true
			}
			return err
		}
		b.headDone = true
		p.prevSeg = ref
		p.noteSegment(ref, first, last)
	}
	ann := announcement{Pub: c.pid, Seg: b.ref, To: last, Time: b.msgs[len(b.msgs)-1].time, known: p.announced}
	if c.ordered {
		// The announcement fixes the message's place in the topic order.
		if _, err := c.announce(ctx, p.tk, coordOp{anns: []announcement{ann}}); err != nil {
			return err
		}
	} else {
		// Publisher order: the signed head record is the announcement; the
		// coordinator is only the registry, written once per publisher. On
		// a linearizable store the head's compare-and-put is the proof.
		if c.caps.Consistency < backend.Linearizable {
			if err := p.confirmHead(ctx); err != nil {
				return err
			}
		}
		if err := p.register(ctx, ann); err != nil {
			return err
		}
	}
	p.lastAnn, p.announced = ann, last
	return nil
}

// refused reports head-write errors after which the write certainly did
// not happen.
func refused(err error) bool {
	return errors.Is(err, ErrConcurrentPublisher) || errors.Is(err, ErrLogRegressed) || errors.Is(err, backend.ErrTooLarge) ||
		errors.Is(err, backend.ErrInvalidKey) || errors.Is(err, backend.ErrClosed)
}

// confirmHead reads the head record back until the written version is
// visible (a backend that is not linearizable may serve a stale read). It
// compares content, not only versions: on a weak store two writers with
// one identity can both be told they won, and the one whose record is not
// the stored one must not acknowledge its messages.
func (p *topicPublisher) confirmHead(ctx context.Context) error {
	key := p.tk.head(p.c.pid)
	for attempt := 0; ; attempt++ {
		e, err := p.c.store.Get(ctx, key)
		if err == nil && e.Version >= p.headVer {
			if !bytes.Equal(e.Value, p.headVal) {
				return fmt.Errorf("%w: %q: the head record read back (version %d) is not the one written (version %d)",
					ErrConcurrentPublisher, p.tk.name, e.Version, p.headVer)
			}
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
	r := p.c.cfg.retention // the engine's: with a Hub, the hub's
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
	rec := newHeadRecord(c.id, p.tk.name, base, last, ref).encode()
	v, err := c.store.CompareAndPut(ctx, key, p.headVer, rec)
	if err == nil {
		p.headVer, p.headVal, p.base = v, rec, base
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
	if cur.Version < p.headVer {
		return fmt.Errorf("%w: the head record of %q went back (version %d, this client wrote %d): "+
			"the store lost data (restarted without persistence, failed over or restored)", ErrLogRegressed, p.tk.name, cur.Version, p.headVer)
	}
	if cur.Version != 0 {
		if h, err := decodeHead(p.tk.name, cur.Value); err == nil && h.Last == last && h.Seg == ref &&
			PublisherIDOf(h.Publisher) == c.pid {
			p.headVer, p.headVal, p.base = cur.Version, cur.Value, h.Base
			return nil
		}
	}
	return fmt.Errorf("%w: head of %q changed under us (version %d, expected %d)", ErrConcurrentPublisher, p.tk.name, cur.Version, p.headVer)
}

// hashLeaves computes the leaf hash of every message that has none yet
// (see msgLeaf), in parallel for large payloads.
func (p *topicPublisher) hashLeaves(msgs []*pendingMsg) {
	topic := p.tk.name
	one := func(m *pendingMsg) {
		if m.leaf.Load() == nil {
			leaf := msgLeaf(topic, m.seq, m.time, m.ttl, m.payload)
			m.leaf.CompareAndSwap(nil, &leaf)
		}
	}
	size := 0
	for _, m := range msgs {
		size += len(m.payload)
	}
	workers := runtime.GOMAXPROCS(0)
	if size < parallelHashBytes || len(msgs) < 2 || workers == 1 {
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

// checkOwnHead reads the publisher's head record (unordered mode, at each
// verification) and reports ErrConcurrentPublisher when it holds another
// record than the one this client wrote last, at that version or later: on
// a weak store a second writer with this identity can replace a record
// after its writer read it back, so the messages acknowledged with it were
// replaced (see docs/protocol.md). The next publish then fails on the head's
// compare-and-put and reloads.
func (p *topicPublisher) checkOwnHead(ctx context.Context) {
	c := p.c
	if p.headVal == nil {
		return
	}
	e, err := c.store.Get(ctx, p.tk.head(c.pid))
	if err != nil || e.Version < p.headVer || bytes.Equal(e.Value, p.headVal) {
		return
	}
	err = fmt.Errorf("%w: %q: the head record this client wrote (version %d) was replaced (version %d)",
		ErrConcurrentPublisher, p.tk.name, p.headVer, e.Version)
	c.stats.failures.Add(1)
	c.emit(Event{Kind: EventPublishError, Topic: p.tk.name, Err: err})
	c.opts.logger.Warn("stickypub: another client publishes with this identity", "topic", p.tk.name, "err", err)
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
	if !c.ordered {
		p.checkOwnHead(ctx)
	}
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
