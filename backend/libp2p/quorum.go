package libp2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	kb "github.com/libp2p/go-libp2p-kbucket"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/stickypub/stickypub/backend"
)

// replicas returns the key's replica set: the Options.Replicas servers
// closest to it.
func (s *Store) replicas(ctx context.Context, dk string) ([]peer.ID, error) {
	var peers []peer.ID
	switch s.opts.Lookup {
	case LookupTable:
		peers = s.n.dht.RoutingTable().NearestPeers(kb.ConvertKey(dk), s.opts.Replicas)
	default:
		var err error
		peers, err = s.n.dht.GetClosestPeers(ctx, dk)
		if err != nil && len(peers) == 0 {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: finding the replica set: %v", backend.ErrUnavailable, err)
		}
		// The lookup returns the closest peers, nearest first.
		peers = kb.SortClosestPeers(peers, kb.ConvertKey(dk))
		if len(peers) > s.opts.Replicas {
			peers = peers[:s.opts.Replicas]
		}
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("%w: no server known", backend.ErrUnavailable)
	}
	return peers, nil
}

// putTo sends rec to p.
func (s *Store) putTo(ctx context.Context, p peer.ID, dk string, rec []byte) error {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RPCTimeout)
	defer cancel()
	r := &recpb.Record{Key: []byte(dk), Value: rec}
	err := s.n.msgr.PutValue(rctx, p, r)
	if err != nil {
		s.dropIfGone(ctx, p)
	}
	return err
}

// dropIfGone removes p from the routing table when a request failed
// because p cannot be reached (not for a refusal on a live connection, nor
// because the caller gave up), so replica sets move on to live servers.
func (s *Store) dropIfGone(ctx context.Context, p peer.ID) {
	if ctx.Err() != nil || s.n.host.Network().Connectedness(p) == network.Connected {
		return
	}
	s.n.dht.RoutingTable().RemovePeer(p)
}

// catchUp brings a replica that is behind (holds nothing, a new node or
// an expired copy, or an older version) up to rec.expect with the previous
// record this handle knows, as a repair copy, then sends rec again. It
// reports whether the replica took rec, and whether it refused the repair
// copy (which an honest replica that is behind takes).
func (s *Store) catchUp(ctx context.Context, p peer.ID, dk string, rec record, raw []byte) (took, refused bool) {
	prev, ok := s.tracked.get(dk)
	if !ok {
		return false, false
	}
	pr, err := decodeRecord(prev, 0)
	if err != nil || pr.version != rec.expect {
		return false, false
	}
	if err := s.putTo(ctx, p, dk, prev); err != nil {
		return false, ctx.Err() == nil
	}
	return s.putTo(ctx, p, dk, raw) == nil, false
}

// caughtUp is catchUp's first result.
func (s *Store) caughtUp(ctx context.Context, p peer.ID, dk string, rec record, raw []byte) bool {
	took, _ := s.catchUp(ctx, p, dk, rec, raw)
	return took
}

// behind reports whether a, a replica's answer, holds an older state than
// rec expects (nothing, or a version before rec.expect).
func behind(a answer, rec record) bool {
	return a.err == nil && !a.corrupt && rec.expect > 0 && (a.rec.absent() || a.rec.version < rec.expect)
}

// answer is one replica's reply to a read.
type answer struct {
	p       peer.ID
	rec     record
	raw     []byte
	err     error // no answer (network, timeout)
	corrupt bool  // answered something that is not our record
}

// getFrom asks p for the record of dk.
func (s *Store) getFrom(ctx context.Context, p peer.ID, dk string) answer {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RPCTimeout)
	defer cancel()
	r, _, err := s.n.msgr.GetValue(ctx, p, dk)
	if err != nil {
		s.dropIfGone(ctx, p)
	}
	a := answer{p: p}
	switch {
	case err != nil && strings.Contains(err.Error(), "incorrect record"):
		a.corrupt = true
	case err != nil:
		a.err = err
	case r == nil:
		a.rec = record{flags: flagAbsent}
	default:
		rec, derr := decodeRecord(r.GetValue(), s.opts.MaxValueSize)
		if derr != nil {
			a.corrupt = true
		} else {
			a.rec, a.raw = rec, r.GetValue()
		}
	}
	if a.corrupt {
		s.stats.corrupt.Add(1)
	}
	return a
}

// write stores rec on the replica set and counts acceptances.
//
// The closest replica, the key's leader, gets the record first: its
// per-node compare-and-put orders concurrent writers, so a loser learns it
// lost without touching the other replicas (otherwise concurrent writers
// split the replicas between them and none reaches a quorum). A leader
// that refuses is not believed alone (see leaderRefused). On a conflict
// write returns the current record when it is known.
func (s *Store) write(ctx context.Context, dk string, rec record) (*record, error) {
	peers, err := s.replicas(ctx, dk)
	if err != nil {
		return nil, err
	}
	need := quorum(s.opts.WriteQuorum, len(peers))
	raw := rec.encode()
	leader, rest := peers[0], peers[1:]
	accepted := 0
	if rec.expect == 0 || s.suspects.has(leader, time.Now()) {
		// No leader stage for a create (most are content-addressed blobs,
		// written once), nor with a suspect leader.
		rest = peers
	} else if err := s.putTo(ctx, leader, dk, raw); err == nil {
		accepted = 1
	} else {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		took, cur, err := s.leaderRefused(ctx, dk, rec, raw, peers)
		if err != nil || cur != nil {
			return cur, err
		}
		if took {
			accepted = 1
		}
	}
	var putErr error // a refusal, or why a send failed
	accepted, failed := s.fanOut(ctx, dk, raw, rest, need, accepted, &putErr)
	if accepted >= need {
		s.tracked.touch(dk, rec.withFlags(flagRepair).encode(), time.Now())
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Too few acceptances: ask the refusing replicas what they hold. One
	// that holds this very write took it (its answer was lost); one that
	// is behind is caught up.
	answers := make(chan answer, len(failed))
	for _, p := range failed {
		go func() { answers <- s.getFrom(ctx, p, dk) }()
	}
	var (
		unreachable int
		others      []answer // refusers holding another version
	)
	for range failed {
		a := <-answers
		switch {
		case a.err != nil:
			unreachable++
		case a.corrupt:
		case a.rec.sameWrite(rec):
			accepted++
		case behind(a, rec) && s.caughtUp(ctx, a.p, dk, rec, raw):
			accepted++
		case a.rec.version == rec.expect && !a.rec.absent() && s.putTo(ctx, a.p, dk, raw) == nil:
			// It was behind when the record came and has caught up
			// since (the previous write's late sends, a repair).
			accepted++
		case a.rec.version != rec.expect:
			others = append(others, a)
		}
	}
	switch {
	case accepted >= need:
		s.tracked.touch(dk, rec.withFlags(flagRepair).encode(), time.Now())
		return nil, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case accepted+unreachable < need && len(others) > 0:
		// A conflict needs evidence: replicas holding another version
		// (or nothing). The entry it carries is believed as a read
		// believes one (the same state on enough replicas), or comes from
		// a quorum read: a lone liar's forgery must not reach the caller.
		cur, _ := s.choose(others, len(peers))
		if cur.absent() {
			r, err := s.read(ctx, dk)
			if err != nil {
				return nil, err
			}
			if r.version == rec.expect {
				return nil, fmt.Errorf("%w: %d of %d replicas accepted (%d needed); %d refused holding another version, which no read confirms",
					backend.ErrUnavailable, accepted, len(peers), need, len(others))
			}
			cur = r
		}
		return &cur, fmt.Errorf("%w: %d of %d replicas accepted (%d needed), %d refused",
			backend.ErrConflict, accepted, len(peers), need, len(peers)-accepted-unreachable)
	default:
		return nil, fmt.Errorf("%w: %d of %d replicas accepted (%d needed), %d did not answer, %d refused without holding another version (%v)",
			backend.ErrUnavailable, accepted, len(peers), need, unreachable, len(peers)-accepted-unreachable, putErr)
	}
}

// leaderRefused runs after the key's leader refused rec. It asks the
// leader and the next replicas (as many as a read needs to agree) what
// they hold:
//
//   - the leader holds this very write: it took it and its answer was lost
//     (took);
//   - they all hold one newer state: another writer won (a conflict
//     carrying that record);
//   - the leader is behind (nothing, an older version): unless a quorum
//     read shows the key moved on (a conflict), it is caught up with the
//     previous record the handle knows (took), else the write goes on
//     without it (and if it refused the repair copy, which an honest node
//     takes, it becomes a suspect);
//   - the leader holds exactly rec.expect: it was behind when rec came and
//     caught up since, or it is broken; rec is sent once more (took), and
//     if it refuses again, or holds garbage, it is broken (a node that
//     refuses everything, a liar): it becomes a suspect and the write
//     goes on without it;
//   - the leader holds a newer version the next replicas do not: a
//     winner's write still on its way, or a forgery. They are asked again
//     for a while, then a quorum read decides: a conflict if the newer
//     version shows, else the leader becomes a suspect and the write goes
//     on without it;
//   - the leader did not answer: the write goes on without it.
//
// A suspect is skipped as the leader of every key for suspectFor. Going on
// without the leader is safe: every replica still applies compare-and-put,
// and two writes of one version cannot both reach a majority of the same
// replica set.
func (s *Store) leaderRefused(ctx context.Context, dk string, rec record, raw []byte, peers []peer.ID) (took bool, cur *record, err error) {
	leader := peers[0]
	// The common case first, cheaply: a concurrent writer won. The
	// leader and the next replicas (as many as a read needs to agree)
	// hold its record, and that is the conflict's evidence.
	a, confirmed := s.leaderShows(ctx, dk, peers)
	switch {
	case a.err == nil && !a.corrupt && a.rec.sameWrite(rec):
		return true, nil, nil // it took the record; the answer was lost
	case confirmed && a.rec.version > rec.expect:
		return false, &a.rec, fmt.Errorf("%w: the key is at version %d", backend.ErrConflict, a.rec.version)
	case a.err != nil:
		return false, nil, nil // unreachable: go on without it
	case a.corrupt:
		s.suspect(leader)
		return false, nil, nil
	case a.rec.version == rec.expect:
		// It may have been behind when the record came and caught up
		// since (the previous write's late sends, a repair): once more.
		if s.putTo(ctx, leader, dk, raw) == nil {
			return true, nil, nil
		}
		s.suspect(leader) // refuses what it should take: broken
		return false, nil, nil
	case behind(a, rec):
		// Unless the key moved on without the leader (then the write
		// lost), catch the leader up.
		r, err := s.read(ctx, dk)
		if err != nil {
			return false, nil, err
		}
		if r.version > rec.expect && !r.absent() {
			return false, &r, fmt.Errorf("%w: the key is at version %d", backend.ErrConflict, r.version)
		}
		took, refused := s.catchUp(ctx, leader, dk, rec, raw)
		if refused {
			s.suspect(leader) // it refused a newer repair copy: broken
		}
		return took, nil, nil
	case a.rec.absent():
		s.suspect(leader) // refused a create while holding nothing
		return false, nil, nil
	}
	// The leader holds a newer version that the next replicas do not
	// (yet) hold: a winner's sends in flight, or a forgery. Ask again,
	// cheaply, for about 0.15 s in all, then once the whole replica set.
	// (Going on without an honest leader is safe, only slower for this
	// writer: a short wait serves contended keys better than a long one.)
	for _, wait := range [...]time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond} {
		if !sleepCtx(ctx, wait) {
			return false, nil, ctx.Err()
		}
		if b, ok := s.leaderShows(ctx, dk, peers); ok && b.rec.version > rec.expect {
			return false, &b.rec, fmt.Errorf("%w: the key is at version %d", backend.ErrConflict, b.rec.version)
		}
	}
	r, err := s.read(ctx, dk)
	if err != nil {
		return false, nil, err
	}
	if r.version > rec.expect && !r.absent() {
		return false, &r, fmt.Errorf("%w: the key is at version %d", backend.ErrConflict, r.version)
	}
	s.suspect(leader)
	s.log.Debug("libp2p: a key's leader holds a write no read quorum shows; going on without it",
		"leader", leader, "version", rec.version)
	return false, nil, nil
}

// leaderShows asks the key's leader and the next replicas (as many as a
// read needs to agree) what they hold, and returns the leader's answer
// and whether they all hold its state (a record, not garbage nor
// nothing).
func (s *Store) leaderShows(ctx context.Context, dk string, peers []peer.ID) (answer, bool) {
	n := max(s.opts.agreement(len(peers)), 1)
	got := s.ask(ctx, dk, peers[:n])
	a := got[0]
	if a.err != nil || a.corrupt || a.rec.absent() {
		return a, false
	}
	for _, b := range got[1:] {
		if b.err != nil || b.corrupt || !b.rec.sameState(a.rec) {
			return a, false
		}
	}
	return a, true
}

// ask asks every peer for dk, in parallel, and returns their answers in
// the order of peers.
func (s *Store) ask(ctx context.Context, dk string, peers []peer.ID) []answer {
	out := make([]answer, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() { out[i] = s.getFrom(ctx, p, dk) })
	}
	wg.Wait()
	return out
}

// recentRepair is how often a handle repairs replicas one version behind
// on one key.
const recentRepair = time.Second

// recentRepairs remembers when keys were last repaired.
type recentRepairs struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// first reports whether dk was not repaired within recentRepair before now,
// and if so records now.
func (r *recentRepairs) first(dk string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.m[dk]; ok && now.Sub(last) < recentRepair {
		return false
	}
	if r.m == nil || len(r.m) >= 10_000 {
		r.m = make(map[string]time.Time) // forget everything: only a rate limit
	}
	r.m[dk] = now
	return true
}

// suspect skips p as a leader for suspectFor.
func (s *Store) suspect(p peer.ID) {
	s.stats.suspected.Add(1)
	s.suspects.add(p, time.Now().Add(suspectFor))
}

// suspectFor is how long a leader that refused without reason is skipped.
const suspectFor = time.Minute

// suspects are peers skipped as leaders until a time.
type suspects struct {
	mu sync.Mutex
	m  map[peer.ID]time.Time
}

func (s *suspects) add(p peer.ID, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[peer.ID]time.Time)
	}
	s.m[p] = until
}

// has reports whether p is a suspect now.
func (s *suspects) has(p peer.ID, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.m[p]
	if ok && now.After(until) {
		delete(s.m, p)
		return false
	}
	return ok
}

// fanOut sends raw to peers until accepted reaches need, returning the
// acceptances and the peers that refused or failed (the first failure's
// error goes to *putErr when that is nil). Sends still running at
// that point finish in the background under the handle's context, so every
// replica gets the record.
func (s *Store) fanOut(ctx context.Context, dk string, raw []byte, peers []peer.ID, need, accepted int, putErr *error) (int, []peer.ID) {
	type result struct {
		p   peer.ID
		err error
	}
	results := make(chan result, len(peers))
	sendCtx, cancelSends := context.WithCancel(s.ctx)
	stop := context.AfterFunc(ctx, cancelSends)
	for _, p := range peers {
		s.wg.Go(func() { results <- result{p, s.putTo(sendCtx, p, dk, raw)} })
	}
	var failed []peer.ID
	done := 0
	for ; done < len(peers) && accepted < need; done++ {
		r := <-results
		if r.err == nil {
			accepted++
		} else {
			failed = append(failed, r.p)
			if *putErr == nil {
				*putErr = r.err
			}
		}
	}
	if accepted >= need && done < len(peers) {
		stop() // the late sends no longer follow ctx
		left := len(peers) - done
		s.wg.Go(func() {
			defer cancelSends()
			for range left {
				select {
				case <-results:
				case <-sendCtx.Done():
					return
				}
			}
		})
		return accepted, failed
	}
	stop()
	cancelSends()
	return accepted, failed
}

// read asks the replica set for dk and returns the chosen record (the
// absence marker when the key does not exist). The closest read-quorum of
// replicas is asked first; when they all hold the same record, that is the
// answer. Otherwise (disagreement, garbage, silence, or nothing found) the
// rest are asked too, and stragglers get ReadGrace once a quorum answered.
func (s *Store) read(ctx context.Context, dk string) (record, error) {
	r, _, err := s.readAnswers(ctx, dk)
	return r, err
}

// readAnswers is read, also returning the answers it got (the key's
// leader, the closest replica, is always asked).
func (s *Store) readAnswers(ctx context.Context, dk string) (record, []answer, error) {
	peers, err := s.replicas(ctx, dk)
	if err != nil {
		return record{}, nil, err
	}
	need := quorum(s.opts.ReadQuorum, len(peers))
	answers := make(chan answer, len(peers))
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ask := func(ps []peer.ID) {
		for _, p := range ps {
			go func() { answers <- s.getFrom(rctx, p, dk) }()
		}
	}
	var (
		got     []answer
		replied int
		grace   <-chan time.Time
	)
	ask(peers[:need])
	for range need {
		select {
		case a := <-answers:
			got = append(got, a)
			if a.err == nil {
				replied++
			}
		case <-ctx.Done():
			return record{}, nil, ctx.Err()
		}
	}
	if replied < need || !unanimous(got) || got[0].rec.absent() {
		ask(peers[need:])
		agree := s.opts.agreement(len(peers))
	collect:
		for range peers[need:] {
			// Stragglers get ReadGrace once a quorum answered and some
			// record has enough identical copies; until then (nothing
			// found yet, or too few copies) every replica is waited for,
			// each bounded by RPCTimeout.
			if grace == nil && replied >= need && agreed(got, agree) {
				t := time.NewTimer(s.opts.ReadGrace)
				defer t.Stop()
				grace = t.C
			}
			select {
			case a := <-answers:
				got = append(got, a)
				if a.err == nil {
					replied++
				}
			case <-grace:
				break collect
			case <-ctx.Done():
				break collect
			}
		}
	}
	if replied < need {
		if err := ctx.Err(); err != nil {
			return record{}, nil, err
		}
		var errs []error
		for _, a := range got {
			if a.err != nil {
				errs = append(errs, a.err)
			}
		}
		return record{}, nil, fmt.Errorf("%w: %d of %d replicas answered (%d needed): %v", backend.ErrUnavailable, replied, len(peers), need, errors.Join(errs...))
	}
	best, corrupt := s.choose(got, len(peers))
	if corrupt == replied {
		return record{}, nil, fmt.Errorf("%w: every replica that answered (%d) returned garbage", backend.ErrCorrupt, corrupt)
	}
	if !best.absent() {
		s.repair(dk, best, got)
		s.tracked.touch(dk, best.withFlags(flagRepair).encode(), time.Now())
	}
	return best, got, nil
}

// agreed reports whether at least agree answers hold the same state
// (version and value; a reader does not care which call wrote it).
func agreed(got []answer, agree int) bool {
	for i := range got {
		if got[i].err != nil || got[i].corrupt || got[i].rec.absent() {
			continue
		}
		n := 0
		for j := range got {
			if got[j].err == nil && !got[j].corrupt && got[j].rec.sameState(got[i].rec) {
				n++
			}
		}
		if n >= agree {
			return true
		}
	}
	return false
}

// unanimous reports whether every answer that came back holds the same
// state (or nothing), with no garbage.
func unanimous(got []answer) bool {
	var first *record
	for i := range got {
		a := &got[i]
		switch {
		case a.err != nil:
			continue
		case a.corrupt:
			return false
		case first == nil:
			first = &a.rec
		case !first.sameState(a.rec):
			return false
		}
	}
	return true
}

// choose picks the highest version that at least agreement(n) answers
// hold identically (the same state: version and value); the absence
// marker when there is none.
func (s *Store) choose(got []answer, n int) (best record, corrupt int) {
	type cand struct {
		rec   record
		count int
	}
	var cands []*cand
	for _, a := range got {
		switch {
		case a.corrupt:
			corrupt++
			continue
		case a.err != nil || a.rec.absent():
			continue
		}
		found := false
		for _, c := range cands {
			if c.rec.sameState(a.rec) {
				c.count++
				found = true
				break
			}
		}
		if !found {
			cands = append(cands, &cand{rec: a.rec, count: 1})
		}
	}
	agree := s.opts.agreement(n)
	best = record{flags: flagAbsent}
	support := 0
	for _, c := range cands {
		if c.count < agree {
			s.stats.unconfirmed.Add(1)
			continue
		}
		if support == 0 || c.rec.version > best.version ||
			(c.rec.version == best.version && (c.count > support || (c.count == support && bytes.Compare(c.rec.value, best.value) > 0))) {
			best, support = c.rec, c.count
		}
	}
	return best, corrupt
}

// repair sends best, as a repair copy, to the answering replicas that
// hold nothing or an older version, in the background. Replicas just one
// version behind are most often on the way to best (its writer's sends
// are in flight: on a busy key nearly every read sees some), so for them a
// key is repaired at most once per recentRepair.
func (s *Store) repair(dk string, best record, got []answer) {
	raw := best.withFlags(flagRepair).encode()
	checkedRecent, skipRecent := false, false
	for _, a := range got {
		if a.err != nil || a.corrupt || (!a.rec.absent() && a.rec.version >= best.version) {
			continue
		}
		if !a.rec.absent() && a.rec.version+1 == best.version {
			if !checkedRecent {
				checkedRecent, skipRecent = true, !s.recent.first(dk, time.Now())
			}
			if skipRecent {
				continue
			}
		}
		select {
		case s.repairs <- struct{}{}:
		default:
			return // enough repairs in flight; a later read repairs the rest
		}
		s.stats.repairs.Add(1)
		s.wg.Go(func() {
			defer func() { <-s.repairs }()
			_ = s.putTo(s.ctx, a.p, dk, raw)
		})
	}
}
