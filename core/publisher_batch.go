package core

// Writing one batch in a single atomic step where the store can
// (backend.Batcher): in topic order the segment blob, the head record and
// the announcement in one commit instead of three; in publisher order the
// segment and the head record in one instead of two.

import (
	"context"
	"errors"

	"github.com/stickypub/stickypub/backend"
)

// flushBatched writes batch b's segment and head record, and in topic order
// its announcement, in one atomic step; announced reports that the batch is
// complete. It returns (false, nil), having written nothing, when b must
// take the step-by-step path: the store cannot batch, the segment needs
// chunking, the coordinator merge needs the compare-and-put path, or the
// head record was not at the version this publisher wrote (the
// step-by-step path tells a landed earlier attempt from another writer).
// An error whose outcome is unknown marks b (headMaybe), so its retry
// takes that path too.
func (p *topicPublisher) flushBatched(ctx context.Context, b *inflightBatch) (announced bool, err error) {
	c := p.c
	bt, ok := c.eng.store.(backend.Batcher)
	if !ok {
		return false, nil
	}
	pl := p.planSegment(b)
	var puts []backend.Put
	for _, w := range pl.blobs() {
		blob, fits := c.eng.blobs.leaf(w.ref, w.data)
		if !fits {
			return false, nil
		}
		if !c.eng.blobs.cache.has(w.ref) { // else stored already (a retry)
			puts = append(puts, blob)
		}
	}
	ref, head := pl.ref, pl.head
	first, last := b.msgs[0].seq, b.msgs[len(b.msgs)-1].seq
	head.Seg = ref
	base, rec := head.Base, head.encode()
	headKey := p.tk.head(c.pid)
	ann := announcement{Pub: c.pid, Seg: ref, To: last, Time: b.msgs[len(b.msgs)-1].time, known: p.announced}
	var headVer backend.Version
	if c.eng.ordered {
		batch := &putBatch{puts: append(puts, backend.Put{Key: headKey, Expect: p.headVer, Value: rec})}
		_, err = c.eng.announce(ctx, p.tk, coordOp{anns: []announcement{ann}, batch: batch})
		if err == nil {
			headVer = batch.vers[len(batch.vers)-1]
		}
	} else {
		expect := p.headVer
		headVer, _, err = bt.UpdateWith(ctx, puts, headKey, func(cur backend.Entry) ([]byte, error) {
			if cur.Version != expect {
				return nil, &backend.ConflictError{Key: headKey, Expected: expect, Current: cur, Known: true}
			}
			return rec, nil
		})
	}
	switch {
	case errors.Is(err, errNoBatch) || errors.Is(err, backend.ErrNoBatch) || errors.Is(err, backend.ErrConflict):
		return false, nil
	case err != nil:
		if !refused(err) {
			b.headMaybe = true
		}
		return false, err
	}
	for _, w := range pl.blobs() {
		c.eng.blobs.cache.add(w.ref, w.data)
	}
	b.ref, b.headDone = ref, true
	p.headVer, p.headVal, p.base = headVer, rec, base
	p.noteWritten(pl, ref, first, last)
	if c.eng.ordered {
		p.lastAnn, p.announced = ann, last
	}
	return c.eng.ordered, nil
}
