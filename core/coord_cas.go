package core

// The coordinator update by compare-and-put (stores without
// backend.Updater): read or reuse the last state, merge, write, and on a lost
// race merge into the state the conflict carries.

import (
	"context"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
)

// casCoord is the portable read-merge-compare-and-put loop. A lost race is
// never a lost announcement: the conflict's current state is merged with op
// and the write retried, with full-jitter backoff, until it lands or the
// state already covers op.
//
// maxRaces > 0 bounds the number of lost races before errLostRace.
func (e *engine) casCoord(ctx context.Context, tk topicKeys, op coordOp, maxRaces int) (*coordState, error) {
	// On a linearizable store without an engine-side update, start from the
	// state this engine last wrote (saves the read before every write). A
	// stale one only costs a conflict, which carries the current state; and
	// a cached state is never trusted to say "already covered".
	base := casBase{}
	var cached bool
	base.st, base.v, cached = e.lastWritten(tk)
	if !cached || maxRaces != 0 || !e.ordered {
		cached = false
		base = e.casRead(ctx, tk)
	}
	races, attempt := 0, 0
	for {
		if base.err != nil {
			// Reading, merging or writing failed: retry what is transient.
			if !retryable(base.err) {
				return nil, base.err
			}
			e.retries.Add(1)
			if err := sleepJitter(ctx, attempt); err != nil {
				return nil, err
			}
			attempt++
			base = e.casRead(ctx, tk)
			continue
		}
		next, res := e.casOnce(ctx, tk, op, base)
		switch res.outcome {
		case casWritten:
			return next, nil
		case casCovered:
			if !cached {
				return base.st, nil
			}
			// A cached state cannot say "covered": read the current one
			// (not a retry).
			cached, base = false, e.casRead(ctx, tk)
		case casStaleBlob:
			// A registry blob of a replaced coordinator was reclaimed:
			// read the current coordinator, a few times at most.
			if attempt >= 8 {
				return nil, res.err
			}
			attempt++
			cached, base = false, e.casRead(ctx, tk)
		case casFailed:
			attempt++
			base.err = res.err
		case casLost:
			if cached {
				cached = false // the cache was behind: not a lost race
			} else {
				e.retries.Add(1)
				if races++; maxRaces > 0 && races >= maxRaces {
					return nil, errLostRace
				}
				attempt++
			}
			if attempt > 1 {
				// Back off, then read afresh: a state taken before the sleep
				// would be stale after it, and a writer that keeps losing
				// must not keep writing stale states (that starved
				// publishers).
				if err := sleepJitter(ctx, attempt-1); err != nil {
					return nil, err
				}
				base = e.casRead(ctx, tk)
			} else {
				// First loss: retry at once from the state the conflict
				// carries.
				base = e.casFromConflict(ctx, tk, res.err)
			}
		}
	}
}

// casBase is the coordinator state a compare-and-put round starts from, or
// why it could not be had.
type casBase struct {
	st  *coordState
	v   backend.Version
	err error
}

// casRead reads the coordinator as a round's base.
func (e *engine) casRead(ctx context.Context, tk topicKeys) casBase {
	st, v, err := e.readCoord(ctx, tk)
	return casBase{st, v, err}
}

// casFromConflict takes the current state a conflict carries as the next
// round's base (reading it when the conflict does not carry it, or its blob
// was replaced and reclaimed meanwhile).
func (e *engine) casFromConflict(ctx context.Context, tk topicKeys, conflict error) casBase {
	cur, ok := backend.CurrentEntry(conflict)
	if !ok {
		return e.casRead(ctx, tk)
	}
	if cur.Version == 0 {
		return casBase{st: e.newCoord()}
	}
	st, err := e.decodeCoordValue(ctx, cur.Value)
	if errors.Is(err, backend.ErrNotFound) {
		return e.casRead(ctx, tk)
	}
	return casBase{st, cur.Version, err}
}

// casOutcome is how one compare-and-put round ended.
type casOutcome int

const (
	casWritten   casOutcome = iota // the merged state was written
	casCovered                     // the base already covers the operation
	casStaleBlob                   // a registry blob the merge needed is gone
	casFailed                      // folding, encoding or writing failed (err)
	casLost                        // another writer moved the record (err: the conflict)
)

// casResult is a round's outcome and its error.
type casResult struct {
	outcome casOutcome
	err     error
}

// casOnce merges op into base and writes the result with one
// compare-and-put from base's version.
func (e *engine) casOnce(ctx context.Context, tk topicKeys, op coordOp, base casBase) (*coordState, casResult) {
	next := base.st.clone()
	changed, err := next.apply(op, e.now().UnixNano(), e.coldLookup(ctx, tk, next))
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return nil, casResult{casStaleBlob, err}
	case err != nil:
		return nil, casResult{casFailed, err}
	case !changed:
		return nil, casResult{outcome: casCovered}
	}
	if e.needsFold(next) {
		if next, err = e.fold(ctx, tk, next); err != nil {
			return nil, casResult{casFailed, err}
		}
	}
	val, err := e.encodeCoordValue(ctx, next)
	if err != nil {
		return nil, casResult{casFailed, err}
	}
	nv, err := e.store.CompareAndPut(ctx, tk.coord, base.v, val)
	if errors.Is(err, backend.ErrConflict) {
		return nil, casResult{casLost, err}
	}
	if err != nil {
		return nil, casResult{casFailed, fmt.Errorf("core: write coordinator of %q: %w", tk.name, err)}
	}
	if val[0] == coordBlob {
		next.blob = Ref(val[1:])
	} else {
		next.blob = Ref{}
	}
	e.rememberWritten(tk, next, nv)
	if !base.st.blob.IsZero() && base.st.blob != next.blob && base.v != 0 {
		// The state this write replaced was a blob: nobody needs it any
		// more (a reader that still follows the old reference reads the
		// key again).
		e.reclaimBlobs(ctx, []Ref{base.st.blob})
	}
	return next, casResult{outcome: casWritten}
}

// errLostRace: casCoord ran out of its allowed attempts.
var errLostRace = errors.New("core: coordinator write lost the race")
