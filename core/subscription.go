package core

// Subscribing: the Subscription type, start positions, and
// unsubscribing (the options are in subscribe_options.go).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// Subscription is one topic followed by a client. Messages arrive on
// Messages exactly once, each publisher's in sequence order, and in topic
// order all of them in the one order every subscriber sees (see Ordering);
// gaps are reported on Gaps (and as EventGap). Both channels are closed by
// Unsubscribe and Close.
type Subscription struct {
	c    *Client
	tk   *topicKeys    // shared with the topic's push, if any (never written)
	ttl  time.Duration // the subscription record's (WithSubscriptionTTL)
	msgs chan *Message
	// gaps is the Gaps channel, made on first use (Gaps or a gap): most
	// subscriptions never see a gap, and its buffer is gapBuffer Gaps.
	gaps atomic.Pointer[chan Gap]
	// life is the context, cancelled by unsubscribe, of what runs for the
	// whole subscription (a durable's writer, publisher-order head
	// watches): nil without them; push polls then get a context per run
	// (runCancel), so an idle subscription holds none.
	life *subLife
	wg   sync.WaitGroup

	// The locks and flags sit together (the struct is what an idle
	// subscription holds; padding counts).
	recMu  sync.Mutex // guards recVer, expires, keep
	pollMu sync.Mutex // guards the delivery state below
	runMu  sync.Mutex // guards runner and runCancel
	runner pushRunner // the on-demand poll goroutine of push
	keep   bool       // unsubscribing by Close: keep the durable position
	opts   keptOptions
	// Delivery state, guarded by pollMu.
	closed   bool
	jumped   bool // the cursor jumped over dropped announcements (ordered mode)
	unplaced bool // and the dropped announcements could not be read
	// lazyBase (ordered mode, resumed from a cursor): a publisher that
	// neither the cursor nor base names starts at the From of its first
	// announcement after the cursor index, which is one past its head
	// before that index.
	lazyBase bool
	// headsShared: pos.heads is base itself, shared until either is
	// written (ownHeads copies it first): an idle subscription holds one
	// map, not two. baseShared: base is shared with other subscriptions
	// of the topic (registeredShared; ownBase copies it before a write).
	headsShared bool
	baseShared  bool
	// pushIdx is the subscription's index in its topicPush's subs
	// (guarded by that push's mu).
	pushIdx int32

	recVer    backend.Version
	expires   time.Time
	cursor    uint64
	coordVer  backend.Version
	base      map[PublisherID]uint64
	expected  map[PublisherID]uint64
	missing   map[Ref]int
	seenBad   map[Ref]bool
	*pubOrder                        // publisher order only (nil in topic order)
	policy    *Policy                // the topic's write-access policy at this poll (nil: open)
	denied    map[PublisherID]uint64 // highest seq of each publisher counted as denied
	pre       map[Ref]*prefetched    // segments prefetched for this poll
	skel      map[Ref]*chainSkel     // segments a poll walked past the prefetch bound (prefetchChains)
	audit     auditState
	pos       posTracker // the position, for each message's cursor
	target    uint64     // the coordinator's count at this poll (ordered)
	serial    uint64     // messages delivered (their order, for Ack)

	dur *durable // nil unless Durable

	// runCancel ends the running push poll's context (nil while idle, and
	// when the poll runs in life's context). Guarded by runMu.
	runCancel context.CancelFunc
	// idleAt is the coordinator version at which the last poll ended
	// complete (topic order), 0 if it did not: a safety poll skips the
	// subscription while the coordinator is still at that version.
	idleAt    atomic.Uint64
	pushTopic *topicPush // the topic's shared watch (nil without push)
}

// subLife is a subscription's long-lived context (see Subscription.life).
type subLife struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// pubOrder is the delivery state only publisher order (unordered mode)
// uses, guarded by the subscription's pollMu.
type pubOrder struct {
	known map[PublisherID]bool // registered publishers
	// When the previous complete poll started, the publishers to read
	// again whatever the leases say, and how many polls a registered
	// publisher's head has been missing.
	lastPoll    time.Time
	pending     map[PublisherID]bool
	headMissing map[PublisherID]int
	sweep       PublisherID // round-robin position among known publishers
	lastCoord   *coordState // the coordinator the last poll read
	hints       *headHints  // head watches (pushed; see headHints)
	// The position, for each message's cursor (see posTracker): full
	// overlaid with delta; delta is folded into a new full map when it
	// grows.
	posFull  map[PublisherID]uint64
	posDelta map[PublisherID]uint64
}

// headHints returns the subscription's head watches (nil: none, and
// always in topic order).
func (s *Subscription) headHints() *headHints {
	if s.pubOrder == nil {
		return nil
	}
	return s.hints
}

// Topic returns the subscribed topic.
func (s *Subscription) Topic() string { return s.tk.name }

// Messages returns the channel of delivered messages.
func (s *Subscription) Messages() <-chan *Message { return s.msgs }

// Gaps returns the channel of reported gaps. It is buffered; when full,
// further gaps are still counted in Stats and sent as events.
func (s *Subscription) Gaps() <-chan Gap { return s.gapsChan() }

// closedGaps is the Gaps channel of a subscription that ended before its
// channel was made: closed, shared by all of them.
var closedGaps = func() *chan Gap {
	ch := make(chan Gap)
	close(ch)
	return &ch
}()

// gapsChan returns the Gaps channel, making it on first use.
func (s *Subscription) gapsChan() chan Gap {
	if p := s.gaps.Load(); p != nil {
		return *p
	}
	ch := make(chan Gap, gapBuffer)
	if s.gaps.CompareAndSwap(nil, &ch) {
		return ch
	}
	return *s.gaps.Load()
}

// closeGaps closes the Gaps channel (the caller holds pollMu, so no gap is
// being sent).
func (s *Subscription) closeGaps() {
	if !s.gaps.CompareAndSwap(nil, closedGaps) {
		close(*s.gaps.Load())
	}
}

// Expires returns when the subscription record expires unless renewed.
func (s *Subscription) Expires() time.Time {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	return s.expires
}

// Subscribe follows topic. The position (FromStart or FromNow) is fixed
// before Subscribe returns; history is delivered by the first poll (at once
// when the backend offers push).
func (c *Client) Subscribe(ctx context.Context, topic string, opts ...SubscribeOption) (*Subscription, error) {
	s, err := c.subscribe(ctx, topic, opts)
	for attempt := 0; errors.Is(err, ErrDurableInUse) && attempt < durableReopens; attempt++ {
		// The durable record moved between reading it and the first
		// write: most likely the late write of an incarnation that just
		// died (a crash and a quick restart). Open it afresh; a client
		// that really uses the name elsewhere keeps moving it.
		if sleepJitter(ctx, attempt) != nil {
			break
		}
		s, err = c.subscribe(ctx, topic, opts)
	}
	if err != nil {
		c.stats.failures.Add(1)
		c.emit(Event{Kind: EventSubscribeError, Topic: topic, Err: err})
		return nil, err
	}
	c.emit(Event{Kind: EventSubscribed, Topic: topic})
	return s, nil
}

// durableReopens is how many times Subscribe opens a durable subscription
// afresh when its record moved under it.
const durableReopens = 3

func (c *Client) subscribe(ctx context.Context, topic string, opts []SubscribeOption) (*Subscription, error) {
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	o := subscribeOptions{ttl: DefaultSubscriptionTTL, buffer: -1, push: true, durableTTL: DefaultDurableTTL}
	for _, fn := range opts {
		fn(&o)
	}
	if o.buffer < 0 {
		o.buffer = DefaultBuffer
		if !o.push || !canPush(c.eng.store) {
			o.buffer = DefaultPollBuffer
		}
	}
	tkp := c.eng.pushKeys(topic)
	tk := *tkp
	c.mu.Lock()
	_, dup := c.subs.get(topic)
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClientClosed
	}
	if dup {
		return nil, fmt.Errorf("%w: %q", ErrAlreadySubscribed, topic)
	}
	// The maps of the delivery state are made on first use (see put): an
	// idle subscription holds what it needs, not a map of each kind.
	s := &Subscription{c: c, tk: tkp, ttl: o.ttl, opts: keptOptions{fromStart: o.fromStart, noRecord: o.noRecord},
		msgs: make(chan *Message, o.buffer)}
	if !c.eng.ordered {
		s.pubOrder = &pubOrder{}
	}
	if o.durable != "" {
		s.dur = &durable{s: s, name: o.durable, id: durableID(c.id.PublicKey(), o.durable),
			ttl: max(o.durableTTL, time.Second), wake: make(chan struct{}, 1)}
		acked, err := s.dur.open(ctx)
		if err != nil {
			return nil, err
		}
		if !acked.IsZero() {
			o.cursor = acked // resume: the stored position wins
		}
	}
	if !o.cursor.IsZero() {
		if err := o.cursor.check(tk, c.eng.ordered); err != nil {
			return nil, err
		}
	}
	if c.eng.ordered {
		// Announce what a crashed publisher (this identity included) wrote
		// but never announced, before the position is fixed.
		s.auditHeads(ctx, c.pid)
	}
	var (
		st *coordState
		v  backend.Version
	)
	err := retryIO(ctx, func() (err error) {
		st, v, err = c.eng.readCoord(ctx, tk)
		return err
	})
	if err != nil {
		return nil, err
	}
	// A resumed subscription starts at its cursor (resume). A FromStart
	// one starts each publisher at its first retained announcement's From.
	// A FromNow one starts after every registered publisher's current head
	// (read once here, from the registry), so that if it later falls
	// behind retention it reports exactly what it missed.
	s.base = map[PublisherID]uint64{}
	switch {
	case !o.cursor.IsZero():
		if err := s.resume(ctx, st, o.cursor); err != nil {
			return nil, err
		}
	case o.fromStart:
		s.cursor = st.RetainFrom
	default:
		s.cursor, s.coordVer = st.Count, v
		if c.eng.ordered {
			for attempt := 0; ; attempt++ {
				err = retryIO(ctx, func() (err error) {
					s.base, s.baseShared, err = c.eng.registeredShared(ctx, tk, st)
					return err
				})
				if !errors.Is(err, backend.ErrNotFound) || attempt >= 5 {
					break
				}
				// The registry of the coordinator read was reclaimed by two
				// folds since: start from a newer one.
				if err = retryIO(ctx, func() (err error) { st, v, err = c.eng.readCoord(ctx, tk); return err }); err != nil {
					break
				}
				s.cursor, s.coordVer = st.Count, v
			}
			if err != nil {
				return nil, err
			}
		} else {
			if err := s.baseFromHeads(ctx, st); err != nil {
				return nil, err
			}
		}
	}
	if o.cursor.IsZero() {
		s.initPos()
	}
	if s.dur != nil && s.dur.acked.IsZero() {
		s.dur.acked = s.current() // a new durable starts here, even if it never acks
	}
	if err := s.writeRecord(ctx, c.eng.now().Add(o.ttl)); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if _, dup := c.subs.get(topic); dup || c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrAlreadySubscribed, topic)
	}
	// Not a child of the client's context: Close unsubscribes (and so
	// cancels) every subscription itself, and a child would cost an entry
	// in the parent's set of children for every subscription.
	if s.dur != nil || (o.push && !c.eng.ordered && canPush(c.eng.store)) {
		ctx, cancel := context.WithCancel(context.Background())
		s.life = &subLife{ctx: ctx, cancel: cancel}
	}
	c.subs.add(s)
	c.mu.Unlock()
	if s.dur != nil {
		s.wg.Go(func() { s.dur.run(s.life.ctx) })
	}
	if w, ok := c.eng.store.(backend.Watcher); ok && o.push {
		if err := s.startPush(w); err != nil {
			if s.pubOrder != nil {
				s.pollMu.Lock()
				s.hints = nil
				s.pollMu.Unlock()
			}
			c.opts.logger.Warn("stickypub: push unavailable, poll instead", "topic", topic, "err", err)
		}
	}
	return s, nil
}

// baseFromHeads starts a FromNow subscription in unordered mode after
// what every registered publisher's head record shows now.
func (s *Subscription) baseFromHeads(ctx context.Context, st *coordState) error {
	s.base = map[PublisherID]uint64{}
	start := s.c.eng.now()
	var reg map[PublisherID]uint64
	err := retryIO(ctx, func() (err error) {
		reg, err = s.c.eng.registered(ctx, *s.tk, st)
		return err
	})
	if err != nil {
		return err
	}
	pids := slices.SortedFunc(maps.Keys(reg), comparePID)
	for attempt := 0; len(pids) > 0; attempt++ {
		heads, errs := s.c.eng.readHeads(ctx, *s.tk, pids)
		var again []PublisherID
		for i, p := range pids {
			put(&s.known, p, true)
			switch {
			case heads[i] != nil:
				s.base[p] = heads[i].Last
			case retryable(errs[i]):
				again = append(again, p)
			}
		}
		if pids = again; len(pids) > 0 {
			if err := sleepJitter(ctx, attempt+4); err != nil {
				return err
			}
		}
	}
	s.lastPoll = start
	return nil
}

// Unsubscribe removes the subscription record, stops delivery and closes
// the subscription's channels.
func (c *Client) Unsubscribe(ctx context.Context, topic string) error {
	c.mu.Lock()
	s, ok := c.subs.get(topic)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotSubscribed, topic)
	}
	return c.unsubscribe(ctx, s, false)
}

// unsubscribe ends s. keep (Close) keeps a durable subscription's position,
// after storing its pending acknowledgements; otherwise it is deleted.
func (c *Client) unsubscribe(ctx context.Context, s *Subscription, keep bool) error {
	var flushErr error
	if s.dur != nil && keep {
		flushErr = s.dur.flush(ctx)
	}
	s.recMu.Lock()
	s.keep = keep
	s.recMu.Unlock()
	c.mu.Lock()
	c.subs.remove(s)
	c.mu.Unlock()
	s.stopPush()
	if s.life != nil {
		s.life.cancel()
	}
	s.wg.Wait()
	s.pollMu.Lock()
	if !s.closed {
		s.closed = true
		close(s.msgs)
		s.closeGaps()
	}
	s.pollMu.Unlock()
	err := errors.Join(flushErr, s.writeRecord(ctx, time.Time{}))
	if err != nil {
		c.stats.failures.Add(1)
		c.emit(Event{Kind: EventSubscribeError, Topic: s.tk.name, Err: err})
		return err
	}
	c.emit(Event{Kind: EventUnsubscribed, Topic: s.tk.name})
	return nil
}
