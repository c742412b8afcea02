package core

// Activity leases (publisher order): how a publisher registers and keeps a
// lease, and which heads a poll must read because of them.

import (
	"context"
	"maps"
	"slices"
	"time"
)

// Activity leases (unordered mode). A subscriber on a store that is not
// linearizable learns how far each publisher's log reaches from the
// publisher's own head record. So that a poll reads only the heads that can
// have changed, not every head of every publisher that ever registered, a
// publishing client keeps an activity lease in the coordinator
// (Active[publisher] = expiry) that always outlives its newest
// acknowledged message by at least activeLease/2, and a subscriber reads
// the heads of publishers whose lease was live since its previous poll.
const (
	// activeLease is how long a lease lasts; a publisher renews it (one
	// coordinator write) when less than half is left, so an active
	// publisher writes the coordinator about every activeLease/2.
	activeLease = 10 * time.Minute
	// activeGrace is how long an expired lease stays in the coordinator.
	// A subscriber whose previous poll is older than activeGrace/2 cannot
	// rely on the leases and reads every registered head (a full sweep).
	// The margin also absorbs clock skew between writers and readers of
	// up to activeGrace/2 - activeLease/2.
	activeGrace = 2 * activeLease
	// sweepPerPoll is how many other registered publishers a poll reads
	// besides the changed ones, round-robin, so that a stale read (weak
	// stores may serve one at any time) is corrected within
	// registered/sweepPerPoll polls while a poll stays O(changed).
	sweepPerPoll = 4
)

// register makes sure the publisher is registered in the coordinator
// (its first announcement) and holds a lease that covers the batch being
// acknowledged (unordered mode). It writes the coordinator only for the
// first batch and then about every activeLease/2.
func (p *topicPublisher) register(ctx context.Context, ann announcement) error {
	c := p.c
	now := c.eng.now().UnixNano()
	if p.registered && p.leaseUntil-now >= int64(activeLease/2) {
		return nil
	}
	exp := now + int64(activeLease)
	op := coordOp{active: map[PublisherID]int64{c.pid: exp}}
	if !p.registered {
		op.anns = []announcement{ann}
	}
	if _, err := c.eng.announce(ctx, p.tk, op); err != nil {
		return err
	}
	p.registered, p.leaseUntil = true, exp
	return nil
}

// changedSince returns the publishers whose heads a poll must read: every
// registered one when since is zero or too old for the leases to be
// trusted (a full sweep), else those whose lease was live at since.
func changedSince(st *coordState, registered func() (map[PublisherID]uint64, error), since, now time.Time) (map[PublisherID]bool, bool, error) {
	if since.IsZero() || now.Sub(since) > activeGrace/2 {
		reg, err := registered()
		if err != nil {
			return nil, false, err
		}
		out := make(map[PublisherID]bool, len(reg))
		for p := range reg {
			out[p] = true
		}
		return out, true, nil
	}
	out := map[PublisherID]bool{}
	floor := since.Add(-activeLease).UnixNano()
	for p, exp := range st.Active {
		if exp >= floor {
			out[p] = true
		}
	}
	return out, false, nil
}

// sweepNext returns the next n publishers of known in round-robin order
// after the cursor *after (which it advances), skipping those in skip.
func sweepNext(known map[PublisherID]bool, after *PublisherID, n int, skip map[PublisherID]bool) []PublisherID {
	if len(known) == 0 || n <= 0 {
		return nil
	}
	all := slices.SortedFunc(maps.Keys(known), comparePID)
	i, _ := slices.BinarySearchFunc(all, *after, comparePID)
	var out []PublisherID
	for k := 0; k < len(all) && len(out) < n; k++ {
		p := all[(i+k)%len(all)]
		if p == *after && k == 0 {
			continue
		}
		if !skip[p] {
			out = append(out, p)
		}
		*after = p
	}
	return out
}
