package core

// Prefetching publishers' segment chains in parallel (publisher order).

import (
	"context"
	"sync/atomic"
)

// prefetchChains reads and verifies, in parallel across publishers, the
// segments a poll is about to deliver from each tip (a head: publisher,
// newest segment, last seq): from the tip back along Prev until the
// segment holding the publisher's next expected seq. Publishers' chains are
// independent, so a late joiner's catch-up on many publishers (publisher
// order, where heads rather than announcements lead to the segments) is not
// one round trip and one verification at a time. At most
// the client's prefetch bound (WithPrefetchBytes) is held; whatever fails or exceeds that is simply not
// prefetched, and delivery reads it again and handles it.
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
		p   *prefetched
	}
	var budget atomic.Int64
	budget.Store(int64(s.c.opts.prefetchBytes))
	results := make([][]found, len(jobs))
	_ = s.c.eng.blobs.parallel(ctx, len(jobs), func(ctx context.Context, i int) error {
		j := jobs[i]
		ref := j.a.Seg
		for !ref.IsZero() && ctx.Err() == nil {
			p, size := s.fetchVerified(ctx, ref, j.a.Pub)
			// A segment that does not verify ends the walk: its Prev is
			// not trusted.
			if p == nil || budget.Add(-int64(size)) < 0 {
				return nil
			}
			results[i] = append(results[i], found{ref, p})
			if p.seg.First <= j.from || p.seg.First <= 1 {
				return nil
			}
			ref = p.seg.Prev
		}
		return nil
	})
	s.pre = make(map[Ref]*prefetched)
	for _, r := range results {
		for _, f := range r {
			s.pre[f.ref] = f.p
		}
	}
}
