package core

// Delivery in publisher order: a poll reads the head records that can have
// changed (leases, hints, pending and round-robin re-reads) and delivers each
// publisher's log in seq order.

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/stickypub/stickypub/backend"
)

// pollHeads is poll for unordered mode (backends that are not
// linearizable): the coordinator is the publisher registry, and each
// registered publisher's signed head record says how far its log reaches.
// Registrations are remembered, so a stale or replaced coordinator cannot
// make a publisher disappear.
//
// A poll reads only the heads that can have changed since the previous
// one: publishers whose activity lease was live since then (see active.go),
// newly registered ones, and those whose delivery did not complete. A
// subscription whose previous poll is too old for the leases to be trusted
// (or its first poll) reads every registered head once (a full sweep).
func (s *Subscription) pollHeads(ctx context.Context) (int, error) {
	c := s.c
	start := c.eng.now()
	narrow, wide, coordHint, dirty, watched := false, false, true, map[PublisherID]bool(nil), map[PublisherID]bool(nil)
	if s.hints != nil {
		wide, coordHint, dirty, watched = s.hints.take()
		narrow = !wide
	}
	st := s.lastCoord
	if !narrow || coordHint || st == nil {
		// A hint-driven poll reads the coordinator only when it changed
		// (registrations and leases); a missed hint is caught by the next
		// safety poll, which reads everything.
		var err error
		if st, _, err = c.eng.readCoordShared(ctx, *s.tk); err != nil {
			s.untakeHints(wide, dirty)
			return 0, err
		}
		s.lastCoord = st
	}
	want, full, err := changedSince(st, func() (map[PublisherID]uint64, error) { return c.eng.registered(ctx, *s.tk, st) }, s.lastPoll, start)
	if err != nil {
		s.untakeHints(wide, dirty)
		return 0, err
	}
	for p := range want {
		put(&s.known, p, true)
	}
	if full {
		for p := range s.known {
			want[p] = true
		}
	}
	narrow = narrow && !full
	if narrow {
		narrowHeads(want, dirty, watched)
	}
	for p := range s.pending {
		want[p] = true
	}
	if !full && !narrow {
		for _, p := range sweepNext(s.known, &s.sweep, sweepPerPoll, want) {
			want[p] = true
		}
	}
	pids := slices.SortedFunc(maps.Keys(want), comparePID)
	heads, errs := c.eng.readHeadRecords(ctx, *s.tk, pids, false)
	// Read and verify the segments to deliver, publishers in parallel.
	tips := make([]announcement, 0, len(heads))
	for i, h := range heads {
		if h != nil {
			tips = append(tips, announcement{Pub: pids[i], Seg: h.Seg, To: h.Last, head: h})
		}
	}
	s.prefetchChains(ctx, tips)
	defer func() { s.pre, s.skel = nil, nil }()
	clean := true
	n := 0
	for i, p := range pids {
		delete(s.pending, p)
		h := heads[i]
		if h == nil {
			switch {
			case errors.Is(errs[i], ErrMalformed) || errors.Is(errs[i], ErrBadSignature):
				s.invalidOnce(digest([]byte(errs[i].Error())), errs[i])
				errs[i] = nil
			case errors.Is(errs[i], backend.ErrNotFound):
				// Registered, so its head was written: not visible yet.
				if put(&s.headMissing, p, s.headMissing[p]+1); s.headMissing[p] < missingLimitWeak {
					put(&s.pending, p, true)
				}
			default:
				put(&s.pending, p, true)
				clean = false
			}
			continue
		}
		delete(s.headMissing, p)
		// The head's signature is checked only where the head alone
		// decides something: a Base that would skip messages (below) or a
		// Last that delivery cannot reach. Otherwise it only points at a
		// segment, and every delivered message is verified by its
		// segment's signature; a forged pointer delivers nothing. (A
		// format-2 head's reference is not signed: delivery checks that
		// the segment it names is the one the head carries.)
		if h.Base > s.next(p) {
			if err := h.verify(s.tk.name); err != nil {
				s.invalidOnce(digest(h.Sig), err)
				continue
			}
			_, had := s.expected[p]
			if s.opts.fromStart && !had {
				// First sight of this publisher by a FromStart subscription:
				// it starts at what the publisher retains, as a late joiner.
				s.setNext(p, h.Base)
			} else {
				s.gap(p, s.next(p), h.Base-1, reasonRetention)
			}
		}
		k, err := s.deliver(ctx, announcement{Pub: p, Seg: h.Seg, To: h.Last, head: h})
		n += k
		if err != nil {
			for _, q := range pids[i:] {
				put(&s.pending, q, true)
			}
			return n, err
		}
		if s.next(p) <= h.Last {
			if err := h.verify(s.tk.name); err != nil {
				s.invalidOnce(digest(h.Sig), err)
				continue
			}
			put(&s.pending, p, true) // not all delivered: look again next poll
		}
	}
	if clean {
		s.lastPoll = start
	}
	var joined []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			joined = append(joined, err)
		}
	}
	return n, errors.Join(joined...)
}

// readHeads reads and verifies the head records of pids in parallel.
// heads[i] is nil when errs[i] says why (backend.ErrNotFound when there is
// none yet).
func (e *engine) readHeads(ctx context.Context, tk topicKeys, pids []PublisherID) ([]*headRecord, []error) {
	return e.readHeadRecords(ctx, tk, pids, true)
}

// readHeadRecords is readHeads; with verify false the signatures are left
// for the caller to check where it matters (pollHeads).
func (e *engine) readHeadRecords(ctx context.Context, tk topicKeys, pids []PublisherID, verify bool) ([]*headRecord, []error) {
	heads := make([]*headRecord, len(pids))
	errs := make([]error, len(pids))
	_ = e.blobs.parallelN(ctx, readFanout, len(pids), func(ctx context.Context, i int) error {
		ent, err := e.store.Get(ctx, tk.head(pids[i]))
		if err == nil {
			var h *headRecord
			if h, err = decodeHeadUnverified(ent.Value); err == nil && PublisherIDOf(h.Publisher) != pids[i] {
				err = malformed("head record under %s signed by another key", pids[i])
			}
			if err == nil && verify {
				err = h.verify(tk.name)
			}
			if err == nil {
				heads[i] = h
			}
		}
		errs[i] = err
		return nil
	})
	return heads, errs
}
