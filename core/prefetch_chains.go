package core

// Prefetching publishers' segment chains in parallel (publisher order).

import (
	"context"
	"sync/atomic"
)

// prefetchChains reads in parallel across publishers the segments a poll
// is about to deliver from each tip (a head: publisher, newest segment,
// last seq): from the tip back along Prev until the segment holding the
// publisher's next expected seq, and verifies their signatures as one
// batch (verifyPrepared). Publishers' chains are independent, so a late
// joiner's catch-up on many publishers (publisher order, where heads
// rather than announcements lead to the segments) is not one round trip
// and one verification at a time, and a poll over many publishers with a
// small segment each costs one batch equation rather than one Ed25519
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
	type found struct {
		ref Ref
		p   *segPrep
	}
	var budget atomic.Int64
	budget.Store(int64(s.c.opts.prefetchBytes))
	results := make([][]found, len(jobs))
	_ = s.c.eng.blobs.parallel(ctx, len(jobs), func(ctx context.Context, i int) error {
		j := jobs[i]
		ref := j.a.Seg
		for !ref.IsZero() && ctx.Err() == nil {
			p, size := s.fetchPrepared(ctx, ref, j.a.Pub)
			if p == nil || budget.Add(-int64(size)) < 0 {
				return nil
			}
			results[i] = append(results[i], found{ref, p})
			if p.seg.First <= j.from || p.seg.First <= 1 {
				return nil
			}
			// Not verified yet (the signatures of all chains are checked
			// together below): a forged segment's Prev can only make this
			// walk read more, within the budget; what follows a segment
			// that does not verify is dropped.
			ref = p.seg.Prev
		}
		return nil
	})
	var all []*segPrep
	for _, r := range results {
		for _, f := range r {
			all = append(all, f.p)
		}
	}
	msgs := verifyPrepared(all)
	s.pre = make(map[Ref]*prefetched)
	k := 0
	for _, r := range results {
		good := true
		for _, f := range r {
			// A segment that does not verify ends its chain: its Prev is
			// not trusted, so nothing behind it is kept.
			if good = good && msgs[k] != nil; good {
				s.pre[f.ref] = &prefetched{seg: f.p.seg, msgs: msgs[k]}
			}
			k++
		}
	}
}
