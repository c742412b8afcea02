package core

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// errNeedCAS aborts an engine-side Update whose result needs blob writes
// (a fold or an oversize coordinator); the caller falls back to the
// Get/CompareAndPut path, which can do I/O between read and write.
var errNeedCAS = errors.New("coordinator update needs the compare-and-put path")

// readCoord returns the topic coordinator and its version (0 and an empty
// state when the topic has none yet).
//
// A coordinator stored as a blob may be replaced, and its blob reclaimed,
// between reading the key and reading the blob: the key is then read again.
func (c *engine) readCoord(ctx context.Context, tk topicKeys) (*coordState, backend.Version, error) {
	for attempt := 0; ; attempt++ {
		e, err := c.store.Get(ctx, tk.coord)
		if errors.Is(err, backend.ErrNotFound) {
			return c.newCoord(), 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("core: read coordinator of %q: %w", tk.name, err)
		}
		st, err := c.decodeCoordValue(ctx, e.Value)
		if errors.Is(err, backend.ErrNotFound) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("core: coordinator of %q: %w", tk.name, err)
		}
		return st, e.Version, nil
	}
}

func (c *engine) decodeCoordValue(ctx context.Context, v []byte) (*coordState, error) {
	st, err := c.decodeCoordAny(ctx, v)
	if err == nil {
		err = c.checkOrder(st)
	}
	return st, err
}

// decodeCoordAny decodes a coordinator value of either ordering.
func (c *engine) decodeCoordAny(ctx context.Context, v []byte) (*coordState, error) {
	if len(v) == 0 {
		return nil, malformed("empty coordinator")
	}
	if v[0] == coordBlob {
		if len(v) != 33 {
			return nil, malformed("coordinator reference of %d bytes", len(v))
		}
		ref := Ref(v[1:])
		data, err := c.blobs.get(ctx, ref)
		if err != nil {
			return nil, err
		}
		st, err := decodeCoordState(data)
		if err == nil {
			st.blob = ref
		}
		return st, err
	}
	return decodeCoordState(v)
}

func (c *engine) encodeCoordValue(ctx context.Context, st *coordState) ([]byte, error) {
	enc := st.encode()
	if len(enc) <= c.maxValue {
		return enc, nil
	}
	// Always written, never skipped because the cache has it: a
	// coordinator state can recur (a subscriber leaves again), and its
	// earlier blob may have been reclaimed since.
	ref, err := c.blobs.putFresh(ctx, enc)
	if err != nil {
		return nil, err
	}
	return append([]byte{coordBlob}, ref[:]...), nil
}

func (c *engine) needsFold(st *coordState) bool { return len(st.Window) >= c.foldWindow }

// announceDirect merges op into the topic coordinator and returns once the
// merged state is visible. On backends that are not linearizable it reads the
// coordinator back and merges again until the read shows op.
func (c *engine) announceDirect(ctx context.Context, tk topicKeys, op coordOp) (*coordState, error) {
	for attempt := 0; ; attempt++ {
		st, err := c.mergeCoord(ctx, tk, op)
		if err != nil {
			return nil, err
		}
		if c.caps.Consistency >= backend.Linearizable {
			return st, nil
		}
		rb, _, err := c.readCoord(ctx, tk)
		if err == nil {
			if ok, _ := rb.covers(op, c.coldLookup(ctx, tk, rb)); ok {
				return rb, nil
			}
		}
		c.retries.Add(1)
		if err := sleepJitter(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

func (c *engine) mergeCoord(ctx context.Context, tk topicKeys, op coordOp) (*coordState, error) {
	up, ok := c.store.(backend.Updater)
	if !ok {
		return c.casCoord(ctx, tk, op, 0)
	}
	var plan *foldPlan
	misses := 0
	c.prewarm(ctx, tk, op)
	for attempt := 0; ; attempt++ {
		st, need, err := c.updateCoord(ctx, up, tk, op, plan)
		if err == nil && st != nil {
			c.rememberWritten(tk, st, 0) // for prewarm; the version is not used on Updater stores
		}
		switch {
		case errors.Is(err, errNeedFold):
			// Write the snapshot blob outside the transaction, then fold
			// inside it: concurrent writers keep coalescing, nobody races.
			if plan, err = c.prepareFold(ctx, tk, len(op.anns)); err != nil {
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
				if _, err := c.registryHead(ctx, tk, need.root, p); err != nil && !retryable(err) {
					return nil, err
				}
			}
		case errors.Is(err, errNeedCAS) || errors.Is(err, errNeedBlobs):
			// The state no longer fits a value and must become a blob (or
			// the registry cache keeps missing): one compare-and-put
			// attempt, then back to the engine-side update.
			st, err = c.casCoord(ctx, tk, op, 1)
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
func (c *engine) prewarm(ctx context.Context, tk topicKeys, op coordOp) {
	st, _, ok := c.lastWritten(tk)
	if !ok || st.Registry.IsZero() {
		return
	}
	for _, a := range op.anns {
		if _, hot := st.hot[a.Pub]; !hot {
			if _, err := c.cachedRegistryHead(st.Registry, a.Pub); err != nil {
				_, _ = c.registryHead(ctx, tk, st.Registry, a.Pub)
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
func (c *engine) prepareFold(ctx context.Context, tk topicKeys, adding int) (*foldPlan, error) {
	st, _, err := c.readCoord(ctx, tk)
	if err != nil || len(st.Window) == 0 || len(st.Window)+adding < c.foldWindow {
		return nil, err
	}
	next, err := c.fold(ctx, tk, st)
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
// are returned with errNeedBlobs.
func (c *engine) updateCoord(ctx context.Context, up backend.Updater, tk topicKeys, op coordOp, plan *foldPlan) (*coordState, blobNeed, error) {
	var (
		out  *coordState
		need blobNeed
	)
	_, err := up.Update(ctx, tk.coord, func(cur backend.Entry) ([]byte, error) {
		st := c.newCoord()
		if cur.Version != 0 {
			if len(cur.Value) == 0 || cur.Value[0] != coordInline {
				return nil, errNeedCAS
			}
			var err error
			if st, err = decodeCoordState(cur.Value); err != nil {
				return nil, err
			}
			if err := c.checkOrder(st); err != nil {
				return nil, err
			}
		}
		folded := plan.applyTo(st)
		need = blobNeed{root: st.Registry}
		changed, err := st.apply(op, c.now().UnixNano(), func(p PublisherID) (uint64, error) {
			h, err := c.cachedRegistryHead(st.Registry, p)
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
		if !folded && c.needsFold(st) {
			return nil, errNeedFold
		}
		enc := st.encode()
		if len(enc) > c.maxValue {
			return nil, errNeedCAS
		}
		out = st
		return enc, nil
	})
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
func (c *engine) coldLookup(ctx context.Context, tk topicKeys, st *coordState) headLookup {
	return func(p PublisherID) (uint64, error) {
		h, err := c.registryHead(ctx, tk, st.Registry, p)
		if err != nil && !c.ordered && errors.Is(err, backend.ErrNotFound) {
			return 0, nil
		}
		return h, err
	}
}

// headOf returns p's highest announced seq in st.
func (c *engine) headOf(ctx context.Context, tk topicKeys, st *coordState, p PublisherID) (uint64, error) {
	return st.head(p, c.coldLookup(ctx, tk, st))
}

// errLostRace: casCoord ran out of its allowed attempts.
var errLostRace = errors.New("core: coordinator write lost the race")

// casCoord is the portable read-merge-compare-and-put loop. A lost race is
// never a lost announcement: the conflict's current state is merged with op
// and the write retried, with full-jitter backoff, until it lands or the
// state already covers op.
//
// maxRaces > 0 bounds the number of lost races before errLostRace.
func (c *engine) casCoord(ctx context.Context, tk topicKeys, op coordOp, maxRaces int) (*coordState, error) {
	// On a linearizable store without an engine-side update, start from the
	// state this engine last wrote (saves the read before every write). A
	// stale one only costs a conflict, which carries the current state; and
	// a cached state is never trusted to say "already covered".
	st, v, cached := c.lastWritten(tk)
	cached = cached && maxRaces == 0 && c.ordered
	var err error
	if !cached {
		st, v, err = c.readCoord(ctx, tk)
	}
	races := 0
	for attempt := 0; ; attempt++ {
		if err != nil {
			if !retryable(err) {
				return nil, err
			}
			c.retries.Add(1)
			if err := sleepJitter(ctx, attempt); err != nil {
				return nil, err
			}
			st, v, err = c.readCoord(ctx, tk)
			continue
		}
		next := st.clone()
		var changed bool
		if changed, err = next.apply(op, c.now().UnixNano(), c.coldLookup(ctx, tk, next)); err != nil {
			if errors.Is(err, backend.ErrNotFound) && attempt < 8 {
				// A registry blob of a replaced coordinator was reclaimed.
				cached = false
				st, v, err = c.readCoord(ctx, tk)
			}
			continue
		}
		if !changed {
			if cached {
				cached = false
				st, v, err = c.readCoord(ctx, tk)
				attempt--
				continue
			}
			return st, nil
		}
		if c.needsFold(next) {
			if next, err = c.fold(ctx, tk, next); err != nil {
				continue
			}
		}
		var val []byte
		if val, err = c.encodeCoordValue(ctx, next); err != nil {
			continue
		}
		var nv backend.Version
		nv, err = c.store.CompareAndPut(ctx, tk.coord, v, val)
		if err == nil {
			if val[0] == coordBlob {
				next.blob = Ref(val[1:])
			} else {
				next.blob = Ref{}
			}
			c.rememberWritten(tk, next, nv)
			if !st.blob.IsZero() && st.blob != next.blob && v != 0 {
				// The state this write replaced was a blob: nobody
				// needs it any more (a reader that still follows the old
				// reference reads the key again).
				c.reclaimBlobs(ctx, []Ref{st.blob})
			}
			return next, nil
		}
		if !errors.Is(err, backend.ErrConflict) {
			err = fmt.Errorf("core: write coordinator of %q: %w", tk.name, err)
			continue
		}
		staleCache := cached
		cached = false
		if staleCache {
			attempt-- // the cache was behind: not a lost race
		} else {
			c.retries.Add(1)
			if races++; maxRaces > 0 && races >= maxRaces {
				return nil, errLostRace
			}
		}
		if attempt > 0 {
			// Back off, then read afresh: a state taken before the sleep
			// would be stale after it, and a writer that keeps losing must
			// not keep writing stale states (that starved publishers).
			if err := sleepJitter(ctx, attempt); err != nil {
				return nil, err
			}
			st, v, err = c.readCoord(ctx, tk)
			continue
		}
		// First loss: retry at once from the state the conflict carries.
		if cur, ok := backend.CurrentEntry(err); ok {
			if cur.Version == 0 {
				st, v, err = c.newCoord(), 0, nil
			} else if st, err = c.decodeCoordValue(ctx, cur.Value); err == nil {
				v = cur.Version
			} else if errors.Is(err, backend.ErrNotFound) {
				st, v, err = c.readCoord(ctx, tk) // its blob was replaced and reclaimed
			}
		} else {
			st, v, err = c.readCoord(ctx, tk)
		}
	}
}

// lastWritten returns the coordinator state and version this engine last
// wrote for tk, if any. The state must not be modified.
func (c *engine) lastWritten(tk topicKeys) (*coordState, backend.Version, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.written[tk.name]
	return w.st, w.v, ok
}

func (c *engine) rememberWritten(tk topicKeys, st *coordState, v backend.Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.written) > 1024 {
		clear(c.written) // bounded; it is only a hint
	}
	c.written[tk.name] = writtenCoord{st: st, v: v}
}

// retryable reports whether an error is a transient engine failure worth
// retrying (as opposed to bad input, a closed store or corrupt data).
func retryable(err error) bool { return errors.Is(err, backend.ErrUnavailable) }

// retryIO runs fn until it succeeds, fails with an error that is not
// transient (see retryable), or ctx ends.
func retryIO(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !retryable(err) {
			return err
		}
		if err := sleepJitter(ctx, attempt+4); err != nil {
			return fmt.Errorf("%w (last error: %w)", err, fn())
		}
	}
}

// sleepJitter waits a full-jitter exponential backoff: uniform in
// [0, min(maxBackoff, baseBackoff<<attempt)].
func sleepJitter(ctx context.Context, attempt int) error {
	const baseBackoff, maxBackoff = 100 * time.Microsecond, 50 * time.Millisecond
	ceil := maxBackoff
	if attempt < 20 {
		ceil = min(maxBackoff, baseBackoff<<attempt)
	}
	t := time.NewTimer(rand.N(ceil) + time.Microsecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
