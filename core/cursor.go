package core

// Cursors: the position after a delivered message, its binary and text
// forms, and how a subscription tracks it.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// ErrCursorMismatch: a cursor belongs to another topic or to the other
// delivery mode (ordered/unordered) than the subscription it is given to.
var ErrCursorMismatch = errors.New("core: cursor does not belong to this topic and mode")

// Cursor is a subscription position: where delivery resumes after the
// message that carries it. It is opaque, versioned and says which topic and
// mode it belongs to. Its binary (MarshalBinary) and text (String) forms are
// stable; ParseCursor and UnmarshalCursor read them back.
//
// In ordered mode a cursor is an announcement index plus the next seq of
// the (few) publishers whose delivery stands elsewhere than that index
// implies (inside a partly delivered announcement). In unordered mode it is
// the next seq of every publisher seen; a publisher it does not name starts
// at seq 1.
type Cursor struct {
	topic   string // topicKeys.id
	ordered bool
	index   uint64
	full    map[PublisherID]uint64 // shared, never modified
	delta   map[PublisherID]uint64 // overrides full
}

const (
	cursorTag       = 'K'
	cursorVersion   = 1
	cursorOrdered   = 'o'
	cursorUnordered = 'u'
)

// IsZero reports whether c is the zero Cursor (no position).
func (c Cursor) IsZero() bool { return c.topic == "" }

// nexts returns the cursor's per-publisher next seqs (a new map).
func (c Cursor) nexts() map[PublisherID]uint64 {
	m := make(map[PublisherID]uint64, len(c.full)+len(c.delta))
	maps.Copy(m, c.full)
	maps.Copy(m, c.delta)
	return m
}

// next is the cursor's next seq of p, if it names p.
func (c Cursor) next(p PublisherID) (uint64, bool) {
	if v, ok := c.delta[p]; ok {
		return v, true
	}
	v, ok := c.full[p]
	return v, ok
}

// covers reports whether a message delivered while the subscription stood
// at announcement index i (ordered mode) with publisher p and seq is before
// c: used for the delivered mark of durable subscriptions.
func (c Cursor) covers(i uint64, p PublisherID, seq uint64) bool {
	if c.IsZero() {
		return false
	}
	if c.ordered && i < c.index {
		return true
	}
	n, ok := c.next(p)
	return ok && seq < n
}

// MarshalBinary encodes the cursor.
func (c Cursor) MarshalBinary() ([]byte, error) {
	if c.IsZero() {
		return nil, errors.New("core: zero cursor")
	}
	var e encoder
	e.byte(cursorTag)
	e.byte(cursorVersion)
	if c.ordered {
		e.byte(cursorOrdered)
	} else {
		e.byte(cursorUnordered)
	}
	e.str(c.topic)
	e.uvarint(c.index)
	encodeHeads(&e, c.nexts())
	return e.b, nil
}

// String returns the cursor's text form (unpadded URL-safe base64).
func (c Cursor) String() string {
	b, err := c.MarshalBinary()
	if err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// MarshalText implements encoding.TextMarshaler.
func (c Cursor) MarshalText() ([]byte, error) {
	if c.IsZero() {
		return nil, errors.New("core: zero cursor")
	}
	return []byte(c.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Cursor) UnmarshalText(b []byte) error {
	v, err := ParseCursor(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseCursor reads a cursor's text form.
func ParseCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: cursor is not base64: %v", ErrMalformed, err)
	}
	return UnmarshalCursor(b)
}

// UnmarshalCursor reads a cursor's binary form.
func UnmarshalCursor(b []byte) (Cursor, error) {
	d := decoder{b: b}
	if tag := d.byte(); tag != cursorTag {
		return Cursor{}, malformed("cursor tag %#x", tag)
	}
	if v := d.byte(); v != cursorVersion && d.err == nil {
		return Cursor{}, malformed("cursor version %d (this client reads %d)", v, cursorVersion)
	}
	var c Cursor
	switch m := d.byte(); m {
	case cursorOrdered:
		c.ordered = true
	case cursorUnordered:
	default:
		if d.err == nil {
			return Cursor{}, malformed("cursor mode %#x", m)
		}
	}
	c.topic = string(d.bytes())
	c.index = d.uvarint()
	c.full = decodeHeads(&d)
	if err := d.done(); err != nil {
		return Cursor{}, malformed("cursor: %v", err)
	}
	if len(c.topic) != 22 {
		return Cursor{}, malformed("cursor topic id of %d bytes", len(c.topic))
	}
	for p, n := range c.full {
		if n == 0 {
			return Cursor{}, malformed("cursor names seq 0 for %s", p)
		}
	}
	return c, nil
}

// check verifies that c belongs to topic tk and the client's mode.
func (c Cursor) check(tk topicKeys, ordered bool) error {
	if c.topic != tk.id {
		return fmt.Errorf("%w: the cursor is for another topic than %q", ErrCursorMismatch, tk.name)
	}
	if c.ordered != ordered {
		mode := map[bool]string{true: "ordered", false: "unordered"}
		return fmt.Errorf("%w: %s cursor given to a %s subscription of %q (the store's consistency decides the mode)",
			ErrCursorMismatch, mode[c.ordered], mode[ordered], tk.name)
	}
	return nil
}

// FromCursor resumes delivery after the message that carried c (see
// Message.Cursor): nothing before it is delivered again, nothing after it
// is skipped (what retention dropped meanwhile is reported as gaps).
// Subscribe fails with ErrCursorMismatch for a cursor of another topic or
// mode.
func FromCursor(c Cursor) SubscribeOption { return func(o *subscribeOptions) { o.cursor = c } }

// posTracker follows a subscription's position as delivery moves it, so that
// every delivered message can carry its cursor cheaply. All changes of a
// publisher's next expected seq go through Subscription.setNext.
type posTracker struct {
	// Ordered mode: heads[p] is p's highest announced seq before the
	// cursor index; off holds the publishers whose next seq differs from
	// heads[p]+1, recomputed for the publishers in dirty.
	// heads starts as the subscription's base map itself (see
	// Subscription.headsShared).
	heads map[PublisherID]uint64
	off   map[PublisherID]uint64
	dirty map[PublisherID]bool
	// Unordered mode: pubOrder.posFull and posDelta (only that mode
	// holds them).
}

// unorderedDeltaMax bounds the overrides copied into each message's cursor.
const unorderedDeltaMax = 64

// setNext sets publisher p's next expected seq.
func (s *Subscription) setNext(p PublisherID, v uint64) {
	put(&s.expected, p, v)
	if s.c.eng.ordered {
		put(&s.pos.dirty, p, true)
		return
	}
	put(&s.posDelta, p, v)
	if len(s.posDelta) > unorderedDeltaMax {
		full := make(map[PublisherID]uint64, len(s.posFull)+len(s.posDelta))
		maps.Copy(full, s.posFull)
		maps.Copy(full, s.posDelta)
		s.posFull, s.posDelta = full, nil
	}
}

// initPos starts position tracking from the subscription's current state
// (cursor, base, expected).
func (s *Subscription) initPos() {
	s.pos = posTracker{}
	if s.c.eng.ordered {
		s.pos.heads, s.headsShared = s.base, true
		for p := range s.expected {
			put(&s.pos.dirty, p, true)
		}
		return
	}
	full := map[PublisherID]uint64{}
	for p, h := range s.base {
		full[p] = h + 1
	}
	maps.Copy(full, s.expected)
	s.posFull, s.posDelta = full, nil
}

// passed records that the subscription processed announcement a (ordered
// mode): the cursor index moves past it.
func (s *Subscription) passed(a announcement) {
	if a.To > s.pos.heads[a.Pub] {
		s.ownHeads()
		s.pos.heads[a.Pub] = a.To
	}
	put(&s.pos.dirty, a.Pub, true)
}

// ownBase gives base a map of its own, no longer shared with other
// subscriptions nor with pos.heads, before it is written.
func (s *Subscription) ownBase() {
	if s.baseShared || s.headsShared {
		s.base, s.baseShared = maps.Clone(s.base), false
		// pos.heads keeps the old map, still marked shared: it is copied
		// in turn before it is written.
	}
	if s.base == nil {
		s.base = map[PublisherID]uint64{}
	}
}

// ownHeads gives the ordered-mode heads a map of their own, no longer
// shared with base, before either is written.
func (s *Subscription) ownHeads() {
	if s.headsShared {
		s.pos.heads, s.headsShared = maps.Clone(s.pos.heads), false
	}
	if s.pos.heads == nil {
		s.pos.heads = map[PublisherID]uint64{}
	}
}

// rebase sets the ordered-mode heads after the cursor jumped (retention).
func (s *Subscription) rebase(heads map[PublisherID]uint64) {
	s.pos.heads, s.headsShared = maps.Clone(heads), false
	for p := range heads {
		put(&s.pos.dirty, p, true)
	}
	for p := range s.expected {
		put(&s.pos.dirty, p, true)
	}
}

// refreshOff brings the ordered-mode overrides up to date.
func (s *Subscription) refreshOff() {
	for q := range s.pos.dirty {
		if n := s.next(q); n != s.pos.heads[q]+1 {
			put(&s.pos.off, q, n)
		} else {
			delete(s.pos.off, q)
		}
	}
	clear(s.pos.dirty)
}

// cursorAfter returns the position after delivering seq v-1 of p (p's
// next seq becomes v), without changing the subscription.
func (s *Subscription) cursorAfter(p PublisherID, v uint64) Cursor {
	c := s.current()
	if c.ordered && v == s.pos.heads[p]+1 {
		delete(c.delta, p)
	} else {
		put(&c.delta, p, v)
	}
	return c
}

// current returns the subscription's position now.
func (s *Subscription) current() Cursor {
	c := Cursor{topic: s.tk.id, ordered: s.c.eng.ordered, index: s.cursor}
	if !s.c.eng.ordered {
		c.full, c.delta = s.posFull, maps.Clone(s.posDelta)
		return c
	}
	s.refreshOff()
	c.delta = maps.Clone(s.pos.off)
	return c
}

// resume sets the subscription's position from cursor cur (checked by the
// caller), reading the coordinator state st.
func (s *Subscription) resume(ctx context.Context, st *coordState, cur Cursor) error {
	c := s.c
	s.expected = map[PublisherID]uint64{}
	if !c.eng.ordered {
		s.base = map[PublisherID]uint64{}
		s.expected = cur.nexts()
		for p := range s.expected {
			put(&s.known, p, true)
		}
		s.initPos()
		return nil
	}
	i := cur.index
	if i > st.Count {
		// The history the cursor points into is gone (the store lost
		// data): report it and start over on what the store holds.
		err := fmt.Errorf("%w: the cursor stands at announcement %d of %q, which has only %d now; delivering what the store holds",
			ErrLogRegressed, i, s.tk.name, st.Count)
		c.stats.failures.Add(1)
		c.emit(Event{Kind: EventSubscribeError, Topic: s.tk.name, Err: err})
		c.opts.logger.Warn("stickypub: topic history went backwards", "topic", s.tk.name, "err", err)
		s.base, s.cursor, s.expected = map[PublisherID]uint64{}, 0, cur.nexts()
		s.initPos()
		return nil
	}
	// The heads before index i are not copied anywhere (snapshots hold
	// only announcements): a publisher the cursor does not name starts at
	// the From of its first announcement at or after i, which is one past
	// its head before i (see Subscription.deliver). Below retention the
	// poll jumps to RetainFrom and reports what it cannot place as gaps.
	s.base, s.cursor, s.lazyBase = map[PublisherID]uint64{}, i, true
	s.expected = cur.nexts()
	s.initPos()
	return nil
}

// sortedPIDs returns the keys of m in order.
func sortedPIDs[V any](m map[PublisherID]V) []PublisherID {
	return slices.SortedFunc(maps.Keys(m), comparePID)
}

// put sets m[k] = v, making the map on first use: a subscription's maps
// stay nil (reads of a nil map find nothing) until something is put in.
func put[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = map[K]V{}
	}
	(*m)[k] = v
}
