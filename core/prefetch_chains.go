package core

// Prefetching publishers' segment chains in parallel (publisher order).

import (
	"context"
	"sync/atomic"
)

// prefetchChains reads in parallel across publishers the segments a poll
// is about to deliver from each tip (a head: publisher, newest segment,
// last seq): from the tip back along Prev until the segment holding the
// publisher's next expected seq, one step of every chain at a time, and
// verifies the signatures of each step as one batch (verifyPrepared).
// Publishers' chains are independent, so a late joiner's catch-up on many
// publishers (publisher order, where heads rather than announcements lead
// to the segments) is not one round trip and one verification at a time,
// and a poll over many publishers with a small segment each costs one
// batch equation rather than one Ed25519 verification per segment. At most
// the client's prefetch bound (WithPrefetchBytes) is held; whatever fails
// or exceeds that is simply not prefetched, and delivery reads it again
// and handles it.
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
	// The chains are walked a step at a time, all of them together: each
	// step reads the next segment of every chain still walking in parallel
	// and checks their signatures as one batch, and only a segment that
	// verifies leads on (its Prev is trusted), so a forged segment costs
	// one read and ends its chain.
	refs := make([]Ref, len(jobs))
	for i, j := range jobs {
		refs[i] = j.a.Seg
	}
	for len(jobs) > 0 && ctx.Err() == nil {
		preps := make([]*segPrep, len(jobs))
		_ = s.c.eng.blobs.parallel(ctx, len(jobs), func(ctx context.Context, i int) error {
			p, size := s.fetchPrepared(ctx, refs[i], jobs[i].a.Pub)
			if p != nil && budget.Add(-int64(size)) >= 0 {
				preps[i] = p
			}
			return nil
		})
		msgs := verifyPrepared(preps)
		walking, next := jobs[:0], refs[:0]
		for i, j := range jobs {
			if msgs[i] == nil {
				continue // unread, over the bound, or not verified: delivery handles it
			}
			sg := preps[i].seg
			s.pre[refs[i]] = &prefetched{seg: sg, msgs: msgs[i]}
			if sg.First > j.from && sg.First > 1 && !sg.Prev.IsZero() {
				walking, next = append(walking, j), append(next, sg.Prev)
			}
		}
		jobs, refs = walking, next
	}
}
