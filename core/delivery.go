package core

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
	s, ok := c.subs[topic]
	c.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrNotSubscribed, topic)
	}
	return s.pollEmit(ctx)
}

// PollAll polls every subscription and returns the total delivered.
func (c *Client) PollAll(ctx context.Context) (int, error) {
	c.mu.Lock()
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
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
	pol, err := c.readPolicy(ctx, s.tk, policyRefresh)
	if err != nil {
		return 0, err
	}
	s.policy = pol
	if !c.ordered {
		return s.pollHeads(ctx)
	}
	if s.auditDue() {
		s.auditHeads(ctx)
	}
	st, v, err := c.readCoord(ctx, s.tk)
	if err != nil {
		return 0, err
	}
	s.target = st.Count
	if v != 0 && (v < s.coordVer || st.Count < s.cursor) {
		s.regressed(st, v)
	}
	if v == 0 || v < s.coordVer || (v == s.coordVer && s.cursor >= st.Count) {
		return 0, nil // nothing new, or a stale read
	}
	if s.cursor < st.RetainFrom {
		// Retention dropped announcements this subscription had not
		// processed yet. What it never received from a publisher it knows
		// is reported, not skipped: when the publisher's next retained
		// announcement starts past it (deliver), or, once every retained
		// announcement is processed, up to the publisher's head (below).
		if s.lazyBase {
			s.placeDropped(ctx, st)
		}
		s.cursor, s.jumped = st.RetainFrom, true
		// The heads before the new index are not known: the position
		// names every known publisher explicitly from now on.
		s.rebase(map[PublisherID]uint64{})
		for p := range s.base {
			s.pos.dirty[p] = true
		}
	}
	if s.cursor > st.Count { // a weaker backend replaced a longer history
		s.cursor = st.Count
	}
	anns, err := c.annsFrom(ctx, st, s.cursor)
	if err != nil {
		return 0, err
	}
	n := 0
	defer func() { s.pre = nil }()
	for i, a := range anns {
		if i%prefetchWindow == 0 {
			s.prefetch(ctx, anns[i:min(i+prefetchWindow, len(anns))])
		}
		k, err := s.deliver(ctx, a)
		n += k
		if err != nil {
			return n, err
		}
		s.passed(a)
		s.cursor++
	}
	if s.jumped {
		// Every retained announcement is processed: a known publisher's
		// head still ahead of what was delivered lies in dropped ones.
		known := maps.Clone(s.base)
		maps.Copy(known, s.expected)
		for _, p := range slices.SortedFunc(maps.Keys(known), comparePID) {
			h, err := c.headOf(ctx, s.tk, st, p)
			if err != nil {
				return n, err // s.jumped stays: done at the next poll
			}
			s.gap(p, s.next(p), h, reasonRetention)
		}
		s.jumped = false
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
	}
	return n, nil
}

// pollHeads is poll for unordered mode (backends that are not
// linearizable): the coordinator is the publisher registry, and each
// registered publisher's signed head record says how far its log reaches.
// Registrations are remembered, so a stale or replaced coordinator cannot
// make a publisher disappear.
//
// A poll reads only the heads that can have changed since the previous
// one: publishers whose activity lease was live since then (see active.go),
// newly registered ones, and those whose delivery did not complete. A
// subscription whose previous poll is too old for the leases to be trusted
// (or its first poll) reads every registered head once (a full sweep).
func (s *Subscription) pollHeads(ctx context.Context) (int, error) {
	c := s.c
	start := c.now()
	narrow, wide, coordHint, dirty, watched := false, false, true, map[PublisherID]bool(nil), map[PublisherID]bool(nil)
	if s.hints != nil {
		wide, coordHint, dirty, watched = s.hints.take()
		narrow = !wide
	}
	st := s.lastCoord
	if !narrow || coordHint || st == nil {
		// A hint-driven poll reads the coordinator only when it changed
		// (registrations and leases); a missed hint is caught by the next
		// safety poll, which reads everything.
		var err error
		if st, _, err = c.readCoord(ctx, s.tk); err != nil {
			s.untakeHints(wide, dirty)
			return 0, err
		}
		s.lastCoord = st
	}
	want, full, err := changedSince(st, func() (map[PublisherID]uint64, error) { return c.registered(ctx, s.tk, st) }, s.lastPoll, start)
	if err != nil {
		s.untakeHints(wide, dirty)
		return 0, err
	}
	for p := range want {
		s.known[p] = true
	}
	if full {
		for p := range s.known {
			want[p] = true
		}
	}
	narrow = narrow && !full
	if narrow {
		narrowHeads(want, dirty, watched)
	}
	for p := range s.pending {
		want[p] = true
	}
	if !full && !narrow {
		for _, p := range sweepNext(s.known, &s.sweep, sweepPerPoll, want) {
			want[p] = true
		}
	}
	pids := slices.SortedFunc(maps.Keys(want), comparePID)
	heads, errs := c.readHeads(ctx, s.tk, pids)
	// Read and verify the segments to deliver, publishers in parallel.
	tips := make([]announcement, 0, len(heads))
	for i, h := range heads {
		if h != nil {
			tips = append(tips, announcement{Pub: pids[i], Seg: h.Seg, To: h.Last})
		}
	}
	s.prefetchChains(ctx, tips)
	defer func() { s.pre = nil }()
	clean := true
	n := 0
	for i, p := range pids {
		delete(s.pending, p)
		h := heads[i]
		if h == nil {
			switch {
			case errors.Is(errs[i], ErrMalformed) || errors.Is(errs[i], ErrBadSignature):
				s.invalidOnce(digest([]byte(errs[i].Error())), errs[i])
				errs[i] = nil
			case errors.Is(errs[i], backend.ErrNotFound):
				// Registered, so its head was written: not visible yet.
				if s.headMissing[p]++; s.headMissing[p] < missingLimitWeak {
					s.pending[p] = true
				}
			default:
				s.pending[p] = true
				clean = false
			}
			continue
		}
		delete(s.headMissing, p)
		if h.Base > s.next(p) {
			_, had := s.expected[p]
			if s.opts.fromStart && !had {
				// First sight of this publisher by a FromStart subscription:
				// it starts at what the publisher retains, as a late joiner.
				s.setNext(p, h.Base)
			} else {
				s.gap(p, s.next(p), h.Base-1, reasonRetention)
			}
		}
		k, err := s.deliver(ctx, announcement{Pub: p, Seg: h.Seg, To: h.Last})
		n += k
		if err != nil {
			for _, q := range pids[i:] {
				s.pending[q] = true
			}
			return n, err
		}
		if s.next(p) <= h.Last {
			s.pending[p] = true // not all delivered: look again next poll
		}
	}
	if clean {
		s.lastPoll = start
	}
	var joined []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			joined = append(joined, err)
		}
	}
	return n, errors.Join(joined...)
}

// readHeads reads the head records of pids in parallel. heads[i] is nil
// when errs[i] says why (backend.ErrNotFound when there is none yet).
func (c *engine) readHeads(ctx context.Context, tk topicKeys, pids []PublisherID) ([]*headRecord, []error) {
	heads := make([]*headRecord, len(pids))
	errs := make([]error, len(pids))
	_ = c.blobs.parallel(ctx, len(pids), func(ctx context.Context, i int) error {
		e, err := c.store.Get(ctx, tk.head(pids[i]))
		if err == nil {
			var h *headRecord
			if h, err = decodeHead(tk.name, e.Value); err == nil && PublisherIDOf(h.Publisher) != pids[i] {
				err = malformed("head record under %s signed by another key", pids[i])
			}
			if err == nil {
				heads[i] = h
			}
		}
		errs[i] = err
		return nil
	})
	return heads, errs
}

// placeDropped runs before a resumed subscription (lazyBase) jumps over
// announcements that retention dropped: the first dropped announcement of
// each publisher it cannot place yet gives, by its From, where that
// publisher stood at the cursor, so that what it misses is reported with
// its exact range. The dropped announcements stay readable for a durable
// subscription (the reclaimer keeps its floor); if they cannot be read,
// such publishers are reported from seq 1 instead.
func (s *Subscription) placeDropped(ctx context.Context, st *coordState) {
	anns, err := s.c.annsFrom(ctx, st, s.cursor)
	if err != nil {
		s.lazyBase = false
		return
	}
	for _, a := range anns[:min(uint64(len(anns)), st.RetainFrom-s.cursor)] {
		_, seen := s.expected[a.Pub]
		if _, based := s.base[a.Pub]; !seen && !based && a.From > 0 {
			s.base[a.Pub] = a.From - 1
		}
	}
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
	e, err := c.store.Get(ctx, s.tk.head(p))
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
	return s.deliver(ctx, announcement{Pub: p, Seg: h.Seg, To: h.Last})
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
	for _, sg := range segs {
		if sg.seg == nil {
			s.gap(a.Pub, sg.from, sg.to, sg.reason)
			continue
		}
		for i, m := range sg.msgs {
			seq := sg.seg.First + uint64(i)
			if seq < s.next(a.Pub) {
				s.c.stats.duplicates.Add(1)
				continue
			}
			if seq > a.To || seq > s.next(a.Pub) {
				break
			}
			if m.Expired(s.c.now()) {
				s.c.stats.expired.Add(1)
				s.setNext(a.Pub, seq+1)
				continue
			}
			if !s.policy.Allows(a.Pub) {
				s.c.stats.denied.Add(1)
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
			select {
			case s.msgs <- m:
			case <-ctx.Done():
				return n, ctx.Err()
			}
			s.setNext(a.Pub, seq+1)
			n++
			if m.Redelivered {
				s.c.stats.redelivered.Add(1)
			}
			s.c.stats.received.Add(1)
			s.c.emit(Event{Kind: EventMessage, Topic: s.tk.name, Seq: seq, Message: m})
		}
	}
	return n, nil
}

func (s *Subscription) gap(p PublisherID, from, to uint64, reason string) {
	if to < s.next(p) {
		return
	}
	from = max(from, s.next(p))
	g := Gap{Topic: s.tk.name, Publisher: p, From: from, To: to, Reason: reason}
	s.setNext(p, to+1)
	s.c.stats.gaps.Add(1)
	s.c.emit(Event{Kind: EventGap, Topic: s.tk.name, Gap: &g})
	select {
	case s.gaps <- g:
	default:
	}
}

// segPart is a segment to deliver, or a hole [from, to] when seg is nil.
type segPart struct {
	seg      *segment
	msgs     []*Message // its messages, verified
	from, to uint64
	reason   string
}

// collect loads and verifies the segments covering [from, a.To], oldest
// first. A segment that fails verification ends the walk and cancels it:
// nothing of this announcement is delivered now.
func (s *Subscription) collect(ctx context.Context, a announcement, from uint64) ([]segPart, error) {
	var parts []segPart
	ref, upTo := a.Seg, a.To
	for {
		var (
			sg   *segment
			msgs []*Message
			err  error
		)
		if v, ok := s.pre[ref]; ok && PublisherIDOf(v.seg.Publisher) == a.Pub {
			sg, msgs = v.seg, v.msgs
		} else {
			sg, err = s.loadSegment(ctx, ref, a.Pub)
		}
		if errors.Is(err, errRetryLater) {
			return nil, err
		}
		if errors.Is(err, backend.ErrNotFound) {
			parts = append(parts, segPart{from: from, to: upTo, reason: "segment missing from the store"})
			break
		}
		if err != nil {
			s.invalidOnce(ref, err)
			if to, ok := s.vouched(ctx, a.Pub, ref, from); ok {
				// The publisher's own signed log leads to this segment: it
				// is damaged in the store, not forged, and its messages are
				// lost. Report them; later segments still arrive.
				parts = append(parts, segPart{from: from, to: to, reason: "segment damaged in the store"})
			} else {
				parts = nil // nothing older can be delivered without this one
			}
			break
		}
		if msgs == nil {
			if msgs, err = verifySegment(s.tk.name, sg); err != nil {
				// Not signed by its publisher as it stands (altered,
				// truncated, spliced, reordered, signed by another key):
				// nothing of it or behind it is delivered, and the expected
				// seq does not move, so the real messages still arrive.
				// Its First and Prev are not trusted either: a forged
				// segment cannot make a "log starts later" gap.
				s.invalidOnce(ref, err)
				parts = nil
				break
			}
		}
		if sg.last() < upTo {
			s.invalidOnce(ref, malformed("announcement of %s to %d names a segment ending at %d", a.Pub, upTo, sg.last()))
		}
		parts = append(parts, segPart{seg: sg, msgs: msgs})
		if sg.First <= from {
			break
		}
		if sg.Prev.IsZero() {
			parts = append(parts, segPart{from: from, to: sg.First - 1, reason: "log starts later"})
			break
		}
		ref, upTo = sg.Prev, sg.First-1
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return parts, nil
}

// vouched reports whether publisher p's signed head record leads, along
// Prev links, to segment bad before going below seq from, and if so the
// last seq bad holds. Only then is a segment that fails verification
// damage rather than a forgery: an unsigned announcement naming garbage
// must not make a subscriber skip real messages.
func (s *Subscription) vouched(ctx context.Context, p PublisherID, bad Ref, from uint64) (uint64, bool) {
	e, err := s.c.store.Get(ctx, s.tk.head(p))
	if err != nil {
		return 0, false
	}
	h, err := decodeHead(s.tk.name, e.Value)
	if err != nil || PublisherIDOf(h.Publisher) != p {
		return 0, false
	}
	ref, upTo := h.Seg, h.Last
	for upTo >= from && !ref.IsZero() {
		if ref == bad {
			return upTo, true
		}
		sg, err := s.loadSegment(ctx, ref, p)
		if err != nil || sg.First > upTo {
			return 0, false
		}
		ref, upTo = sg.Prev, sg.First-1
	}
	return 0, false
}

// invalidOnce counts a bad record once per subscription, however often it
// is met again.
func (s *Subscription) invalidOnce(ref Ref, err error) {
	if s.seenBad[ref] {
		return
	}
	s.seenBad[ref] = true
	s.invalid(err)
}

// prefetchWindow is how many announcements a poll prefetches at a time.
const prefetchWindow = 256

// prefetched is a segment read and verified ahead of delivery.
type prefetched struct {
	seg  *segment
	msgs []*Message
}

// prefetch reads and verifies the segments of anns in parallel, so that a
// catch-up over many small segments is not one round trip and one
// single-threaded verification at a time. Whatever fails here is simply
// not prefetched: delivery reads it again and handles the error.
func (s *Subscription) prefetch(ctx context.Context, anns []announcement) {
	type want struct {
		ref Ref
		pub PublisherID
	}
	var wants []want
	seen := map[Ref]bool{}
	for _, a := range anns {
		if !seen[a.Seg] && a.To >= s.next(a.Pub) {
			seen[a.Seg] = true
			wants = append(wants, want{a.Seg, a.Pub})
		}
	}
	if len(wants) < 2 {
		return
	}
	got := make([]*prefetched, len(wants))
	_ = s.c.blobs.parallel(ctx, len(wants), func(ctx context.Context, i int) error {
		data, err := s.c.blobs.get(ctx, wants[i].ref)
		if err != nil {
			return nil
		}
		sg, err := decodeSegment(data)
		if err != nil || PublisherIDOf(sg.Publisher) != wants[i].pub {
			return nil
		}
		msgs, err := verifySegment(s.tk.name, sg)
		if err != nil {
			return nil // delivery verifies it again, and counts it
		}
		got[i] = &prefetched{seg: sg, msgs: msgs}
		return nil
	})
	s.pre = make(map[Ref]*prefetched, len(wants))
	for i, p := range got {
		if p != nil {
			s.pre[wants[i].ref] = p
		}
	}
}

// errRetryLater marks a segment that is missing for now on a backend where
// writes may still be propagating.
var errRetryLater = errors.New("core: segment not visible yet")

func (s *Subscription) loadSegment(ctx context.Context, ref Ref, p PublisherID) (*segment, error) {
	c := s.c
	data, err := c.blobs.get(ctx, ref)
	if errors.Is(err, backend.ErrNotFound) && c.caps.Consistency < backend.Linearizable {
		s.missing[ref]++
		if s.missing[ref] < missingLimitWeak {
			return nil, fmt.Errorf("%w: %s: %w", errRetryLater, ref, err)
		}
	}
	if err != nil {
		if !errors.Is(err, backend.ErrNotFound) && !errors.Is(err, ErrMalformed) {
			return nil, fmt.Errorf("%w: %w", errRetryLater, err) // transient engine error
		}
		return nil, err
	}
	delete(s.missing, ref)
	sg, err := decodeSegment(data)
	if err != nil {
		return nil, err
	}
	if PublisherIDOf(sg.Publisher) != p {
		return nil, malformed("segment %s is not by publisher %s", ref, p)
	}
	return sg, nil
}
