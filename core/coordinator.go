package core

import (
	"maps"
	"slices"
)

// announcement says: publisher Pub's log on this topic reaches seq To, and
// Seg is the segment holding To. Earlier unseen messages are found by
// walking back along the segments' Prev links. Announcements form the
// topic's total order.
type announcement struct {
	Pub  PublisherID
	Seg  Ref
	To   uint64
	Time int64 // unix nanoseconds of the newest message in the range
}

// coordState is the topic coordinator: the only multi-writer object of a
// topic. It only announces; message data lives in the publishers' own logs.
// Its merge (apply) is commutative and idempotent: heads only grow (max) and
// an announcement is appended only for a range not yet announced.
type coordState struct {
	// Count is the number of announcements ever made; the window holds
	// indexes [SnapCount, Count).
	Count     uint64
	SnapCount uint64
	// Snap is the newest snapshot: announcements [.., SnapCount), linked
	// to older snapshots.
	Snap Ref
	// RetainFrom is the first announcement index still retained.
	RetainFrom uint64
	Window     []announcement
	// Heads is the highest announced seq of every publisher.
	Heads map[PublisherID]uint64
	// Subs maps a subscriber to the expiry (unix nanoseconds) of its
	// subscription record.
	Subs map[PublisherID]int64
}

func newCoordState() *coordState {
	return &coordState{Heads: map[PublisherID]uint64{}, Subs: map[PublisherID]int64{}}
}

func (s *coordState) clone() *coordState {
	c := *s
	c.Window = slices.Clone(s.Window)
	c.Heads = maps.Clone(s.Heads)
	c.Subs = maps.Clone(s.Subs)
	return &c
}

// coordOp is what one writer wants merged into the coordinator.
type coordOp struct {
	anns []announcement
	// subs sets subscription expiries; 0 removes the subscriber.
	subs map[PublisherID]int64
}

// apply merges op into s and reports whether s changed. now is used to drop
// expired subscriptions, which happens only alongside a real change so that
// readers never write.
func (s *coordState) apply(op coordOp, now int64) bool {
	changed := false
	for _, a := range op.anns {
		if s.Heads[a.Pub] >= a.To {
			continue
		}
		s.Window = append(s.Window, a)
		s.Count++
		s.Heads[a.Pub] = a.To
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
	if changed {
		for p, exp := range s.Subs {
			if exp < now {
				delete(s.Subs, p)
			}
		}
	}
	return changed
}

// covers reports whether s already announces everything in op.
func (s *coordState) covers(op coordOp) bool {
	for _, a := range op.anns {
		if s.Heads[a.Pub] < a.To {
			return false
		}
	}
	for p, exp := range op.subs {
		if cur, ok := s.Subs[p]; (exp == 0 && ok) || (exp != 0 && cur != exp) {
			return false
		}
	}
	return true
}

// Coordinator value encodings: the state inline, or a reference to a blob
// holding the state when it outgrows the backend's value limit.
const (
	coordInline = 'C'
	coordBlob   = 'B'
)

func (s *coordState) encode() []byte {
	var e encoder
	e.byte(coordInline)
	e.uvarint(s.Count)
	e.uvarint(s.SnapCount)
	e.raw(s.Snap[:])
	e.uvarint(s.RetainFrom)
	e.uvarint(uint64(len(s.Window)))
	for _, a := range s.Window {
		encodeAnn(&e, a)
	}
	encodeHeads(&e, s.Heads)
	subs := slices.SortedFunc(maps.Keys(s.Subs), comparePID)
	e.uvarint(uint64(len(subs)))
	for _, p := range subs {
		e.raw(p[:])
		e.varint(s.Subs[p])
	}
	return e.b
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
	s.RetainFrom = d.uvarint()
	n := d.count(50)
	for i := 0; i < n && d.err == nil; i++ {
		s.Window = append(s.Window, decodeAnn(&d))
	}
	s.Heads = decodeHeads(&d)
	n = d.count(17)
	for i := 0; i < n && d.err == nil; i++ {
		var p PublisherID
		copy(p[:], d.raw(16))
		s.Subs[p] = d.varint()
	}
	if err := d.done(); err != nil {
		return nil, malformed("coordinator: %v", err)
	}
	if s.SnapCount+uint64(len(s.Window)) != s.Count || s.RetainFrom > s.SnapCount {
		return nil, malformed("coordinator counts %d+%d != %d (retain %d)", s.SnapCount, len(s.Window), s.Count, s.RetainFrom)
	}
	return s, nil
}

func encodeAnn(e *encoder, a announcement) {
	e.raw(a.Pub[:])
	e.raw(a.Seg[:])
	e.uvarint(a.To)
	e.varint(a.Time)
}

func decodeAnn(d *decoder) announcement {
	var a announcement
	copy(a.Pub[:], d.raw(16))
	copy(a.Seg[:], d.raw(32))
	a.To = d.uvarint()
	a.Time = d.varint()
	return a
}

func encodeHeads(e *encoder, heads map[PublisherID]uint64) {
	keys := slices.SortedFunc(maps.Keys(heads), comparePID)
	e.uvarint(uint64(len(keys)))
	for _, p := range keys {
		e.raw(p[:])
		e.uvarint(heads[p])
	}
}

func decodeHeads(d *decoder) map[PublisherID]uint64 {
	n := d.count(17)
	heads := make(map[PublisherID]uint64, n)
	for i := 0; i < n && d.err == nil; i++ {
		var p PublisherID
		copy(p[:], d.raw(16))
		heads[p] = d.uvarint()
	}
	return heads
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
// From+len(Anns)) folded out of the coordinator, the publishers' heads
// before and after them, and a link to the previous snapshot.
type snapshot struct {
	Prev      Ref
	From      uint64
	Anns      []announcement
	Msgs      uint64 // messages covered by Anns
	MaxTime   int64  // newest announcement time
	BaseHeads map[PublisherID]uint64
	EndHeads  map[PublisherID]uint64
}

const snapshotTag = 'N'

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
	encodeHeads(&e, s.BaseHeads)
	encodeHeads(&e, s.EndHeads)
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
	n := d.count(50)
	for i := 0; i < n && d.err == nil; i++ {
		s.Anns = append(s.Anns, decodeAnn(&d))
	}
	s.Msgs = d.uvarint()
	s.MaxTime = d.varint()
	s.BaseHeads = decodeHeads(&d)
	s.EndHeads = decodeHeads(&d)
	if err := d.done(); err != nil {
		return nil, malformed("snapshot: %v", err)
	}
	return s, nil
}
