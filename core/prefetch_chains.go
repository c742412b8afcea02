package core

// Prefetching publishers' segment chains in parallel (publisher order).

import (
	"context"
	"math"
	"sync/atomic"
)

// prefetchChains reads in parallel across publishers the segments a poll
// is about to deliver from each tip (a head: publisher, newest segment,
// last seq): from the tip back along Prev until the segment holding the
// publisher's next expected seq, and checks their signatures in batches
// (verifyPrepared): the tips, then the rest of the chains behind the tips
// that verified. Publishers' chains are independent, so a late joiner's
// catch-up on many publishers (publisher order, where heads rather than
// announcements lead to the segments) is not one round trip and one
// verification at a time, and a poll over many publishers with a small
// segment each costs one batch equation rather than one Ed25519
// verification per segment. At most the client's prefetch bound
// (WithPrefetchBytes) is held; whatever fails or exceeds that is simply
// not prefetched, and delivery reads it again and handles it.
func (s *Subscription) prefetchChains(ctx context.Context, tips []announcement) {
	type job struct {
		a    announcement
		from uint64
	}
	var jobs []job
	for _, a := range tips {
		if from := s.next(a.Pub); a.To >= from {
			jobs = append(jobs, job{a, from})
		}
	}
	if len(jobs) == 0 {
		return
	}
	var budget atomic.Int64
	budget.Store(int64(s.c.opts.prefetchBytes))
	s.pre = make(map[Ref]*prefetched)
	// Two rounds, each read in parallel across the chains and checked as
	// one batch of signatures: first the tips alone, then, behind each tip
	// that verified, the rest of its chain. A tip comes from a head record
	// that was not verified (see pollHeads), so a forged one costs one read
	// and ends its chain; every segment behind a verified one is reached
	// through Prev links its publisher signed.
	type walk struct {
		job
		ref  Ref
		got  []*segPrep
		refs []Ref
		done bool // reached the next expected seq or the log's start, or a read failed or went over the bound
	}
	walks := make([]*walk, len(jobs))
	for i, j := range jobs {
		walks[i] = &walk{job: j, ref: j.a.Seg}
	}
	for round := 0; len(walks) > 0 && ctx.Err() == nil; round++ {
		limit := 1
		if round > 0 {
			limit = math.MaxInt
		}
		_ = s.c.eng.blobs.parallel(ctx, len(walks), func(ctx context.Context, i int) error {
			w := walks[i]
			w.got, w.refs = w.got[:0], w.refs[:0]
			for ref := w.ref; len(w.got) < limit && ctx.Err() == nil; {
				p, size := s.fetchPrepared(ctx, ref, w.a.Pub)
				if p == nil || budget.Add(-int64(size)) < 0 {
					w.done = true
					return nil
				}
				w.got, w.refs = append(w.got, p), append(w.refs, ref)
				if p.seg.First <= w.from || p.seg.First <= 1 || p.seg.Prev.IsZero() {
					w.done = true
					return nil
				}
				ref = p.seg.Prev
			}
			return nil
		})
		var all []*segPrep
		for _, w := range walks {
			all = append(all, w.got...)
		}
		msgs := verifyPrepared(all)
		k, next := 0, walks[:0]
		for _, w := range walks {
			good := true
			for i, p := range w.got {
				// A segment that does not verify ends its chain: its Prev
				// is not trusted, so nothing behind it is kept.
				if good = good && msgs[k] != nil; good {
					s.pre[w.refs[i]] = &prefetched{seg: p.seg, msgs: msgs[k]}
				}
				k++
			}
			if good && !w.done && len(w.got) > 0 {
				w.ref = w.got[len(w.got)-1].seg.Prev
				next = append(next, w)
			}
		}
		walks = next
	}
}
