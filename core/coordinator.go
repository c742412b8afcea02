package core

// The coordinator state (announcements, snapshot link, registry root,
// retention, subscribers, leases, ordering), its merge and its encoding;
// snapshots.

import (
	"fmt"
	"maps"
	"slices"

	"github.com/stickypub/stickypub/backend"
)

// announcement says: publisher Pub's log on this topic reaches seq To, and
// Seg is the segment holding To; the announcement covers seqs [From, To]
// (From is one past the publisher's previous announced head, set by the
// merge). Earlier unseen messages are found by walking back along the
// segments' Prev links. Announcements form the topic's total order.
type announcement struct {
	Pub  PublisherID
	Seg  Ref
	From uint64
	To   uint64
	Time int64 // unix nanoseconds of the newest message in the range

	// known (not stored) is the announcing publisher's own head as it last
	// saw it covered in the coordinator (0: unknown): a lower bound of its
	// head there, never the head itself (a subscriber's head audit may have
	// announced for it since). The merge takes the larger of it and the
	// registry's head.
	known uint64
	// head (not stored) is set when the announcement is a publisher's head
	// record: the segment Seg must be the one a format-2 head carries
	// (see headRecord.bindSegment).
	head *headRecord
}

// coordState is the topic coordinator: the only multi-writer object of a
// topic. It only announces; message data lives in the publishers' own logs.
// Its merge (apply) is commutative and idempotent: heads only grow (max) and
// an announcement is appended only for a range not yet announced.
//
// Its size does not grow with the number of publishers that ever wrote:
// the heads of publishers announced in the window are derived from the
// window, and every other publisher's head lives in the registry (a tree of
// blobs rewritten at fold time, see registry.go).
type coordState struct {
	// Count is the number of announcements ever made; the window holds
	// indexes [SnapCount, Count).
	Count     uint64
	SnapCount uint64
	// Snap is the newest snapshot: announcements [.., SnapCount), linked
	// to older snapshots.
	Snap Ref
	// Registry is the root of the publisher registry as of SnapCount, and
	// OldRegistry the one before the last fold (kept for one more fold, so
	// that readers of the previous coordinator can still use it).
	Registry    Ref
	OldRegistry Ref
	// RetainFrom is the first announcement index still retained.
	RetainFrom uint64
	// ReclaimedTo: the history below this announcement index has been
	// deleted from the store (stores with backend.Deleter).
	ReclaimedTo uint64
	Window      []announcement
	// Subs maps a subscriber to the expiry (unix nanoseconds) of its
	// subscription record.
	Subs map[PublisherID]int64
	// Active maps a publisher to the expiry of its activity lease
	// (unordered mode: subscribers read the head records of active
	// publishers only).
	Active map[PublisherID]int64
	// Order is the topic's ordering, fixed when the coordinator is
	// created (encoded as a trailing 'p' for PublisherOrder).
	Order Ordering

	// Not encoded: derived from Window.
	hot map[PublisherID]uint64
	// Not encoded: the blob that held this state, if any.
	blob Ref
}

func newCoordState() *coordState {
	return &coordState{Subs: map[PublisherID]int64{}, Active: map[PublisherID]int64{}, hot: map[PublisherID]uint64{}, Order: TopicOrder}
}

func (s *coordState) clone() *coordState {
	c := *s
	c.Window = slices.Clone(s.Window)
	c.Subs = maps.Clone(s.Subs)
	c.Active = maps.Clone(s.Active)
	c.hot = maps.Clone(s.hot)
	return &c
}

// rebuildHot derives the window's heads.
func (s *coordState) rebuildHot() {
	s.hot = make(map[PublisherID]uint64, len(s.Window))
	for _, a := range s.Window {
		s.hot[a.Pub] = max(s.hot[a.Pub], a.To)
	}
}

// headLookup returns a publisher's head in the registry.
type headLookup func(PublisherID) (uint64, error)

// head returns p's highest announced seq: from the window, or else from
// the registry through cold.
func (s *coordState) head(p PublisherID, cold headLookup) (uint64, error) {
	if h, ok := s.hot[p]; ok {
		return h, nil
	}
	if s.Registry.IsZero() || cold == nil {
		return 0, nil
	}
	return cold(p)
}

// coordOp is what one writer wants merged into the coordinator.
type coordOp struct {
	anns []announcement
	// subs sets subscription expiries; 0 removes the subscriber.
	subs map[PublisherID]int64
	// active raises activity leases (unordered mode).
	active map[PublisherID]int64
	// batch, when set, holds records to write in the same atomic step as
	// the merge (backend.Batcher): a publisher's segment and head record.
	batch *putBatch
}

// putBatch is what a coordOp writes beside the coordinator, and the
// versions the writes got.
type putBatch struct {
	puts []backend.Put
	vers []backend.Version // set when the merge landed
}

// apply merges op into s and reports whether s changed. now is used to drop
// expired subscriptions and leases, which happens only alongside a real
// change so that readers never write. cold looks up heads of publishers
// that are not in the window; its error aborts the merge.
func (s *coordState) apply(op coordOp, now int64, cold headLookup) (bool, error) {
	changed := false
	for _, a := range op.anns {
		h, hot := s.hot[a.Pub]
		if !hot {
			// Not in the window: the registry has the head. The publisher's
			// own view (known) is only a lower bound: a subscriber's head
			// audit may have announced for it meanwhile, and taking known
			// as the head would announce that range twice.
			var err error
			if h, err = s.head(a.Pub, cold); err != nil {
				return false, err
			}
			h = max(h, a.known)
		}
		if h >= a.To {
			continue
		}
		a.From, a.known = h+1, 0
		s.Window = append(s.Window, a)
		s.Count++
		s.hot[a.Pub] = a.To
		changed = true
	}
	for p, exp := range op.subs {
		cur, ok := s.Subs[p]
		switch {
		case exp == 0 && ok:
			delete(s.Subs, p)
			changed = true
		case exp != 0 && cur != exp:
			s.Subs[p] = exp
			changed = true
		}
	}
	for p, exp := range op.active {
		if exp > s.Active[p] {
			s.Active[p] = exp
			changed = true
		}
	}
	if changed {
		for p, exp := range s.Subs {
			if exp < now {
				delete(s.Subs, p)
			}
		}
		for p, exp := range s.Active {
			if exp < now-int64(activeGrace) {
				delete(s.Active, p)
			}
		}
	}
	return changed, nil
}

// covers reports whether s already announces everything in op.
func (s *coordState) covers(op coordOp, cold headLookup) (bool, error) {
	for _, a := range op.anns {
		h, err := s.head(a.Pub, cold)
		if err != nil || h < a.To {
			return false, err
		}
	}
	for p, exp := range op.subs {
		if cur, ok := s.Subs[p]; (exp == 0 && ok) || (exp != 0 && cur != exp) {
			return false, nil
		}
	}
	for p, exp := range op.active {
		if s.Active[p] < exp {
			return false, nil
		}
	}
	return true, nil
}

// Coordinator value encodings: the state inline, or a reference to a blob
// holding the state when it outgrows the backend's value limit. The tag
// 'C' is format 2 (registry, announcements with From); format 1 is not
// read (there was no stored data to migrate).
const (
	coordInline = 'C'
	coordBlob   = 'B'
	// coordPublisherOrder, after the last field, marks a PublisherOrder
	// topic (its absence: TopicOrder).
	coordPublisherOrder = 'p'
)

func (s *coordState) encode() []byte {
	var e encoder
	e.byte(coordInline)
	e.uvarint(s.Count)
	e.uvarint(s.SnapCount)
	e.raw(s.Snap[:])
	e.raw(s.Registry[:])
	e.raw(s.OldRegistry[:])
	e.uvarint(s.RetainFrom)
	e.uvarint(s.ReclaimedTo)
	e.uvarint(uint64(len(s.Window)))
	for _, a := range s.Window {
		encodeAnn(&e, a)
	}
	encodeExpiries(&e, s.Subs)
	encodeExpiries(&e, s.Active)
	if s.Order == PublisherOrder {
		e.byte(coordPublisherOrder)
	}
	return e.b
}

func encodeExpiries(e *encoder, m map[PublisherID]int64) {
	keys := slices.SortedFunc(maps.Keys(m), comparePID)
	e.uvarint(uint64(len(keys)))
	for _, p := range keys {
		e.raw(p[:])
		e.varint(m[p])
	}
}

func decodeExpiries(d *decoder) map[PublisherID]int64 {
	n := d.count(17)
	m := make(map[PublisherID]int64, n)
	var p PublisherID
	for i := 0; i < n && d.err == nil; i++ {
		p = d.pid(p, i == 0)
		m[p] = d.varint()
	}
	return m
}

func decodeCoordState(b []byte) (*coordState, error) {
	d := decoder{b: b}
	if tag := d.byte(); tag != coordInline {
		return nil, malformed("coordinator tag %#x", tag)
	}
	s := newCoordState()
	s.Count = d.uvarint()
	s.SnapCount = d.uvarint()
	copy(s.Snap[:], d.raw(32))
	copy(s.Registry[:], d.raw(32))
	copy(s.OldRegistry[:], d.raw(32))
	s.RetainFrom = d.uvarint()
	s.ReclaimedTo = d.uvarint()
	n := d.count(51)
	for i := 0; i < n && d.err == nil; i++ {
		s.Window = append(s.Window, decodeAnn(&d))
	}
	s.Subs = decodeExpiries(&d)
	s.Active = decodeExpiries(&d)
	if d.err == nil && len(d.b) > 0 {
		if b := d.byte(); b != coordPublisherOrder {
			d.fail(fmt.Errorf("ordering byte %#x", b))
		}
		s.Order = PublisherOrder
	}
	if err := d.done(); err != nil {
		return nil, malformed("coordinator: %v", err)
	}
	if s.SnapCount+uint64(len(s.Window)) != s.Count || s.RetainFrom > s.SnapCount || s.ReclaimedTo > s.RetainFrom {
		return nil, malformed("coordinator counts %d+%d != %d (retain %d, reclaimed %d)", s.SnapCount, len(s.Window), s.Count, s.RetainFrom, s.ReclaimedTo)
	}
	s.rebuildHot()
	return s, nil
}

func encodeAnn(e *encoder, a announcement) {
	e.raw(a.Pub[:])
	e.raw(a.Seg[:])
	e.uvarint(a.From)
	e.uvarint(a.To)
	e.varint(a.Time)
}

func decodeAnn(d *decoder) announcement {
	var a announcement
	copy(a.Pub[:], d.raw(16))
	copy(a.Seg[:], d.raw(32))
	a.From = d.uvarint()
	a.To = d.uvarint()
	a.Time = d.varint()
	if d.err == nil && (a.From == 0 || a.From > a.To) {
		d.fail(fmt.Errorf("announcement range [%d, %d]", a.From, a.To))
	}
	return a
}

func comparePID(a, b PublisherID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// snapshot is an immutable blob holding announcements [From,
// From+len(Anns)) folded out of the coordinator, their message count and
// newest time, and a link to the previous snapshot. It holds no copy of
// the publishers' heads: each announcement carries its range [From, To].
type snapshot struct {
	Prev    Ref
	From    uint64
	Anns    []announcement
	Msgs    uint64 // messages covered by Anns
	MaxTime int64  // newest announcement time
}

const snapshotTag = 'N' // format 2: announcements with From, no heads

func (s *snapshot) encode() []byte {
	var e encoder
	e.byte(snapshotTag)
	e.raw(s.Prev[:])
	e.uvarint(s.From)
	e.uvarint(uint64(len(s.Anns)))
	for _, a := range s.Anns {
		encodeAnn(&e, a)
	}
	e.uvarint(s.Msgs)
	e.varint(s.MaxTime)
	return e.b
}

func decodeSnapshot(b []byte) (*snapshot, error) {
	d := decoder{b: b}
	if tag := d.byte(); tag != snapshotTag {
		return nil, malformed("snapshot tag %#x", tag)
	}
	s := &snapshot{}
	copy(s.Prev[:], d.raw(32))
	s.From = d.uvarint()
	n := d.count(51)
	for i := 0; i < n && d.err == nil; i++ {
		s.Anns = append(s.Anns, decodeAnn(&d))
	}
	s.Msgs = d.uvarint()
	s.MaxTime = d.varint()
	if err := d.done(); err != nil {
		return nil, malformed("snapshot: %v", err)
	}
	return s, nil
}
