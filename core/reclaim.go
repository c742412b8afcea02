package core

// Reclaiming in topic order: deleting history below retention at fold time,
// within the durable subscribers' floor.

import (
	"context"
	"errors"
	"slices"

	"github.com/stickypub/stickypub/backend"
)

// DurableFloor reports the oldest position that durable subscribers of a
// topic still need, so that reclaiming never deletes it: the lowest
// announcement index (ordered mode) any durable subscriber has not yet
// acknowledged past. ok false means no durable subscriber needs anything
// below retention. An error skips reclaiming for that fold (nothing is
// deleted on doubt).
type DurableFloor func(ctx context.Context, topic string) (index uint64, ok bool, err error)

// WithDurableFloor installs an extra hook that bounds reclaiming (for
// positions kept outside the store). The topic's own durable subscriptions
// always bound it (engine.durableFloor); the lower of the two wins.
func WithDurableFloor(fn DurableFloor) Option {
	return func(o *options) { o.durableFloor = fn; o.engineOpt("WithDurableFloor") }
}

// WithoutReclaim keeps everything retention dropped in the store (by
// default it is deleted on stores that implement backend.Deleter).
func WithoutReclaim() Option {
	return func(o *options) { o.noReclaim = true; o.engineOpt("WithoutReclaim") }
}

// reclaim deletes the history that st already had below retention and
// returns the new ReclaimedTo. It runs while folding, before the folded
// coordinator is written, on the state that writer read: what it deletes
// was published as dropped by an earlier fold, so a reader that started
// from a coordinator written since then never needs it (one fold of grace
// for readers that started before; a reader that still finds a record
// gone reports a gap with its range).
//
// What it deletes, per dropped snapshot (oldest first): the segments of
// every announcement (walking Prev from the announced segment down to the
// announcement's first seq) with their chunks, and the snapshot blob
// itself (last, so that an interrupted reclaim is finished by the next
// fold). Deleting what is
// already gone is not an error, so concurrent folds may both do it.
//
// Only in ordered mode (where the coordinator's retention is the topic's),
// only on stores with backend.Deleter, and never at or above the durable
// floor.
func (e *engine) reclaim(ctx context.Context, tk topicKeys, st *coordState) uint64 {
	e.reclaimRegistry(ctx, tk, st)
	d, ok := e.store.(backend.Deleter)
	if !ok || !e.ordered || e.cfg.noReclaim || st.RetainFrom <= st.ReclaimedTo {
		return st.ReclaimedTo
	}
	target := st.RetainFrom
	// The topic's own durable subscribers (their records are listed in
	// st.Subs) pin their acknowledged positions: the announcement index
	// and, per publisher, the lowest next seq a cursor still names.
	idx, nexts, ok, err := e.durableFloor(ctx, tk, st)
	if err != nil {
		e.cfg.logger.Warn("stickypub: durable positions unknown, not reclaiming", "topic", tk.name, "err", err)
		return st.ReclaimedTo
	}
	if ok {
		target = min(target, idx)
	}
	if e.cfg.durableFloor != nil {
		idx, ok, err := e.cfg.durableFloor(ctx, tk.name)
		if err != nil {
			e.cfg.logger.Warn("stickypub: durable floor unknown, not reclaiming", "topic", tk.name, "err", err)
			return st.ReclaimedTo
		}
		if ok {
			target = min(target, idx)
		}
	}
	if target <= st.ReclaimedTo {
		return st.ReclaimedTo
	}
	// Collect the snapshots entirely below target, newest first, stopping
	// at what is already reclaimed.
	var dropped []*snapshot
	var refs []Ref
	for ref := st.Snap; !ref.IsZero(); {
		s, err := e.loadSnapshot(ctx, ref)
		if err != nil {
			e.cfg.logger.Warn("stickypub: reclaim: read snapshot", "topic", tk.name, "err", err)
			return st.ReclaimedTo
		}
		if s.From < st.ReclaimedTo {
			break
		}
		if s.From+uint64(len(s.Anns)) <= target {
			dropped = append(dropped, s)
			refs = append(refs, ref)
		}
		if s.From <= st.ReclaimedTo {
			break
		}
		ref = s.Prev
	}
	done := st.ReclaimedTo
	for i := len(dropped) - 1; i >= 0; i-- {
		s := dropped[i]
		if s.From != done {
			break // not contiguous with what is reclaimed (should not happen)
		}
		if holdsNeeded(s, nexts) {
			break // a durable cursor still needs a segment it announces
		}
		if err := e.reclaimSnapshot(ctx, d, tk, s, refs[i]); err != nil {
			e.cfg.logger.Warn("stickypub: reclaim", "topic", tk.name, "err", err)
			break
		}
		done = s.From + uint64(len(s.Anns))
		e.reclaimed.Add(1)
	}
	return done
}

// holdsNeeded reports whether snapshot s announces a seq at or above a
// publisher's next seq in nexts (a durable cursor still delivers it).
func holdsNeeded(s *snapshot, nexts map[PublisherID]uint64) bool {
	for _, a := range s.Anns {
		if n, ok := nexts[a.Pub]; ok && a.To >= n {
			return true
		}
	}
	return false
}

// reclaimRegistry deletes the registry blobs that the fold before st's
// last one replaced (st.OldRegistry's root and the shards st.Registry no
// longer shares): nobody who read a coordinator written since the last
// fold uses them.
func (e *engine) reclaimRegistry(ctx context.Context, tk topicKeys, st *coordState) {
	d, ok := e.store.(backend.Deleter)
	if !ok || e.cfg.noReclaim {
		return
	}
	garbage, err := e.registryGarbage(ctx, tk, st.OldRegistry, st.Registry)
	if err != nil {
		if !errors.Is(err, backend.ErrNotFound) { // gone: reclaimed already
			e.cfg.logger.Warn("stickypub: reclaim registry", "topic", tk.name, "err", err)
		}
		return
	}
	for _, g := range garbage {
		if err := e.blobs.delete(ctx, d, g, 0); err != nil {
			e.cfg.logger.Warn("stickypub: reclaim registry", "topic", tk.name, "err", err)
			return
		}
	}
}

// reclaimSnapshot deletes one dropped snapshot and what only it reaches.
func (e *engine) reclaimSnapshot(ctx context.Context, d backend.Deleter, tk topicKeys, s *snapshot, ref Ref) error {
	err := e.blobs.parallel(ctx, len(s.Anns), func(ctx context.Context, i int) error {
		return e.reclaimAnn(ctx, d, s.Anns[i])
	})
	if err != nil {
		return err
	}
	return e.blobs.delete(ctx, d, ref, 0)
}

// reclaimAnn deletes the segments holding announcement a's range.
func (e *engine) reclaimAnn(ctx context.Context, d backend.Deleter, a announcement) error {
	for ref := a.Seg; !ref.IsZero(); {
		data, err := e.blobs.get(ctx, ref)
		if errors.Is(err, backend.ErrNotFound) || errors.Is(err, ErrMalformed) {
			return nil // already gone, or not ours to judge
		}
		if err != nil {
			return err
		}
		sg, err := decodeSegment(data)
		if err != nil || PublisherIDOf(sg.Publisher) != a.Pub || sg.last() < a.From {
			return nil // never delete what the announcement does not name
		}
		if err := e.blobs.delete(ctx, d, ref, 0); err != nil {
			return err
		}
		if sg.First <= a.From {
			return nil
		}
		ref = sg.Prev
	}
	return nil
}

// reclaimBlobs deletes blobs nobody references any more (best effort).
func (e *engine) reclaimBlobs(ctx context.Context, refs []Ref) {
	d, ok := e.store.(backend.Deleter)
	if !ok || e.cfg.noReclaim {
		return
	}
	for _, ref := range slices.Compact(refs) {
		if err := e.blobs.delete(ctx, d, ref, 0); err != nil {
			e.cfg.logger.Warn("stickypub: reclaim blob", "ref", ref, "err", err)
		}
	}
}
