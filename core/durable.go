package core

// Durable subscriptions: opening one at its stored position, the delivered
// mark, Ack and AckSync, and the background writer of positions.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// DefaultDurableTTL is how long a durable subscription's position is kept
// (and pins the history it still needs) after its last renewal.
const DefaultDurableTTL = 7 * 24 * time.Hour

// ackDelay is how long acknowledgements are coalesced before the position
// record is written.
const ackDelay = 50 * time.Millisecond

var (
	// ErrNotDurable: Ack on a subscription made without Durable.
	ErrNotDurable = errors.New("core: not a durable subscription")
	// ErrDurableInUse: another client moved this durable subscription's
	// position record (the same identity and name used in two places).
	ErrDurableInUse = errors.New("core: durable subscription position written by another client")
)

// Durable makes the subscription durable under name: its acknowledged
// position (see Subscription.Ack) is stored in the backend, and a later
// Subscribe with the same identity, topic and name resumes there, whatever
// FromStart, FromNow or FromCursor say (they apply when the name is new).
// Delivery is at least once: messages delivered but not acknowledged before
// a crash are delivered again, flagged Message.Redelivered. Close keeps the
// position; Unsubscribe deletes it.
func Durable(name string) SubscribeOption { return func(o *subscribeOptions) { o.durable = name } }

// WithDurableTTL sets how long a durable position is kept after its last
// renewal (default DefaultDurableTTL).
func WithDurableTTL(d time.Duration) SubscribeOption {
	return func(o *subscribeOptions) { o.durableTTL = d }
}

// durable is the state of a durable subscription.
type durable struct {
	s    *Subscription
	name string
	id   PublisherID
	ttl  time.Duration

	mu       sync.Mutex // guards the record fields and serializes writes
	ver      backend.Version
	written  []byte // value of the last write attempt
	expires  int64
	acked    Cursor
	ackedSer uint64
	mark     Cursor // delivery never passes it without writing it first
	prevMark Cursor // the crashed/closed incarnation's mark

	pendMu  sync.Mutex
	pending Cursor
	pendSer uint64
	wake    chan struct{}
}

// open reads the durable record. It returns the acknowledged position, or
// a zero Cursor when the name is new (or its record expired or was deleted).
func (d *durable) open(ctx context.Context) (Cursor, error) {
	s := d.s
	r, e, err := s.c.eng.readDurableNewest(ctx, *s.tk, d.id)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return Cursor{}, nil
	case err != nil && e.Version != 0 && (errors.Is(err, ErrMalformed) || errors.Is(err, ErrBadSignature)):
		// A forged or damaged record: it is replaced, not trusted.
		s.invalid(fmt.Errorf("durable subscription %q on %q: %w", d.name, s.tk.name, err))
		d.ver = e.Version
		return Cursor{}, nil
	case err != nil:
		return Cursor{}, fmt.Errorf("core: read durable subscription %q on %q: %w", d.name, s.tk.name, err)
	}
	d.ver, d.written = e.Version, e.Value
	if r.Expires == 0 || r.Expires < s.c.eng.now().UnixNano() {
		return Cursor{}, nil
	}
	acked, err := UnmarshalCursor(r.Acked)
	if err != nil {
		return Cursor{}, fmt.Errorf("core: durable subscription %q on %q: %w", d.name, s.tk.name, err)
	}
	if len(r.Mark) > 0 {
		if d.prevMark, err = UnmarshalCursor(r.Mark); err != nil {
			return Cursor{}, fmt.Errorf("core: durable subscription %q on %q: %w", d.name, s.tk.name, err)
		}
		d.mark = d.prevMark
	}
	return acked, nil
}

// write stores the record (d.mu held) with compare-and-put from the
// version last written. A conflict that shows the value of the last attempt
// means that attempt landed; any other conflict means another client writes
// this durable subscription.
func (d *durable) write(ctx context.Context) error {
	s := d.s
	c := s.c
	r := &durRecord{Subscriber: c.id.PublicKey(), Name: d.name, Expires: d.expires}
	if !d.acked.IsZero() {
		r.Acked, _ = d.acked.MarshalBinary()
	}
	if !d.mark.IsZero() {
		r.Mark, _ = d.mark.MarshalBinary()
	}
	r.Sig = c.id.sign(durSigned(s.tk.name, r))
	val := r.encode()
	if len(val) > c.eng.maxValue {
		ref, err := c.eng.blobs.put(ctx, val)
		if err != nil {
			return fmt.Errorf("core: write durable subscription %q on %q: %w", d.name, s.tk.name, err)
		}
		val = append([]byte{durRefTag}, ref[:]...)
	}
	key := s.tk.durable(d.id)
	for attempt := 0; ; attempt++ {
		prev := d.written
		d.written = val
		v, err := c.eng.store.CompareAndPut(ctx, key, d.ver, val)
		if err == nil {
			d.ver = v
			return nil
		}
		if retryable(err) {
			if err := sleepJitter(ctx, attempt+4); err != nil {
				return err
			}
			continue
		}
		if !errors.Is(err, backend.ErrConflict) {
			return fmt.Errorf("core: write durable subscription %q on %q: %w", d.name, s.tk.name, err)
		}
		cur, ok := backend.CurrentEntry(err)
		if !ok {
			if cur, err = c.eng.store.Get(ctx, key); err != nil {
				return fmt.Errorf("core: re-read durable subscription %q on %q: %w", d.name, s.tk.name, err)
			}
		}
		switch {
		case bytes.Equal(cur.Value, val):
			d.ver = cur.Version
			return nil
		case prev != nil && bytes.Equal(cur.Value, prev):
			d.ver = cur.Version // our earlier ambiguous write landed
		default:
			return fmt.Errorf("%w: %q on %q (version %d)", ErrDurableInUse, d.name, s.tk.name, cur.Version)
		}
	}
}

// setExpiry renews (or, with 0, deletes) the durable record.
func (d *durable) setExpiry(ctx context.Context, exp int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.expires
	d.expires = exp
	if err := d.write(ctx); err != nil {
		d.expires = old
		return err
	}
	return nil
}

// The delivered mark moves ahead of delivery by at most this much: one
// mark write covers that many announcements (topic order) or seqs of one
// publisher (publisher order), and after a crash at most that many
// messages are flagged Redelivered without having been delivered.
const (
	markAheadAnns = 64
	markAheadSeqs = 256
)

// beforeDeliver is called (under the poll lock) before message seq of p is
// delivered while the subscription stands at its cursor index; to is the
// highest seq of p this delivery may reach. It reports whether an earlier
// incarnation may have delivered the message, and first moves the mark past
// it if needed (so that a crash after the delivery flags it on restart).
func (d *durable) beforeDeliver(ctx context.Context, p PublisherID, seq, to uint64) (bool, error) {
	s := d.s
	i := s.cursor
	redelivered := d.prevMark.covers(i, p, seq)
	if d.mark.covers(i, p, seq) {
		return redelivered, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.mark
	nm := Cursor{topic: s.tk.id, ordered: s.c.eng.ordered, index: old.index, full: old.nexts()}
	if s.c.eng.ordered {
		// Ahead to what this poll will deliver, but at most markAheadAnns
		// announcements: what a crash then flags as redelivered without
		// having been delivered stays bounded during a long catch-up.
		nm.index = max(old.index, min(s.target, i+markAheadAnns), i+1)
	}
	if !nm.covers(i, p, seq) {
		nm.full[p] = max(nm.full[p], min(to, seq+markAheadSeqs-1)+1, seq+1)
	}
	d.mark = nm
	if err := d.write(ctx); err != nil {
		d.mark = old
		return false, err
	}
	return redelivered, nil
}

// Ack acknowledges m and every message this subscription delivered before
// it: after a restart, a durable subscription resumes after the newest
// acknowledged message. Acks are coalesced and written in the background
// within about 50ms; AckSync waits for the write. Acking an older message
// than one already acknowledged changes nothing.
func (s *Subscription) Ack(m *Message) error {
	d := s.dur
	if d == nil {
		return fmt.Errorf("%w: %q", ErrNotDurable, s.tk.name)
	}
	if m == nil || m.sub != s {
		return fmt.Errorf("core: Ack: the message was not delivered by this subscription of %q", s.tk.name)
	}
	d.pendMu.Lock()
	if m.serial > d.pendSer {
		d.pending, d.pendSer = m.Cursor, m.serial
	}
	d.pendMu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return nil
}

// AckSync acknowledges m (see Ack) and returns once the position is stored.
func (s *Subscription) AckSync(ctx context.Context, m *Message) error {
	if err := s.Ack(m); err != nil {
		return err
	}
	return s.dur.flush(ctx)
}

// flush writes the newest pending acknowledgement.
func (d *durable) flush(ctx context.Context) error {
	d.pendMu.Lock()
	cur, ser := d.pending, d.pendSer
	d.pendMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if ser <= d.ackedSer {
		return nil
	}
	old := d.acked
	d.acked = cur
	if err := d.write(ctx); err != nil {
		d.acked = old
		return err
	}
	d.ackedSer = ser
	d.s.c.stats.acked.Add(1)
	return nil
}

// run writes acknowledgements in the background, coalescing them.
func (d *durable) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		}
		t := time.NewTimer(ackDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := d.flush(ctx); err != nil && ctx.Err() == nil {
			s := d.s
			s.c.stats.failures.Add(1)
			s.c.emit(Event{Kind: EventSubscribeError, Topic: s.tk.name, Err: err})
			s.c.opts.logger.Warn("stickypub: storing a durable position failed", "topic", s.tk.name, "name", d.name, "err", err)
			select { // try again later
			case d.wake <- struct{}{}:
			default:
			}
		}
	}
}
