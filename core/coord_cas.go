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
	st, v, cached := e.lastWritten(tk)
	cached = cached && maxRaces == 0 && e.ordered
	var err error
	if !cached {
		st, v, err = e.readCoord(ctx, tk)
	}
	races := 0
	for attempt := 0; ; attempt++ {
		if err != nil {
			if !retryable(err) {
				return nil, err
			}
			e.retries.Add(1)
			if err := sleepJitter(ctx, attempt); err != nil {
				return nil, err
			}
			st, v, err = e.readCoord(ctx, tk)
			continue
		}
		next := st.clone()
		var changed bool
		if changed, err = next.apply(op, e.now().UnixNano(), e.coldLookup(ctx, tk, next)); err != nil {
			if errors.Is(err, backend.ErrNotFound) && attempt < 8 {
				// A registry blob of a replaced coordinator was reclaimed.
				cached = false
				st, v, err = e.readCoord(ctx, tk)
			}
			continue
		}
		if !changed {
			if cached {
				cached = false
				st, v, err = e.readCoord(ctx, tk)
				attempt--
				continue
			}
			return st, nil
		}
		if e.needsFold(next) {
			if next, err = e.fold(ctx, tk, next); err != nil {
				continue
			}
		}
		var val []byte
		if val, err = e.encodeCoordValue(ctx, next); err != nil {
			continue
		}
		var nv backend.Version
		nv, err = e.store.CompareAndPut(ctx, tk.coord, v, val)
		if err == nil {
			if val[0] == coordBlob {
				next.blob = Ref(val[1:])
			} else {
				next.blob = Ref{}
			}
			e.rememberWritten(tk, next, nv)
			if !st.blob.IsZero() && st.blob != next.blob && v != 0 {
				// The state this write replaced was a blob: nobody
				// needs it any more (a reader that still follows the old
				// reference reads the key again).
				e.reclaimBlobs(ctx, []Ref{st.blob})
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
			e.retries.Add(1)
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
			st, v, err = e.readCoord(ctx, tk)
			continue
		}
		// First loss: retry at once from the state the conflict carries.
		if cur, ok := backend.CurrentEntry(err); ok {
			if cur.Version == 0 {
				st, v, err = e.newCoord(), 0, nil
			} else if st, err = e.decodeCoordValue(ctx, cur.Value); err == nil {
				v = cur.Version
			} else if errors.Is(err, backend.ErrNotFound) {
				st, v, err = e.readCoord(ctx, tk) // its blob was replaced and reclaimed
			}
		} else {
			st, v, err = e.readCoord(ctx, tk)
		}
	}
}

// errLostRace: casCoord ran out of its allowed attempts.
var errLostRace = errors.New("core: coordinator write lost the race")
