package core

// Retention and folding: snapshots of the coordinator window, the
// retention policy applied at fold time.

import (
	"context"
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

// annsFrom returns the announcements with index >= from, in order, reading
// snapshots as needed.
func (e *engine) annsFrom(ctx context.Context, st *coordState, from uint64) ([]announcement, error) {
	if from >= st.Count {
		return nil, nil
	}
	if from >= st.SnapCount {
		return st.Window[from-st.SnapCount:], nil
	}
	var chain [][]announcement
	for ref := st.Snap; !ref.IsZero(); {
		s, err := e.loadSnapshot(ctx, ref)
		if err != nil {
			return nil, err
		}
		if from > s.From {
			chain = append(chain, s.Anns[from-s.From:])
			break
		}
		chain = append(chain, s.Anns)
		if s.From <= from {
			break
		}
		ref = s.Prev
	}
	var out []announcement
	for i := len(chain) - 1; i >= 0; i-- {
		out = append(out, chain[i]...)
	}
	return append(out, st.Window...), nil
}
