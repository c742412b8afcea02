package core

// Delivery in topic order: Poll and PollAll, the poll over announcements,
// catching up from head records, delivering an announcement's messages.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/stickypub/stickypub/backend"
)

// missingLimitWeak is how many polls a segment may be missing on a backend
// that is not linearizable (where it may not have propagated yet) before
// the subscriber reports a gap. On a linearizable backend an announced
// segment was durable before its announcement, so missing is final.
const missingLimitWeak = 20

// reasonRetention is the Gap.Reason of messages dropped by retention before
// the subscription received them.
const reasonRetention = "dropped by retention before delivery"

// Poll delivers what is new on topic and returns how many messages it
// delivered.
func (c *Client) Poll(ctx context.Context, topic string) (int, error) {
	c.mu.Lock()
	s, ok := c.subs.get(topic)
	c.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrNotSubscribed, topic)
	}
	return s.pollEmit(ctx)
}

// PollAll polls every subscription and returns the total delivered.
func (c *Client) PollAll(ctx context.Context) (int, error) {
	c.mu.Lock()
	subs := c.subs.list()
	c.mu.Unlock()
	total := 0
	var errs []error
	for _, s := range subs {
		n, err := s.pollEmit(ctx)
		total += n
		if err != nil && !errors.Is(err, ErrNotSubscribed) {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

func (s *Subscription) pollEmit(ctx context.Context) (int, error) {
	n, err := s.poll(ctx)
	c := s.c
	stopping := ctx.Err() != nil && errors.Is(err, ctx.Err()) // the caller is leaving, not a failure
	if err != nil && !stopping && !errors.Is(err, ErrNotSubscribed) {
		c.stats.failures.Add(1)
		c.emit(Event{Kind: EventPollError, Topic: s.tk.name, Err: err, Count: n})
	}
	if n > 0 {
		c.emit(Event{Kind: EventPollUpdate, Topic: s.tk.name, Count: n})
	}
	return n, err
}

// poll reads the coordinator and delivers every announcement after the
// cursor, in order; then, for any publisher whose announced head is still
// ahead of what was delivered (possible only when a backend lost an
// announcement), it catches up from that publisher's own head record.
func (s *Subscription) poll(ctx context.Context) (int, error) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("%w: %q", ErrNotSubscribed, s.tk.name)
	}
	c := s.c
	pol, err := c.readPolicy(ctx, *s.tk, policyRefresh)
	if err != nil {
		return 0, err
	}
	s.policy = pol
	if !c.eng.ordered {
		return s.pollHeads(ctx)
	}
	s.idleAt.Store(0)
	if s.auditDue() {
		s.auditHeads(ctx)
	}
	st, v, err := c.eng.readCoordShared(ctx, *s.tk)
	if err != nil {
		return 0, err
	}
	s.target = st.Count
	if v != 0 && (v < s.coordVer || st.Count < s.cursor) {
		s.regressed(st, v)
	}
	if v == 0 || v < s.coordVer || (v == s.coordVer && s.cursor >= st.Count) {
		if v != 0 && v == s.coordVer {
			s.idleAt.Store(uint64(v))
		}
		return 0, nil // nothing new, or a stale read
	}
	if s.cursor < st.RetainFrom {
		// Retention dropped announcements this subscription had not
		// processed yet. What it never received from a publisher it knows
		// is reported, not skipped: when the publisher's next retained
		// announcement starts past it (deliver), or, once every retained
		// announcement is processed, up to the publisher's head (below).
		s.unplaced = !s.placeDropped(ctx, st)
		s.cursor, s.jumped = st.RetainFrom, true
		// The heads before the new index are not known: the position
		// names every known publisher explicitly from now on.
		s.rebase(map[PublisherID]uint64{})
		for p := range s.base {
			put(&s.pos.dirty, p, true)
		}
	}
	if s.cursor > st.Count { // a weaker backend replaced a longer history
		s.cursor = st.Count
	}
	// The announcements after the cursor, a part at a time (see eachAnn),
	// their segments prefetched a window at a time (see prefetch): what a
	// catch-up holds is bounded, however long the history.
	n := 0
	defer func() { s.pre = nil }()
	err = c.eng.eachAnn(ctx, st, s.cursor, func(anns []announcement) error {
		next := 0
		for i, a := range anns {
			if i == next {
				next = i + s.prefetch(ctx, anns[i:min(i+prefetchWindow, len(anns))])
			}
			k, err := s.deliver(ctx, a)
			n += k
			if err != nil {
				return err
			}
			s.passed(a)
			s.cursor++
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if s.jumped {
		// Every retained announcement is processed: a known publisher's
		// head still ahead of what was delivered lies in dropped ones.
		known := maps.Clone(s.base)
		maps.Copy(known, s.expected)
		if s.unplaced && !s.opts.fromStart {
			// The dropped announcements could not be read: a publisher
			// registered since this FromNow subscription started (it read
			// every head registered then) is owed from seq 1.
			reg, err := c.eng.registryAll(ctx, *s.tk, st.Registry)
			if err != nil {
				return n, err
			}
			for p := range reg {
				if _, ok := known[p]; !ok {
					known[p] = 0
				}
			}
		}
		for _, p := range slices.SortedFunc(maps.Keys(known), comparePID) {
			h, err := c.eng.headOf(ctx, *s.tk, st, p)
			if err != nil {
				return n, err // s.jumped stays: done at the next poll
			}
			s.gap(p, s.next(p), h, reasonRetention)
		}
		s.jumped, s.unplaced = false, false
	}
	complete := true
	for p, h := range st.hot {
		if _, known := s.expected[p]; !known || h < s.next(p) {
			continue // never seen: its announcements start it at From
		}
		k, err := s.catchUp(ctx, p)
		n += k
		if err != nil {
			return n, err
		}
		if h >= s.next(p) {
			complete = false // the head record lags (stale read): look again next poll
		}
	}
	if complete {
		s.coordVer = v
		s.idleAt.Store(uint64(v))
	}
	return n, nil
}

// maxDroppedRead bounds how many dropped announcements a jump reads to
// place publishers (beyond it, placeDropped falls back as if unreadable).
const maxDroppedRead = 1 << 16

// placeDropped runs before a subscription jumps over announcements that
// retention dropped: the first dropped announcement of each publisher it
// cannot place yet gives, by its From, where that publisher stood at the
// cursor, so that what it misses is reported with its exact range — also
// for a publisher whose every announcement was dropped, which the
// subscription would otherwise never meet. The dropped announcements stay
// readable for a durable subscription (the reclaimer keeps its floor). It
// reports whether they could be read; if not, a resumed subscription
// reports publishers it cannot place from seq 1, and the end of the jump
// falls back to the registry (see poll).
func (s *Subscription) placeDropped(ctx context.Context, st *coordState) bool {
	if st.RetainFrom-s.cursor > maxDroppedRead {
		s.lazyBase = false
		return false
	}
	left := st.RetainFrom - s.cursor // the dropped announcements
	err := s.c.eng.eachAnn(ctx, st, s.cursor, func(anns []announcement) error {
		for _, a := range anns[:min(uint64(len(anns)), left)] {
			_, seen := s.expected[a.Pub]
			if _, based := s.base[a.Pub]; !seen && !based && a.From > 0 {
				s.ownBase()
				s.base[a.Pub] = a.From - 1
			}
		}
		if left -= min(uint64(len(anns)), left); left == 0 {
			return errStopEach
		}
		return nil
	})
	if err != nil {
		s.lazyBase = false
		return false
	}
	return true
}

// next is the next sequence number expected from publisher p.
func (s *Subscription) next(p PublisherID) uint64 {
	if e, ok := s.expected[p]; ok {
		return e
	}
	return s.base[p] + 1
}

// catchUp delivers publisher p's log up to its own head record.
func (s *Subscription) catchUp(ctx context.Context, p PublisherID) (int, error) {
	c := s.c
	e, err := c.eng.store.Get(ctx, s.tk.head(p))
	if errors.Is(err, backend.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("core: read head of %s on %q: %w", p, s.tk.name, err)
	}
	h, err := decodeHead(s.tk.name, e.Value)
	if err == nil && PublisherIDOf(h.Publisher) != p {
		err = malformed("head record under %s signed by another key", p)
	}
	if err != nil {
		s.invalidOnce(digest(e.Value), err)
		return 0, nil
	}
	return s.deliver(ctx, announcement{Pub: p, Seg: h.Seg, To: h.Last, head: h})
}

func (s *Subscription) invalid(err error) {
	s.c.stats.invalid.Add(1)
	s.c.emit(Event{Kind: EventInvalid, Topic: s.tk.name, Err: err})
}

// deliver delivers publisher a.Pub's messages from the next expected seq up
// to a.To, walking back from segment a.Seg along Prev links. It advances
// the expected seq only past delivered messages and reported gaps, so an
// interrupted delivery resumes exactly where it stopped.
//
// Records that fail verification (bad signature, wrong key, undecodable)
// are counted and dropped without advancing: anyone who can write to the
// store can forge them, so they must not hide the publisher's real
// messages, which still arrive through a later announcement or through the
// publisher's signed head record. A segment that is definitively missing is
// a gap: it is reported and skipped.
func (s *Subscription) deliver(ctx context.Context, a announcement) (int, error) {
	if a.From > 0 {
		_, seen := s.expected[a.Pub]
		_, based := s.base[a.Pub]
		switch {
		case !seen && !based && s.lazyBase:
			// First sight after a resumed cursor: this is the publisher's
			// first announcement after the cursor index (placeDropped
			// placed those in dropped announcements), so its head before
			// the index is From-1 and nothing before is owed.
			if _, ok := s.pos.heads[a.Pub]; !ok {
				s.ownHeads()
				s.pos.heads[a.Pub] = a.From - 1
			}
			s.setNext(a.Pub, a.From)
		case !seen && !based && s.opts.fromStart:
			// First sight by a FromStart subscription: the publisher's
			// messages before its first retained announcement are outside
			// retention.
			s.setNext(a.Pub, a.From)
		case s.jumped && a.From > s.next(a.Pub):
			// The first announcement of this publisher after a jump over
			// retention: the range before From lies in announcements that
			// were dropped. (A FromNow subscription knows every
			// publisher's head at its start, so nothing before its start
			// is reported.) Without a jump, a From ahead of what was
			// delivered means an announcement failed verification: the
			// walk back along Prev finds the real messages.
			s.gap(a.Pub, s.next(a.Pub), a.From-1, reasonRetention)
		}
	}
	from := s.next(a.Pub)
	if a.To < from {
		return 0, nil
	}
	segs, err := s.collect(ctx, a, from)
	if err != nil {
		return 0, err
	}
	n := 0
	for k := range segs {
		if k > 0 {
			segs[k-1] = segPart{} // delivered: not held for the rest
		}
		sg := &segs[k]
		if sg.lazy {
			s.reloadWindow(ctx, segs[k:], a.Pub)
		}
		if sg.lazy {
			if err := s.reload(ctx, sg, a.Pub); errors.Is(err, errBadReload) {
				// Counted: nothing of it or after it is delivered now, and
				// the expected seq stays where it is.
				return n, nil
			} else if err != nil {
				return n, err
			}
		}
		if sg.seg == nil {
			s.gap(a.Pub, sg.from, sg.to, sg.reason)
			continue
		}
		for i, m := range sg.msgs {
			seq := sg.seg.First + uint64(i)
			if seq < s.next(a.Pub) {
				// The oldest segment collected reaches back over what was
				// delivered (an open segment the head extended, see
				// openseg.go, or a resumed position): not a duplicate.
				if k > 0 {
					s.c.stats.duplicates.Add(1)
				}
				continue
			}
			if seq > a.To || seq > s.next(a.Pub) {
				break
			}
			if !s.policy.Allows(a.Pub) {
				// Withheld, not skipped: the expected seq stays, so the
				// messages are delivered if the policy lists the publisher
				// later (a stale policy read must not lose them).
				s.withheld(a.Pub, a.To)
				return n, nil
			}
			if m.Expired(s.c.eng.now()) {
				s.c.stats.expired.Add(1)
				s.setNext(a.Pub, seq+1)
				continue
			}
			if s.dur != nil {
				re, err := s.dur.beforeDeliver(ctx, a.Pub, seq, a.To)
				if err != nil {
					return n, err
				}
				m.Redelivered = re
			}
			m.Cursor, m.sub = s.cursorAfter(a.Pub, seq+1), s
			s.serial++
			m.serial = s.serial
			// Counted and reported before the hand-over, so that whoever
			// receives the message and then reads Stats (or a metric fed
			// by the event) sees it; taken back if the send is abandoned.
			s.c.stats.received.Add(1)
			if m.Redelivered {
				s.c.stats.redelivered.Add(1)
			}
			select {
			case s.msgs <- m:
			case <-ctx.Done():
				s.c.stats.received.Add(^uint64(0))
				if m.Redelivered {
					s.c.stats.redelivered.Add(^uint64(0))
				}
				return n, ctx.Err()
			}
			s.setNext(a.Pub, seq+1)
			n++
			s.c.emit(Event{Kind: EventMessage, Topic: s.tk.name, Seq: seq, Message: m})
		}
	}
	return n, nil
}
