package core

// The topic publisher pipeline: queueing with seqs assigned, the group
// commit loop, acknowledging, and failing batches.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// errReload: the publisher must reload its head record before queueing.
var errReload = errors.New("core: publisher reloading")

// topicPublisher is the group-commit pipeline of one client on one topic.
// Callers enqueue messages (sequence numbers are assigned at enqueue); one
// goroutine takes everything queued, writes it as one segment, moves the
// head record, announces it in the coordinator, and acknowledges. A caller
// that finds the pipeline idle writes its own batch (see flushDirect).
type topicPublisher struct {
	c       *Client
	tk      topicKeys
	wake    chan struct{}
	stopped chan struct{}

	loadMu sync.Mutex
	// flushMu is held by whoever writes batches: the run goroutine, except
	// while it waits for work, or a caller flushing directly. It guards the
	// fields below that are owned by the flusher.
	flushMu sync.Mutex

	mu       sync.Mutex
	loaded   bool
	next     uint64
	queue    []*pendingMsg
	closing  bool
	closeCtx context.Context

	// Set by load under mu, then owned by the holder of flushMu.
	prevSeg    Ref
	open       *openSeg // the segment the head carries and no blob holds yet (see openseg.go)
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
	// Idle verification (run goroutine) backs off while it keeps finding
	// the records in place (see paceVerify): calmVerifies in a row, none
	// before nextVerify.
	calmVerifies int
	nextVerify   time.Time
	// verifiedLease is the lease (unordered mode) whose writing last made
	// the idle verification check again soon.
	verifiedLease int64
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
	// plan is how the batch is written, made at its first attempt (see
	// planSegment): its segment and the retention floor it carries are
	// fixed then, so a retry writes the same bytes.
	plan *segPlan
}

// outcomeUnknown reports whether the batch may be in the log.
func (b *inflightBatch) outcomeUnknown() bool { return b.headDone || b.headMaybe }

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
	if c.eng.caps.Consistency < backend.Linearizable && c.opts.verifyInterval > 0 {
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
		p.flushMu.Lock()
		p.verify(c.ctx)
		more := p.flushLoop(tick)
		p.flushMu.Unlock()
		if !more {
			return
		}
	}
}

// flushLoop writes queued batches until the publisher closes (false) or a
// permanent error resets it (true: wait for the next load). On expiring
// stores it also refreshes the publisher's own records. It is called with
// flushMu held and lets go of it only while it waits for work.
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
			p.flushMu.Unlock()
			select {
			case <-p.wake:
				p.flushMu.Lock()
			case <-tick:
				p.flushMu.Lock()
				p.verify(c.ctx)
			case <-refreshTick:
				p.flushMu.Lock()
				p.maybeRefresh(c.ctx)
			case <-c.ctx.Done():
				p.flushMu.Lock()
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
			p.takeBatch()
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
			p.flushed(ctx, b)
			continue
		}
		p.noteFailure(err)
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

// flushed acknowledges batch b, written, and does what follows a write:
// the next idle verification comes soon where it has something new to
// check (in topic order the new announcement; in publisher order only a
// registration or a renewed lease: the head was read back already), and
// own segments below the new Base are reclaimed when due.
func (p *topicPublisher) flushed(ctx context.Context, b *inflightBatch) {
	if p.c.eng.ordered || p.leaseUntil != p.verifiedLease {
		p.calmVerifies, p.nextVerify, p.verifiedLease = 0, time.Time{}, p.leaseUntil
	}
	p.finish(b, nil, false)
	p.maybeReclaimOwn(ctx)
}

// noteFailure counts, reports and logs a failed batch write.
func (p *topicPublisher) noteFailure(err error) {
	c := p.c
	c.stats.failures.Add(1)
	c.emit(Event{Kind: EventPublishError, Topic: p.tk.name, Err: err})
	c.opts.logger.Warn("stickypub: publish batch failed", "topic", p.tk.name, "err", err)
}

// takeBatch makes the next batch of the queue the one in flight. Called
// with mu held, the queue not empty and nothing in flight.
func (p *topicPublisher) takeBatch() *inflightBatch {
	n := min(len(p.queue), p.c.opts.maxBatch)
	p.inflight = &inflightBatch{msgs: p.queue[:n:n]}
	p.queue = p.queue[n:]
	return p.inflight
}

// reset fails batch b with err after a permanent error, and with it the
// messages queued behind it (their seqs follow b's), and forgets the head
// state: the next publish reloads the head record and proceeds (or fails
// with the same error), so one failure never wedges the topic.
func (p *topicPublisher) reset(b *inflightBatch, err error) {
	p.mu.Lock()
	rest := p.queue
	p.queue, p.loaded = nil, false
	p.prevSeg, p.open, p.headVer, p.headVal, p.base, p.recent = Ref{}, nil, 0, nil, 0, nil
	p.own = ownReclaim{}
	p.lastAnn, p.registered = announcement{}, false
	// What it knew of the coordinator and its own records is re-learnt
	// after the next load.
	p.leaseUntil, p.announced, p.refreshed = 0, 0, time.Time{}
	p.calmVerifies, p.nextVerify, p.verifiedLease = 0, time.Time{}, 0
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
