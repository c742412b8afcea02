package core

// Writing one batch: the segment blob, the head record (compare-and-put
// from the version this publisher wrote, telling a landed ambiguous attempt
// from another writer or a store that lost data), then the announcement.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/stickypub/stickypub/backend"
)

// flush writes batch b: segment blob, then head record, then announcement
// (in one step where the store batches, see flushBatched).
func (p *topicPublisher) flush(ctx context.Context, b *inflightBatch) error {
	c := p.c
	first, last := b.msgs[0].seq, b.msgs[len(b.msgs)-1].seq
	// A retried or long-queued batch writes its segment again even if this
	// process wrote it before, and checks it is still there once the head
	// points to it: its messages may be older than the orphan sweep's grace
	// (SweepOrphans deletes a segment beyond its publisher's head once its
	// messages are that old). It goes step by step.
	retried := !b.ref.IsZero() || c.eng.now().UnixNano()-b.msgs[0].time > int64(c.orphanGrace()/2)
	if !b.headDone && !b.headMaybe && !retried {
		if announced, err := p.flushBatched(ctx, b); err != nil || announced {
			return err
		}
	}
	if !b.headDone {
		pl := p.planSegment(b)
		// The open segment being sealed, then the batch's own segment
		// unless the head alone carries it (see openseg.go).
		for _, w := range pl.blobs() {
			if err := c.eng.blobs.putAt(ctx, w.ref, w.data, retried); err != nil {
				return err
			}
		}
		ref := pl.ref
		b.ref, pl.head.Seg = ref, ref
		if err := p.writeHead(ctx, pl.head); err != nil {
			if !refused(err) {
				b.headMaybe = true
			}
			return err
		}
		if retried {
			// A sweep that read the head before it moved may have
			// deleted the segment in between: write it again.
			for _, w := range pl.blobs() {
				if err := c.eng.blobs.ensure(ctx, w.ref, w.data); err != nil {
					c.opts.logger.Warn("stickypub: re-checking a retried segment failed", "topic", p.tk.name, "err", err)
				}
			}
		}
		b.headDone = true
		p.noteWritten(pl, ref, first, last)
	}
	ann := announcement{Pub: c.pid, Seg: b.ref, To: last, Time: b.msgs[len(b.msgs)-1].time, known: p.announced}
	if c.eng.ordered {
		// The announcement fixes the message's place in the topic order.
		if _, err := c.eng.announce(ctx, p.tk, coordOp{anns: []announcement{ann}}); err != nil {
			return err
		}
	} else {
		// Publisher order: the signed head record is the announcement; the
		// coordinator is only the registry, written once per publisher. On
		// a linearizable store the head's compare-and-put is the proof.
		if c.eng.caps.Consistency < backend.Linearizable {
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

// planSegment returns how batch b is written (see segPlan): in publisher
// order it extends the open segment the head carries while the result
// fits a head (openSegLimit), else seals that one and starts a new
// segment; in topic order every batch is a segment blob of its own,
// chained to the publisher's previous one. The segment carries the
// publisher's retention floor, fixed at the batch's first plan. The plan
// is made once per batch: what it depends on (the open and the previous
// segment) moves only when the batch's head is written, and a retry must
// write the same bytes. The head is not signed: the segment's one
// signature covers it.
func (p *topicPublisher) planSegment(b *inflightBatch) *segPlan {
	if b.plan != nil {
		return b.plan
	}
	c := p.c
	p.hashLeaves(b.msgs)
	base := p.retainBase(b.msgs[len(b.msgs)-1].seq, c.eng.now().UnixNano())
	msgs := make([]segMsg, len(b.msgs))
	leaves := make([][32]byte, len(b.msgs))
	for i, m := range b.msgs {
		msgs[i] = segMsg{Time: m.time, TTL: m.ttl, Payload: m.payload}
		leaves[i] = *m.leaf.Load()
	}
	batch := &openSeg{first: b.msgs[0].seq, msgs: msgs, leaves: leaves}
	pl := &segPlan{}
	b.plan = pl
	// Topic order carries nothing (limit 0): subscribers follow
	// announcements, which name the segment; it is stored, and the head
	// stays format 2.
	limit := 0
	if !c.eng.ordered {
		limit = c.eng.openSegLimit()
	}
	if o := p.open; o != nil && o.first >= base {
		ext := &openSeg{first: o.first, msgs: slices.Concat(o.msgs, msgs), leaves: slices.Concat(o.leaves, leaves)}
		if seg := p.segmentOf(p.prevSeg, ext, base); fitsHead(seg, limit) {
			return p.fillPlan(pl, seg, ext, true)
		}
	}
	prev := p.prevSeg
	if p.open != nil {
		pl.seal, prev = p.open, p.open.ref
	}
	seg := p.segmentOf(prev, batch, base)
	return p.fillPlan(pl, seg, batch, fitsHead(seg, limit))
}

// segmentOf returns the unsigned segment of o's messages chained to prev
// with retention floor base.
func (p *topicPublisher) segmentOf(prev Ref, o *openSeg, base uint64) *segment {
	return &segment{Publisher: p.c.id.PublicKey(), Prev: prev, First: o.first, Base: base, Msgs: o.msgs}
}

// fitsHead reports whether seg, once signed, is at most limit bytes
// uncompressed: the bound on the segment a head carries is on its
// uncompressed encoding, so that re-encoding, hashing and verifying it at
// each publish (and each read of the head) stays a few messages' work even
// when they compress well; stored, it is no larger. Payloads are counted
// first, so a large batch is not encoded for the answer.
func fitsHead(seg *segment, limit int) bool {
	n := ed25519.SignatureSize
	for _, m := range seg.Msgs {
		if n += len(m.Payload); n > limit {
			return false
		}
	}
	return len(seg.encodeRaw())+ed25519.SignatureSize <= limit
}

// fillPlan signs seg (o's messages) into pl: its stored form, digest and
// head record (format 2); with carry, the head carries it (format 3) as the
// publisher's new open segment o.
func (p *topicPublisher) fillPlan(pl *segPlan, seg *segment, o *openSeg, carry bool) *segPlan {
	root := seg.sign(p.c.id, p.tk.name, o.leaves)
	pl.data = seg.encode()
	pl.ref, pl.head = digest(pl.data), segmentHead(seg, root, Ref{})
	if carry {
		o.data, o.ref = pl.data, pl.ref
		pl.carried, pl.open, pl.head.inline = true, o, pl.data
	}
	return pl
}

// noteWritten moves the publisher's chain state past a batch whose head
// record (naming segment ref, seqs first to last) was written by plan pl.
func (p *topicPublisher) noteWritten(pl *segPlan, ref Ref, first, last uint64) {
	if pl.seal != nil {
		p.prevSeg = pl.seal.ref
		p.noteSegment(pl.seal.ref, pl.seal.first, pl.seal.last())
	}
	p.open = pl.open
	if !pl.carried {
		p.prevSeg = ref
		p.noteSegment(ref, first, last)
	}
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
		e, err := p.c.eng.store.Get(ctx, key)
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
	r := p.c.eng.cfg.retention // the engine's: with a Hub, the hub's
	base := max(p.base, 1)
	if r.MaxMessages > 0 && last >= r.MaxMessages {
		base = max(base, last-r.MaxMessages+1)
	}
	if r.MaxAge > 0 {
		p.recent = append(p.recent, segSpan{last: last, time: t})
		cutoff := p.c.eng.now().Add(-r.MaxAge).UnixNano()
		for len(p.recent) > 0 && p.recent[0].time < cutoff {
			base = max(base, p.recent[0].last+1)
			p.recent = p.recent[1:]
		}
	}
	return min(base, last+1)
}

// writeHead moves the publisher's head record to head (the record of the
// batch's segment, see encodeSegment). A conflict that shows this very
// record means an earlier ambiguous attempt landed.
func (p *topicPublisher) writeHead(ctx context.Context, head *headRecord) error {
	c := p.c
	key := p.tk.head(c.pid)
	base, last, ref := head.Base, head.Last, head.Seg
	rec := head.encode()
	v, err := c.eng.store.CompareAndPut(ctx, key, p.headVer, rec)
	if err == nil {
		p.headVer, p.headVal, p.base = v, rec, base
		return nil
	}
	if !errors.Is(err, backend.ErrConflict) {
		return fmt.Errorf("core: write head on %q: %w", p.tk.name, err)
	}
	cur, ok := backend.CurrentEntry(err)
	if !ok {
		if cur, err = c.eng.store.Get(ctx, key); err != nil {
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
