package core

// Loading a topic publisher: its ordering and write access checked, its own
// head record read to resume the sequence after a restart, and the checks of
// its own records while it runs.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stickypub/stickypub/backend"
)

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
	// The state load sets is the flusher's: a run goroutine that passed its
	// wait for a load before a direct write reset the publisher may still
	// verify or refresh with it, so load holds the flusher's lock.
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	c := p.c
	// Refuse a topic of the other ordering before writing anything.
	if _, _, err := c.eng.readCoord(ctx, p.tk); errors.Is(err, ErrOrderingMismatch) {
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
		switch {
		case h.inline != nil:
			// The head carries its segment, which may be stored nowhere
			// else (an open segment, see openseg.go): seal it, so the next
			// segment can chain to it. It is the blob h.Seg names.
			if _, err := c.eng.blobs.putFresh(ctx, h.inline); err != nil {
				return fmt.Errorf("core: own head record on %q: sealing its segment: %w", p.tk.name, err)
			}
		case h.V2:
			// The next segment chains to h.Seg, which a format-2 head does
			// not sign: it must be the segment the head carries. (Gone
			// from a store that is not linearizable: not visible yet.)
			if _, err := c.eng.headSegment(ctx, p.tk.name, h); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return fmt.Errorf("core: own head record on %q: %w", p.tk.name, err)
			}
		}
		next = h.Last + 1
		p.mu.Lock()
		p.prevSeg, p.open, p.headVer, p.headVal, p.base = h.Seg, nil, e.Version, e.Value, h.Base
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
		next, p.base, p.prevSeg, p.open, p.lastAnn = acked+1, acked+1, Ref{}, nil, announcement{}
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
	if c.eng.caps.Consistency < backend.Linearizable {
		reads = 3
	}
	var best backend.Entry
	var bestErr error = backend.ErrNotFound
	for attempt := 0; reads > 0; attempt++ {
		e, err := c.eng.store.Get(ctx, p.tk.head(c.pid))
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
	e, err := c.eng.store.Get(ctx, p.tk.head(c.pid))
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
// While it keeps finding everything in place it runs less and less often
// (see paceVerify).
func (p *topicPublisher) verify(ctx context.Context) {
	if p.lastAnn.To == 0 || time.Now().Before(p.nextVerify) {
		return
	}
	calm := false
	defer func() { p.paceVerify(calm) }()
	c := p.c
	if !c.eng.ordered {
		p.checkOwnHead(ctx)
	}
	st, _, err := c.eng.readCoord(ctx, p.tk)
	if err != nil {
		return
	}
	if !c.eng.ordered && p.leaseUntil > 0 && st.Active[c.pid] >= p.leaseUntil {
		calm = true
		return // the lease is there, so subscribers read this publisher's head
	}
	h, err := c.eng.headOf(ctx, p.tk, st, c.pid)
	if err != nil {
		return
	}
	leaseOK := c.eng.ordered || p.leaseUntil <= c.eng.now().UnixNano() || st.Active[c.pid] >= p.leaseUntil
	if leaseOK && ((c.eng.ordered && h >= p.lastAnn.To) || (!c.eng.ordered && h > 0)) {
		p.announced = max(p.announced, min(h, p.lastAnn.To))
		calm = true
		return
	}
	op := coordOp{anns: []announcement{p.lastAnn}}
	if !leaseOK {
		op.active = map[PublisherID]int64{c.pid: p.leaseUntil}
	}
	c.stats.retries.Add(1)
	if _, err := c.eng.announce(ctx, p.tk, op); err != nil {
		c.opts.logger.Warn("stickypub: re-announce failed", "topic", p.tk.name, "err", err)
	}
}

// maxVerifyBackoff bounds the idle verification's back-off: at most one
// verification per verifyInterval<<maxVerifyBackoff while it finds the
// records in place.
const maxVerifyBackoff = 5

// paceVerify schedules the next idle verification. Each verification
// reads the publisher's head and the coordinator (on a DHT, fresh blobs
// found by walks): a hundred idle publishers verifying every interval kept
// a loaded swarm too busy for the publishers still writing, which starved.
// After calm verifications in a row it waits about
// verifyInterval<<min(calm, maxVerifyBackoff); a verification that found
// something missing or failed, a reset, and a flush that wrote something
// the verification checks (see flushed) check again at the next tick. The
// pacing uses the wall clock, like the ticker.
func (p *topicPublisher) paceVerify(calm bool) {
	if !calm {
		p.calmVerifies, p.nextVerify = 0, time.Time{}
		return
	}
	p.calmVerifies++
	iv := p.c.opts.verifyInterval
	p.nextVerify = time.Now().Add(iv<<min(p.calmVerifies, maxVerifyBackoff) - iv/2)
}
