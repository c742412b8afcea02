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
	var budget, skelBudget atomic.Int64
	budget.Store(int64(s.c.opts.prefetchBytes))
	skelBudget.Store(int64(s.c.opts.prefetchBytes))
	s.pre, s.skel = make(map[Ref]*prefetched), nil
	// Two rounds, each read in parallel across the chains and checked as
	// one batch of signatures: first the tips alone, then, behind each tip
	// that verified, the rest of its chain. A tip comes from a head record
	// that was not verified (see pollHeads), so a forged one costs one read
	// and ends its chain; every segment behind a verified one is reached
	// through Prev links its publisher signed.
	//
	// Past the prefetch bound the walk goes on, still in parallel across
	// the chains, keeping of each segment only its place in the chain (a
	// skeleton, see chainSkel), up to as many again of the bound: delivery
	// then knows the chain without reading it one segment at a time, and
	// reads those segments again a window at a time (reloadWindow). A
	// skeleton's segment is the one its successor's signed Prev names (a
	// blob is checked against its digest), so its header is the
	// publisher's; its messages are verified when delivery reads it again.
	type walk struct {
		job
		ref   Ref
		got   []*segPrep
		refs  []Ref
		skels map[Ref]*chainSkel
		done  bool // reached the next expected seq or the log's start, or a read failed or went over the bounds
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
		_ = s.c.eng.blobs.parallelN(ctx, readFanout, len(walks), func(ctx context.Context, i int) error {
			w := walks[i]
			w.got, w.refs = w.got[:0], w.refs[:0]
			for ref := w.ref; len(w.got)+len(w.skels) < limit && ctx.Err() == nil; {
				var sg *segment
				if round > 0 && (len(w.skels) > 0 || budget.Load() < 0) {
					// Past the bound: the segment's place in its chain only.
					var n int
					if sg, n = s.fetchSegment(ctx, ref, w.a.Pub); sg == nil || skelBudget.Add(-skelBytes) < 0 {
						w.done = true
						return nil
					}
					put(&w.skels, ref, &chainSkel{pub: w.a.Pub, first: sg.First, last: sg.last(), prev: sg.Prev, size: n + segBytes(sg)})
				} else {
					var (
						p    *segPrep
						size int
					)
					if h := w.a.head; round == 0 && h.carries(ref) {
						// The head carries the segment (format 3): no read.
						p, size = s.prepareCarried(h, w.a.Pub)
					} else {
						p, size = s.fetchPrepared(ctx, ref, w.a.Pub)
					}
					if p == nil {
						w.done = true
						return nil
					}
					if budget.Add(-int64(size)) < 0 {
						if round == 0 {
							w.done = true
							return nil
						}
						continue // read it again as a skeleton (from the cache)
					}
					sg = p.seg
					w.got, w.refs = append(w.got, p), append(w.refs, ref)
				}
				if sg.First <= w.from || sg.First <= 1 || sg.Prev.IsZero() {
					w.done = true
					return nil
				}
				ref = sg.Prev
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
			if good {
				for ref, sk := range w.skels {
					put(&s.skel, ref, sk)
				}
			}
			if good && !w.done && len(w.got) > 0 {
				w.ref = w.got[len(w.got)-1].seg.Prev
				next = append(next, w)
			}
		}
		walks = next
	}
}

// chainSkel is what a poll keeps of a segment it walked past the prefetch
// bound: its publisher, seqs and Prev link, so that delivery can lay out
// the chain without reading it again one segment at a time.
type chainSkel struct {
	pub         PublisherID
	first, last uint64
	prev        Ref
	size        int // what the segment holds when read (as fetchPrepared counts it)
}

// skelBytes is about what one chainSkel costs held in a map.
const skelBytes = 160

// prepareCarried prepares the segment a format-3 head record h carries, as
// fetchPrepared does one it reads (nil if it is not pub's or malformed:
// delivery reads it from the store and handles that). Its bytes are the
// ones stored under h.Seg, which is their digest.
func (s *Subscription) prepareCarried(h *headRecord, pub PublisherID) (*segPrep, int) {
	if PublisherIDOf(h.iseg.Publisher) != pub {
		return nil, len(h.inline)
	}
	p, err := prepareSegment(s.tk.name, h.iseg)
	if err != nil {
		return nil, len(h.inline)
	}
	return p, len(h.inline) + segBytes(h.iseg)
}
