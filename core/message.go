package core

// Messages, segments and head records: their types and encodings.

import (
	"crypto/ed25519"
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
// segSigned): format 2 signs segments, not messages.
type segment struct {
	Publisher ed25519.PublicKey
	Prev      Ref
	First     uint64
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
// ErrMalformed.
const (
	segmentTagV1 = 0x53 // 'S', format 1: rejected
	segmentTag   = 0x4D // 'M', format 2: one signature over a Merkle root
)

func (s *segment) last() uint64 { return s.First + uint64(len(s.Msgs)) - 1 }

// encode returns the segment's stored form: compressed when that pays
// (see compressSegment), else its 'M' encoding.
func (s *segment) encode() []byte { return compressSegment(s.encodeRaw()) }

// encodeRaw returns the segment's uncompressed 'M' encoding.
func (s *segment) encodeRaw() []byte {
	var e encoder
	e.byte(segmentTag)
	e.raw(s.Publisher)
	e.raw(s.Prev[:])
	e.uvarint(s.First)
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
	switch tag := d.byte(); tag {
	case segmentTag:
	case segmentTagV1:
		return nil, malformed("segment format 1 (a signature per message) is no longer read")
	default:
		return nil, malformed("segment tag %#x", tag)
	}
	s := &segment{Publisher: ed25519.PublicKey(d.raw(ed25519.PublicKeySize))}
	copy(s.Prev[:], d.raw(32))
	s.First = d.uvarint()
	n := d.count(3)
	if d.err == nil && (n == 0 || s.First == 0 || s.First+uint64(n) < s.First) {
		return nil, malformed("segment with %d messages from seq %d", n, s.First)
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

// headRecord is a publisher's signed statement of how far its log on a
// topic reaches. It lives under a key only that publisher writes.
type headRecord struct {
	Publisher ed25519.PublicKey
	// Base is the first seq the publisher still retains (1: everything).
	Base uint64
	Last uint64
	Seg  Ref // the segment that holds Last
	Sig  []byte
}

const headTag = 0x48 // 'H', format version 1

func headSigned(topic string, base, last uint64, seg Ref) []byte {
	var e encoder
	e.raw([]byte("stickypub/head/v1\x00"))
	e.str(topic)
	e.uvarint(base)
	e.uvarint(last)
	e.raw(seg[:])
	return e.b
}

func newHeadRecord(id *Identity, topic string, base, last uint64, seg Ref) *headRecord {
	return &headRecord{Publisher: id.PublicKey(), Base: base, Last: last, Seg: seg, Sig: id.sign(headSigned(topic, base, last, seg))}
}

func (h *headRecord) encode() []byte {
	var e encoder
	e.byte(headTag)
	e.raw(h.Publisher)
	e.uvarint(h.Base)
	e.uvarint(h.Last)
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

// verify checks the head record's signature for topic.
func (h *headRecord) verify(topic string) error {
	if !ed25519.Verify(h.Publisher, headSigned(topic, h.Base, h.Last, h.Seg), h.Sig) {
		return fmt.Errorf("%w: head record of %s", ErrBadSignature, PublisherIDOf(h.Publisher))
	}
	return nil
}

// decodeHeadUnverified decodes a head record without checking its
// signature (see Subscription.pollHeads for when that is enough).
func decodeHeadUnverified(b []byte) (*headRecord, error) {
	d := decoder{b: b}
	if tag := d.byte(); tag != headTag {
		return nil, malformed("head tag %#x", tag)
	}
	h := &headRecord{Publisher: ed25519.PublicKey(d.raw(ed25519.PublicKeySize))}
	h.Base = d.uvarint()
	h.Last = d.uvarint()
	copy(h.Seg[:], d.raw(32))
	h.Sig = d.raw(ed25519.SignatureSize)
	if err := d.done(); err != nil {
		return nil, malformed("head: %v", err)
	}
	if h.Base == 0 || h.Base > h.Last+1 {
		return nil, malformed("head base %d beyond last %d", h.Base, h.Last)
	}
	return h, nil
}
