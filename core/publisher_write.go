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
		put := c.eng.blobs.put
		if retried {
			put = c.eng.blobs.putFresh
		}
		pl := p.planSegment(b)
		// The open segment being sealed, then the batch's own segment
		// unless the head alone carries it (see openseg.go).
		for _, data := range pl.blobs() {
			if _, err := put(ctx, data); err != nil {
				return err
			}
		}
		ref := digest(pl.data)
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
			for _, data := range pl.blobs() {
				if err := c.eng.blobs.ensure(ctx, digest(data), data); err != nil {
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
	if b.base == 0 {
		b.base = p.retainBase(b.msgs[len(b.msgs)-1].seq, c.eng.now().UnixNano())
	}
	msgs := make([]segMsg, len(b.msgs))
	leaves := make([][32]byte, len(b.msgs))
	for i, m := range b.msgs {
		msgs[i] = segMsg{Time: m.time, TTL: m.ttl, Payload: m.payload}
		leaves[i] = *m.leaf.Load()
	}
	pl := &segPlan{}
	b.plan = pl
	if c.eng.ordered {
		// Topic order: subscribers follow announcements, which name the
		// segment; it is stored, and the head stays format 2.
		pl.data, pl.head = p.signSegment(p.prevSeg, &openSeg{first: b.msgs[0].seq, msgs: msgs, leaves: leaves}, b.base)
		return pl
	}
	// The bound is on the uncompressed encoding, so that re-encoding,
	// hashing and verifying the carried segment at each publish (and each
	// read of the head) stays a few messages' work even when they
	// compress well; stored, it is no larger.
	limit := c.eng.openSegLimit()
	if o := p.open; o != nil && o.first >= b.base {
		ext := &openSeg{first: o.first, msgs: slices.Concat(o.msgs, msgs), leaves: slices.Concat(o.leaves, leaves)}
		if p.rawSize(p.prevSeg, ext, b.base) <= limit {
			data, head := p.signSegment(p.prevSeg, ext, b.base)
			ext.data, ext.ref = data, digest(data)
			pl.data, pl.head, pl.carried, pl.open = data, head, true, ext
			head.inline = data
			return pl
		}
	}
	prev := p.prevSeg
	if p.open != nil {
		pl.seal, prev = p.open, p.open.ref
	}
	seg := &openSeg{first: b.msgs[0].seq, msgs: msgs, leaves: leaves}
	pl.data, pl.head = p.signSegment(prev, seg, b.base)
	if p.rawSize(prev, seg, b.base) <= limit {
		seg.data, seg.ref = pl.data, digest(pl.data)
		pl.carried, pl.open, pl.head.inline = true, seg, pl.data
	}
	return pl
}

// signSegment builds and signs the segment of o's messages chained to
// prev with retention floor base, and returns its stored form and its
// head record (format 2; the caller sets Seg, and the inline bytes where
// the head carries them).
func (p *topicPublisher) signSegment(prev Ref, o *openSeg, base uint64) ([]byte, *headRecord) {
	c := p.c
	seg := segment{Publisher: c.id.PublicKey(), Prev: prev, First: o.first, Base: base, Msgs: o.msgs}
	root := seg.sign(c.id, p.tk.name, o.leaves)
	return seg.encode(), segmentHead(&seg, root, Ref{})
}

// rawSize is the length of the uncompressed encoding of the segment
// signSegment would make.
func (p *topicPublisher) rawSize(prev Ref, o *openSeg, base uint64) int {
	seg := segment{Publisher: p.c.id.PublicKey(), Prev: prev, First: o.first, Base: base, Msgs: o.msgs}
	return len(seg.encodeRaw()) + ed25519.SignatureSize
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
