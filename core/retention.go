package core

// Retention and folding: snapshots of the coordinator window, the
// retention policy applied at fold time.

import (
	"context"
	"errors"
	"time"
)

// Retention bounds how much history a late joiner receives. Zero fields
// mean "no limit".
//
// In topic order it is topic-wide and applied when the coordinator window
// is folded into a snapshot, at snapshot granularity: at least MaxMessages
// of the newest messages stay retained, and snapshots whose newest message
// is older than MaxAge are dropped; the current window is always retained.
// In publisher order it is per publisher: each publisher's head record
// retains its newest MaxMessages, and those younger than MaxAge. On stores
// with backend.Deleter what retention drops is deleted (see WithoutReclaim
// and docs/protocol.md, "Bounded storage"). Every client that publishes to
// a topic should use the same policy.
type Retention struct {
	// MaxMessages keeps at least this many of the newest messages.
	MaxMessages uint64
	// MaxAge drops messages older than this (by the publishers' clocks).
	MaxAge time.Duration
}

func (e *engine) loadSnapshot(ctx context.Context, ref Ref) (*snapshot, error) {
	data, err := e.blobs.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	return decodeSnapshot(data)
}

// fold moves the coordinator window into a new immutable snapshot, folds
// the window's heads into the registry, applies the retention policy and
// reclaims what an earlier fold dropped from retention (and the registry
// blobs two folds old). It only writes content-addressed blobs (and deletes
// unreachable ones), so concurrent folds of the same state are harmless.
func (e *engine) fold(ctx context.Context, tk topicKeys, st *coordState) (*coordState, error) {
	reg, err := e.updateRegistry(ctx, tk, st.Registry, st.hot)
	if err != nil {
		return nil, err
	}
	snap := &snapshot{Prev: st.Snap, From: st.SnapCount, Anns: st.Window}
	for _, a := range snap.Anns {
		snap.Msgs += a.To - a.From + 1
		snap.MaxTime = max(snap.MaxTime, a.Time)
	}
	ref, err := e.blobs.put(ctx, snap.encode())
	if err != nil {
		return nil, err
	}
	next := st.clone()
	next.Snap, next.SnapCount, next.Window = ref, st.Count, nil
	next.Registry, next.OldRegistry = reg, st.Registry
	next.rebuildHot()
	next.RetainFrom = e.retainFrom(ctx, snap, st.RetainFrom)
	next.ReclaimedTo = e.reclaim(ctx, tk, st)
	return next, nil
}

// retainFrom walks the snapshot chain from newest and returns the first
// announcement index the retention policy keeps. Read errors keep more,
// not less.
func (e *engine) retainFrom(ctx context.Context, newest *snapshot, old uint64) uint64 {
	r := e.cfg.retention
	if r.MaxMessages == 0 && r.MaxAge == 0 {
		return old
	}
	cutoff := int64(0)
	if r.MaxAge > 0 {
		cutoff = e.now().Add(-r.MaxAge).UnixNano()
	}
	keep := newest.From + uint64(len(newest.Anns))
	var total uint64
	for s := newest; s != nil; {
		if s.MaxTime < cutoff {
			break
		}
		keep = s.From
		total += s.Msgs
		if (r.MaxMessages > 0 && total >= r.MaxMessages) || s.Prev.IsZero() || s.From <= old {
			break
		}
		next, err := e.loadSnapshot(ctx, s.Prev)
		if err != nil {
			return old
		}
		s = next
	}
	return max(keep, old)
}

// annsHeldMax bounds how many announcements eachAnn keeps from its walk
// back along the snapshot chain. A longer chain is walked twice (back for
// the references, forward for the announcements, one snapshot at a time),
// so that a catch-up holds a bounded part of the history, not all of it.
var annsHeldMax = 4096 // a variable for tests

// errStopEach ends an eachAnn walk early, without an error.
var errStopEach = errors.New("core: stop")

// eachAnn calls fn with the announcements of index >= from, in order, in
// consecutive parts (a snapshot's, then the window's), reading snapshots as
// needed. fn returning errStopEach ends the walk with no error; another
// error ends it with that error.
func (e *engine) eachAnn(ctx context.Context, st *coordState, from uint64, fn func([]announcement) error) error {
	err := e.eachAnnParts(ctx, st, from, fn)
	if errors.Is(err, errStopEach) {
		return nil
	}
	return err
}

func (e *engine) eachAnnParts(ctx context.Context, st *coordState, from uint64, fn func([]announcement) error) error {
	// Parts are gathered up to prefetchWindow announcements (fn prefetches
	// their segments in parallel), not handed over a snapshot at a time.
	var buf []announcement
	gather := func(anns []announcement) error {
		if len(buf) == 0 && len(anns) >= prefetchWindow {
			return fn(anns)
		}
		buf = append(buf, anns...)
		if len(buf) < prefetchWindow {
			return nil
		}
		err := fn(buf)
		buf = buf[:0]
		return err
	}
	if err := e.walkAnns(ctx, st, from, gather); err != nil {
		return err
	}
	if len(buf) > 0 {
		return fn(buf)
	}
	return nil
}

func (e *engine) walkAnns(ctx context.Context, st *coordState, from uint64, fn func([]announcement) error) error {
	if from >= st.Count {
		return nil
	}
	if from < st.SnapCount {
		// The snapshots holding announcements from `from` on, newest first:
		// their references, and their announcements while few.
		var (
			refs  []Ref
			held  [][]announcement
			total int
		)
		for ref := st.Snap; !ref.IsZero(); {
			s, err := e.loadSnapshot(ctx, ref)
			if err != nil {
				return err
			}
			anns := s.Anns
			if from > s.From {
				anns = anns[min(from-s.From, uint64(len(anns))):]
			}
			refs = append(refs, ref)
			if total += len(anns); total <= annsHeldMax {
				held = append(held, anns)
			} else {
				held = nil
			}
			if s.From <= from {
				break
			}
			ref = s.Prev
		}
		for i := len(refs) - 1; i >= 0; i-- {
			var anns []announcement
			if held != nil {
				anns = held[i]
			} else {
				s, err := e.loadSnapshot(ctx, refs[i])
				if err != nil {
					return err
				}
				anns = s.Anns
				if from > s.From {
					anns = anns[min(from-s.From, uint64(len(anns))):]
				}
			}
			if len(anns) == 0 {
				continue
			}
			if err := fn(anns); err != nil {
				return err
			}
		}
	}
	w := st.Window
	if from > st.SnapCount {
		w = w[from-st.SnapCount:]
	}
	if len(w) == 0 {
		return nil
	}
	return fn(w)
}
