package core

// Messages, segments and head records: their types and encodings.

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// Message is one published message as a subscriber receives it. Every
// delivered message was verified: its segment's signature, over a Merkle
// root that the message's own hash is part of.
type Message struct {
	// Topic the message was published to.
	Topic string
	// Publisher is the publisher's public key.
	Publisher ed25519.PublicKey
	// PublisherID is the short form of Publisher, as in keys and Info.
	PublisherID PublisherID
	// Seq is the publisher's sequence number on this topic, from 1.
	Seq uint64
	// Time is the publisher's clock when the message was published.
	Time time.Time
	// TTL is how long the message is retained (0: no limit).
	TTL time.Duration
	// Payload is the application data.
	Payload []byte
	// Signature is the publisher's Ed25519 signature over the segment that
	// holds the message (one per segment, over the root of a Merkle tree
	// of the segment's messages); Proof returns what else a third party
	// needs to check it covers this message.
	Signature []byte
	// Cursor is the subscription's position after this message: give it to
	// FromCursor to resume right after it.
	Cursor Cursor
	// Redelivered is set on a durable subscription's message that an
	// earlier run of the subscription may have delivered already (it was
	// delivered or about to be, but not acknowledged, when that run ended).
	// Every message delivered twice is flagged; a flagged one was not
	// necessarily seen before.
	Redelivered bool

	sub    *Subscription // the subscription that delivered it (for Ack)
	serial uint64        // its place in that subscription's delivery order
	auth   *segAuth      // its verified segment (for Proof)
}

// Expired reports whether the message's TTL has passed at now.
func (m *Message) Expired(now time.Time) bool {
	return m.TTL > 0 && now.After(m.Time.Add(m.TTL))
}

// segment is one immutable batch of consecutive messages of one publisher,
// stored as a blob. Prev links to the publisher's previous segment on the
// same topic, so a subscriber can walk back from any segment it learns of.
// Sig is the publisher's one signature over the whole segment (see
// segSigned): segments are signed, not messages. Base is the publisher's
// retention floor when it wrote the segment (format 3, at least 1), or 0
// for a format-2 segment, which has none.
type segment struct {
	Publisher ed25519.PublicKey
	Prev      Ref
	First     uint64
	Base      uint64
	Msgs      []segMsg
	Sig       []byte
}

type segMsg struct {
	Time    int64 // unix nanoseconds
	TTL     int64 // nanoseconds
	Payload []byte
}

// Segment tags. Format 1 ('S', a signature per message) is no longer read:
// there was no stored data to migrate, and its segments fail with
// ErrMalformed. Format 2 ('M') is read and verified as before; format 3
// ('T') is written.
const (
	segmentTagV1 = 0x53 // 'S', format 1: rejected
	segmentTagV2 = 0x4D // 'M', format 2: one signature over a Merkle root
	segmentTag   = 0x54 // 'T', format 3: format 2 plus the signed Base
)

func (s *segment) last() uint64 { return s.First + uint64(len(s.Msgs)) - 1 }

// encode returns the segment's stored form: compressed when that pays
// (see compressSegment), else its raw encoding.
func (s *segment) encode() []byte { return compressSegment(s.encodeRaw()) }

// encodeRaw returns the segment's uncompressed encoding: 'T' (format 3)
// when it has a Base, else 'M' (format 2).
func (s *segment) encodeRaw() []byte {
	var e encoder
	size := 1 + len(s.Publisher) + len(s.Prev) + 30 + len(s.Sig)
	for _, m := range s.Msgs {
		size += len(m.Payload) + 30
	}
	e.b = make([]byte, 0, size)
	if s.Base == 0 {
		e.byte(segmentTagV2)
	} else {
		e.byte(segmentTag)
	}
	e.raw(s.Publisher)
	e.raw(s.Prev[:])
	e.uvarint(s.First)
	if s.Base != 0 {
		e.uvarint(s.Base)
	}
	e.uvarint(uint64(len(s.Msgs)))
	for _, m := range s.Msgs {
		e.varint(m.Time)
		e.varint(m.TTL)
		e.bytes(m.Payload)
	}
	e.raw(s.Sig)
	return e.b
}

func decodeSegment(b []byte) (*segment, error) {
	if len(b) > 0 && b[0] == segmentZTag {
		raw, err := decompressSegment(b)
		if err != nil {
			return nil, err
		}
		b = raw
	}
	d := decoder{b: b}
	tag := d.byte()
	switch tag {
	case segmentTag, segmentTagV2:
	case segmentTagV1:
		return nil, malformed("segment format 1 (a signature per message) is no longer read")
	default:
		return nil, malformed("segment tag %#x", tag)
	}
	s := &segment{Publisher: ed25519.PublicKey(d.raw(ed25519.PublicKeySize))}
	copy(s.Prev[:], d.raw(32))
	s.First = d.uvarint()
	if tag == segmentTag {
		if s.Base = d.uvarint(); d.err == nil && s.Base == 0 {
			return nil, malformed("format-3 segment with base 0")
		}
	}
	n := d.count(3)
	if d.err == nil && (n == 0 || s.First == 0 || s.First+uint64(n) < s.First) {
		return nil, malformed("segment with %d messages from seq %d", n, s.First)
	}
	if d.err == nil && s.Base > s.First+uint64(n) {
		return nil, malformed("segment base %d beyond its last seq %d", s.Base, s.First+uint64(n)-1)
	}
	s.Msgs = make([]segMsg, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		var m segMsg
		m.Time = d.varint()
		m.TTL = d.varint()
		m.Payload = d.bytes()
		s.Msgs = append(s.Msgs, m)
	}
	s.Sig = d.raw(ed25519.SignatureSize)
	if err := d.done(); err != nil {
		return nil, malformed("segment: %v", err)
	}
	return s, nil
}

// headRecord is a publisher's statement of how far its log on a topic
// reaches: Last, held by segment Seg, retaining seqs from Base. It lives
// under a key only that publisher writes.
//
// Format 1 ('H') has a signature of its own over (Base, Last, Seg).
// Format 2 ('I') has none: it carries the header of the format-3 segment
// holding Last (Prev, First, Count, Base, Root) and that segment's
// signature, which covers all of them, so Base and Last are authenticated
// by the publish's one signature. Seg is not signed in format 2: it is
// bound when the segment is read (see bindSegment), and a head whose Seg
// names another segment is treated like a forged pointer.
type headRecord struct {
	Publisher ed25519.PublicKey
	// Base is the first seq the publisher still retains (1: everything).
	Base uint64
	Last uint64
	Seg  Ref // the segment that holds Last
	Sig  []byte

	// Format 2 only (V2 set): the header of segment Seg; Last is
	// First+Count-1 and Sig is the segment's signature. Root is zero in a
	// decoded format-3 head (it carries the messages: see rootFor).
	V2    bool
	Prev  Ref
	First uint64
	Count uint64
	Root  [32]byte

	// Format 3 ('J'): a format-2 head that carries segment Seg's exact
	// stored bytes (inline) instead of its header, so Seg is their digest
	// and a subscriber needs no second read; iseg is their decoding (set
	// when decoded). Written for a publisher's open segment (openseg.go).
	inline []byte
	iseg   *segment
}

// rootFor returns the Merkle root of the messages of the segment h carries
// for topic: Root, or, for a decoded format-3 head, computed from the
// messages it carries.
func (h *headRecord) rootFor(topic string) [32]byte {
	if h.iseg != nil {
		return merkleRoot(h.iseg.leaves(topic))
	}
	return h.Root
}

const (
	headTagV1     = 0x48 // 'H', format 1: a signature of its own
	headTag       = 0x49 // 'I', format 2: the segment's header and signature
	headTagInline = 0x4A // 'J', format 3: the segment's stored bytes
)

func headSigned(topic string, base, last uint64, seg Ref) []byte {
	var e encoder
	e.raw([]byte("stickypub/head/v1\x00"))
	e.str(topic)
	e.uvarint(base)
	e.uvarint(last)
	e.raw(seg[:])
	return e.b
}

// newHeadRecordV1 returns a format-1 head record signed by id (no longer
// written by publishers: tests and the attack helper use it to check that
// stored format-1 heads still read).
func newHeadRecordV1(id *Identity, topic string, base, last uint64, seg Ref) *headRecord {
	return &headRecord{Publisher: id.PublicKey(), Base: base, Last: last, Seg: seg, Sig: id.sign(headSigned(topic, base, last, seg))}
}

// segmentHead returns the format-2 head record of format-3 segment sg,
// whose messages' tree has root root, stored as seg: no signature is made,
// the segment's own covers it.
func segmentHead(sg *segment, root [32]byte, seg Ref) *headRecord {
	return &headRecord{
		Publisher: sg.Publisher, Base: sg.Base, Last: sg.last(), Seg: seg, Sig: sg.Sig,
		V2: true, Prev: sg.Prev, First: sg.First, Count: uint64(len(sg.Msgs)), Root: root,
	}
}

func (h *headRecord) encode() []byte {
	var e encoder
	if !h.V2 {
		e.byte(headTagV1)
		e.raw(h.Publisher)
		e.uvarint(h.Base)
		e.uvarint(h.Last)
		e.raw(h.Seg[:])
		e.raw(h.Sig)
		return e.b
	}
	if h.inline != nil {
		e.b = make([]byte, 0, 3+len(h.inline))
		e.byte(headTagInline)
		e.bytes(h.inline)
		return e.b
	}
	e.b = make([]byte, 0, 1+len(h.Publisher)+3*32+30+len(h.Seg)+len(h.Sig))
	e.byte(headTag)
	e.raw(h.Publisher)
	e.raw(h.Prev[:])
	e.uvarint(h.First)
	e.uvarint(h.Count)
	e.uvarint(h.Base)
	e.raw(h.Root[:])
	e.raw(h.Seg[:])
	e.raw(h.Sig)
	return e.b
}

// decodeHead decodes a head record of topic and verifies its signature.
func decodeHead(topic string, b []byte) (*headRecord, error) {
	h, err := decodeHeadUnverified(b)
	if err != nil {
		return nil, err
	}
	return h, h.verify(topic)
}

// verify checks the head record's signature for topic: in format 2 the
// signature of the segment whose header it carries. It does not check
// that Seg is that segment (see bindSegment).
func (h *headRecord) verify(topic string) error {
	var ok bool
	if h.V2 {
		// The segment's signature: the segments' rule (segSigOK), so a
		// head verifies exactly when the segment it carries does.
		ok = segSigOK(h.Publisher, segSigned(topic, h.Publisher, h.Prev, h.First, h.Count, h.Base, h.rootFor(topic)), h.Sig)
	} else {
		ok = ed25519.Verify(h.Publisher, headSigned(topic, h.Base, h.Last, h.Seg), h.Sig)
	}
	if !ok {
		return fmt.Errorf("%w: head record of %s", ErrBadSignature, PublisherIDOf(h.Publisher))
	}
	return nil
}

// errHeadSegment: a format-2 head record's segment reference names a
// segment other than the one whose header and signature it carries.
var errHeadSegment = errors.New("head record names a segment other than the one it carries")

// bindSegment checks that sg, read from the head's Seg and whose messages'
// tree has root root, is the segment the head carries the header and
// signature of: equal publisher, header and signature. A format-1 head's
// signature covers Seg itself, so it always binds. The error wraps
// ErrMalformed and errHeadSegment.
func (h *headRecord) bindSegment(sg *segment, root [32]byte) error {
	if !h.V2 {
		return nil
	}
	// A decoded format-3 head's Seg is the digest of the segment it
	// carries, so the segment read from Seg is that one: its root is the
	// one the carried messages make, not held in Root.
	rootOK := root == h.Root || h.iseg != nil
	if !bytes.Equal(sg.Publisher, h.Publisher) || sg.Prev != h.Prev || sg.First != h.First || uint64(len(sg.Msgs)) != h.Count ||
		sg.Base != h.Base || !rootOK || !bytes.Equal(sg.Sig, h.Sig) {
		return fmt.Errorf("%w: %w: %s of %s, seqs %d-%d", ErrMalformed, errHeadSegment, h.Seg, PublisherIDOf(h.Publisher), h.First, h.Last)
	}
	return nil
}

// bindRead is bindSegment for a segment not verified yet: it computes the
// root of sg's messages under topic where it is compared (not for a
// format-3 head, whose Seg is the digest of what it carries).
func (h *headRecord) bindRead(topic string, sg *segment) error {
	if !h.V2 {
		return nil
	}
	var root [32]byte
	if h.iseg == nil {
		root = merkleRoot(sg.leaves(topic))
	}
	return h.bindSegment(sg, root)
}

// decodeHeadUnverified decodes a head record without checking its
// signature (see Subscription.pollHeads for when that is enough).
func decodeHeadUnverified(b []byte) (*headRecord, error) {
	d := decoder{b: b}
	tag := d.byte()
	if tag == headTagInline {
		return decodeHeadInline(&d)
	}
	if tag != headTag && tag != headTagV1 {
		return nil, malformed("head tag %#x", tag)
	}
	h := &headRecord{Publisher: ed25519.PublicKey(d.raw(ed25519.PublicKeySize)), V2: tag == headTag}
	if h.V2 {
		copy(h.Prev[:], d.raw(32))
		h.First = d.uvarint()
		h.Count = d.uvarint()
		h.Base = d.uvarint()
		copy(h.Root[:], d.raw(32))
	} else {
		h.Base = d.uvarint()
		h.Last = d.uvarint()
	}
	copy(h.Seg[:], d.raw(32))
	h.Sig = d.raw(ed25519.SignatureSize)
	if err := d.done(); err != nil {
		return nil, malformed("head: %v", err)
	}
	if h.V2 {
		if h.First == 0 || h.Count == 0 || h.First+h.Count-1 < h.First {
			return nil, malformed("head of a segment of %d messages from seq %d", h.Count, h.First)
		}
		h.Last = h.First + h.Count - 1
	}
	if h.Base == 0 || h.Base > h.Last+1 {
		return nil, malformed("head base %d beyond last %d", h.Base, h.Last)
	}
	return h, nil
}

// decodeHeadInline decodes the rest of a format-3 head record (after its
// tag): the stored bytes of a format-3 segment, which give every field.
func decodeHeadInline(d *decoder) (*headRecord, error) {
	data := d.bytes()
	if err := d.done(); err != nil {
		return nil, malformed("head: %v", err)
	}
	sg, err := decodeSegment(data)
	if err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	if sg.Base == 0 {
		return nil, malformed("head carrying a format-2 segment")
	}
	return &headRecord{
		Publisher: sg.Publisher, Base: sg.Base, Last: sg.last(), Seg: digest(data), Sig: sg.Sig,
		V2: true, Prev: sg.Prev, First: sg.First, Count: uint64(len(sg.Msgs)), inline: data, iseg: sg,
	}, nil
}
