package core

// Merging announcements, subscriptions and leases into a topic's
// coordinator: the path through an engine-side update (backend.Updater,
// one transaction that bolt group-commits), folds planned outside it, and
// the registry lookups the merge needs. The compare-and-put path is in
// coord_cas.go, the record itself in coord_record.go.

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/stickypub/stickypub/backend"
)

// errNeedCAS aborts an engine-side Update whose result needs blob writes
// (a fold or an oversize coordinator); the caller falls back to the
// Get/CompareAndPut path, which can do I/O between read and write.
var errNeedCAS = errors.New("coordinator update needs the compare-and-put path")

// errNoBatch: a coordOp carrying records to write in the same atomic step
// (coordOp.batch) cannot be merged that way (the store is no
// backend.Batcher, or the merge needs the compare-and-put path); nothing
// was written, and the caller writes the records one by one.
var errNoBatch = errors.New("coordinator update cannot carry a batch")

// maxBatchRuns bounds the runs of a batched coordinator update within one
// UpdateWith. bolt runs it once, inside its transaction; Redis and a remote
// handle of a shared bolt file run it where the caller is and again each
// time the coordinator moved before their write landed. Past this many
// runs the batch takes the step-by-step path (measured on Redis, 100
// separate publishers in topic order: 1,251-1,257 msgs/s rerunning the
// batch until it lands, 1,818-2,005 with this bound, 1,496-1,975 before
// batches existed; 10 publishers 3,231-3,272 against 2,632-3,051).
const maxBatchRuns = 3

func (e *engine) needsFold(st *coordState) bool { return len(st.Window) >= e.foldWindow }

// announceDirect merges op into the topic coordinator and returns once the
// merged state is visible. On backends that are not linearizable it reads the
// coordinator back and merges again until the read shows op.
func (e *engine) announceDirect(ctx context.Context, tk topicKeys, op coordOp) (*coordState, error) {
	for attempt := 0; ; attempt++ {
		st, err := e.mergeCoord(ctx, tk, op)
		if err != nil {
			return nil, err
		}
		if e.caps.Consistency >= backend.Linearizable {
			return st, nil
		}
		rb, _, err := e.readCoord(ctx, tk)
		if err == nil {
			if ok, _ := rb.covers(op, e.coldLookup(ctx, tk, rb)); ok {
				return rb, nil
			}
		}
		e.retries.Add(1)
		if err := sleepJitter(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

func (e *engine) mergeCoord(ctx context.Context, tk topicKeys, op coordOp) (*coordState, error) {
	up, ok := e.store.(backend.Updater)
	if _, batches := e.store.(backend.Batcher); op.batch != nil && !batches {
		return nil, errNoBatch
	}
	if !ok && op.batch == nil {
		// A Batcher without Updater (Redis) merges batches through
		// UpdateWith below and everything else by compare-and-put.
		return e.casCoord(ctx, tk, op, 0)
	}
	var plan *foldPlan
	misses := 0
	e.prewarm(ctx, tk, op)
	for attempt := 0; ; attempt++ {
		st, need, err := e.updateCoord(ctx, up, tk, op, plan)
		if err == nil && st != nil {
			e.rememberWritten(tk, st, 0) // for prewarm; the version is not used on Updater stores
		}
		switch {
		case errors.Is(err, errNeedFold):
			// Write the snapshot blob outside the transaction, then fold
			// inside it: concurrent writers keep coalescing, nobody races.
			if plan, err = e.prepareFold(ctx, tk, len(op.anns)); err != nil {
				if !retryable(err) {
					return nil, err
				}
				if err := sleepJitter(ctx, attempt); err != nil {
					return nil, err
				}
			}
		case errors.Is(err, errNeedBlobs) && misses < 8:
			// Registry blobs the merge needs are not cached: load them
			// outside the transaction and try again.
			misses++
			for _, p := range need.pubs {
				if _, err := e.registryHead(ctx, tk, need.root, p); err != nil && !retryable(err) {
					return nil, err
				}
			}
		case errors.Is(err, errNeedCAS) || errors.Is(err, errNeedBlobs):
			// The state no longer fits a value and must become a blob (or
			// the registry cache keeps missing): one compare-and-put
			// attempt, then back to the engine-side update.
			if op.batch != nil {
				return nil, errNoBatch
			}
			st, err = e.casCoord(ctx, tk, op, 1)
			if !errors.Is(err, errLostRace) {
				return st, err
			}
			if err := sleepJitter(ctx, attempt); err != nil {
				return nil, err
			}
		default:
			return st, err
		}
	}
}

// prewarm loads into the cache the registry blobs that merging op into
// the newest coordinator state this engine has seen needs, so that the
// engine-side update rarely aborts for a cache miss.
func (e *engine) prewarm(ctx context.Context, tk topicKeys, op coordOp) {
	st, _, ok := e.lastWritten(tk)
	if !ok || st.Registry.IsZero() {
		return
	}
	for _, a := range op.anns {
		if _, hot := st.hot[a.Pub]; !hot {
			if _, err := e.cachedRegistryHead(st.Registry, a.Pub); err != nil {
				_, _ = e.registryHead(ctx, tk, st.Registry, a.Pub)
			}
		}
	}
}

// errNeedFold asks the caller of an engine-side update to prepare a fold.
var errNeedFold = errors.New("coordinator window needs folding")

// foldPlan is a fold prepared outside the engine's transaction: the
// snapshot of announcements [from, to) and the registry as of to are
// already stored as blobs, and the history below reclaimedTo is deleted.
type foldPlan struct {
	from, to    uint64
	snap        Ref
	registry    Ref
	oldRegistry Ref
	retainFrom  uint64
	reclaimedTo uint64
}

// applyTo folds st if st still starts its window at p.from and holds all
// of [p.from, p.to): the window is append-only between folds, so the
// announcements are the very ones in the snapshot.
func (p *foldPlan) applyTo(st *coordState) bool {
	if p == nil || st.SnapCount != p.from || st.Count < p.to {
		return false
	}
	st.Window = slices.Clone(st.Window[p.to-p.from:])
	st.rebuildHot()
	st.Snap, st.SnapCount, st.Registry, st.OldRegistry = p.snap, p.to, p.registry, p.oldRegistry
	st.RetainFrom = max(st.RetainFrom, p.retainFrom)
	st.ReclaimedTo = max(st.ReclaimedTo, p.reclaimedTo)
	return true
}

// prepareFold reads the coordinator and stores the snapshot of its whole
// window (the update that asked for it, adding up to adding announcements,
// would have filled the window). It returns nil when the window is too
// short for that: someone else just folded (many engines that see a full
// window at once would otherwise all fold the same state).
func (e *engine) prepareFold(ctx context.Context, tk topicKeys, adding int) (*foldPlan, error) {
	st, _, err := e.readCoord(ctx, tk)
	if err != nil || len(st.Window) == 0 || len(st.Window)+adding < e.foldWindow {
		return nil, err
	}
	next, err := e.fold(ctx, tk, st)
	if err != nil {
		return nil, err
	}
	return &foldPlan{from: st.SnapCount, to: st.Count, snap: next.Snap, registry: next.Registry, oldRegistry: next.OldRegistry,
		retainFrom: next.RetainFrom, reclaimedTo: next.ReclaimedTo}, nil
}

// blobNeed names the registry lookups an engine-side update missed.
type blobNeed struct {
	root Ref
	pubs []PublisherID
}

// updateCoord merges op with the engine-side Update (one transaction, which
// bolt coalesces with concurrent writers into one commit), folding by plan
// when it still applies. Registry lookups use cached blobs only; misses
// are returned with errNeedBlobs. up is nil on a Batcher without Updater,
// which only comes here with op.batch.
func (e *engine) updateCoord(ctx context.Context, up backend.Updater, tk topicKeys, op coordOp, plan *foldPlan) (*coordState, blobNeed, error) {
	var (
		out  *coordState
		need blobNeed
	)
	runs := 0
	update := func(cur backend.Entry) ([]byte, error) {
		if runs++; op.batch != nil && runs > maxBatchRuns {
			// The store runs this away from the data and keeps finding the
			// coordinator moved (other processes' publishes): rerunning the
			// whole batch loses to the step-by-step path, whose
			// compare-and-put loop backs off and reads afresh.
			return nil, errNoBatch
		}
		st := e.newCoord()
		if cur.Version != 0 {
			if len(cur.Value) == 0 || cur.Value[0] != coordInline {
				return nil, errNeedCAS
			}
			var err error
			if st, err = decodeCoordState(cur.Value); err != nil {
				return nil, err
			}
			if err := e.checkOrder(st); err != nil {
				return nil, err
			}
		}
		folded := plan.applyTo(st)
		need = blobNeed{root: st.Registry}
		changed, err := st.apply(op, e.now().UnixNano(), func(p PublisherID) (uint64, error) {
			h, err := e.cachedRegistryHead(st.Registry, p)
			if err != nil {
				need.pubs = append(need.pubs, p)
				return 0, nil
			}
			return h, nil
		})
		if err != nil {
			return nil, err
		}
		if len(need.pubs) > 0 {
			return nil, errNeedBlobs
		}
		if !changed && !folded {
			out = st
			return nil, backend.ErrSkipUpdate
		}
		if !folded && e.needsFold(st) {
			return nil, errNeedFold
		}
		enc := st.encode()
		if len(enc) > e.maxValue {
			return nil, errNeedCAS
		}
		out = st
		return enc, nil
	}
	var err error
	if op.batch != nil {
		// The records of the batch land with the merge, or nothing does.
		var vers []backend.Version
		if _, vers, err = e.store.(backend.Batcher).UpdateWith(ctx, op.batch.puts, tk.coord, update); err == nil {
			op.batch.vers = vers
		}
	} else {
		_, err = up.Update(ctx, tk.coord, update)
	}
	if err != nil && !errors.Is(err, errNeedCAS) && !errors.Is(err, errNeedFold) && !errors.Is(err, errNeedBlobs) {
		return nil, need, fmt.Errorf("core: update coordinator of %q: %w", tk.name, err)
	}
	return out, need, err
}

// coldLookup returns a registry lookup for st that reads blobs as needed.
// In unordered mode a registry blob that is gone (expired: nobody refreshes
// the registry on a DHT) reads as "not registered", which only costs a
// repeated registration; in ordered mode it is an error (the coordinator
// was replaced and the blob reclaimed: read the coordinator again).
func (e *engine) coldLookup(ctx context.Context, tk topicKeys, st *coordState) headLookup {
	return func(p PublisherID) (uint64, error) {
		h, err := e.registryHead(ctx, tk, st.Registry, p)
		if err != nil && !e.ordered && errors.Is(err, backend.ErrNotFound) {
			return 0, nil
		}
		return h, err
	}
}

// headOf returns p's highest announced seq in st.
func (e *engine) headOf(ctx context.Context, tk topicKeys, st *coordState, p PublisherID) (uint64, error) {
	return st.head(p, e.coldLookup(ctx, tk, st))
}
