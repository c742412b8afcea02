package core

// Message proofs: one message exported with what a third party needs to
// verify it alone.

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// ErrNoProof: the message was not delivered by a subscription, so there is
// no verified segment to prove it with.
var ErrNoProof = errors.New("core: message has no proof (not delivered by a subscription)")

// Proof is what a third party needs to verify one message alone, without
// the store or the rest of its segment: the message, the header of the
// segment that holds it, the Merkle path from the message's leaf to the
// segment's root, and the publisher's signature over the segment.
//
// Verify recomputes the message's leaf hash, climbs the path to the root
// and checks the signature over the segment header and that root (see
// docs/protocol.md, "Exporting a message"). MarshalBinary gives a compact
// encoding; VerifyProof decodes and verifies one.
type Proof struct {
	// The message.
	Topic     string
	Publisher ed25519.PublicKey
	Seq       uint64
	Time      time.Time
	TTL       time.Duration
	Payload   []byte
	// The segment that holds it: its previous segment, first seq and
	// message count, the publisher's retention floor it carries (format 3;
	// 0 for a format-2 segment, which signs none), and the publisher's
	// signature over it.
	Prev      Ref
	First     uint64
	Count     uint64
	Base      uint64
	Signature []byte
	// Path holds the sibling hashes from the message's leaf up to the root.
	Path [][32]byte
}

// Proof returns the proof of m, a message delivered by a subscription.
func (m *Message) Proof() (*Proof, error) {
	a := m.auth
	if a == nil || m.Seq < a.first || m.Seq-a.first >= uint64(len(a.leaves)) {
		return nil, ErrNoProof
	}
	return &Proof{
		Topic: m.Topic, Publisher: m.Publisher, Seq: m.Seq, Time: m.Time, TTL: m.TTL, Payload: m.Payload,
		Prev: a.prev, First: a.first, Count: uint64(len(a.leaves)), Base: a.base, Signature: a.sig,
		Path: merklePath(a.leaves, int(m.Seq-a.first)),
	}, nil
}

// Verify checks the proof: nil if the publisher signed a segment holding
// exactly this message at this seq on this topic. It returns an error
// wrapping ErrBadSignature if not, or ErrMalformed for a proof that cannot
// be right whatever the signature.
func (p *Proof) Verify() error {
	if len(p.Publisher) != ed25519.PublicKeySize || len(p.Signature) != ed25519.SignatureSize {
		return malformed("proof with a key of %d bytes and a signature of %d", len(p.Publisher), len(p.Signature))
	}
	if p.First == 0 || p.Seq < p.First || p.Seq-p.First >= p.Count {
		return malformed("proof of seq %d in a segment of %d from %d", p.Seq, p.Count, p.First)
	}
	leaf := msgLeaf(p.Topic, p.Seq, p.Time.UnixNano(), int64(p.TTL), p.Payload)
	root, err := rootFromPath(leaf, p.Seq-p.First, p.Count, p.Path)
	if err != nil {
		return malformed("proof: %v", err)
	}
	if !segSigOK(p.Publisher, segSigned(p.Topic, p.Publisher, p.Prev, p.First, p.Count, p.Base, root), p.Signature) {
		return fmt.Errorf("%w: proof of message %d of %s on %q", ErrBadSignature, p.Seq, PublisherIDOf(p.Publisher), p.Topic)
	}
	return nil
}

// Proof tags: format 1 ('P') proves a message of a format-2 segment,
// format 2 ('Q') one of a format-3 segment (it adds the segment's Base).
const (
	proofTagV1 = 'P'
	proofTag   = 'Q'
)

// MarshalBinary encodes the proof: tag 'Q' ('P' for a message of a
// format-2 segment, Base 0), the topic, key, seq, time, TTL, payload, the
// segment's previous segment, first seq, count, Base (tag 'Q' only) and
// signature, then the path.
func (p *Proof) MarshalBinary() ([]byte, error) {
	var e encoder
	if p.Base == 0 {
		e.byte(proofTagV1)
	} else {
		e.byte(proofTag)
	}
	e.str(p.Topic)
	e.bytes(p.Publisher)
	e.uvarint(p.Seq)
	e.varint(p.Time.UnixNano())
	e.varint(int64(p.TTL))
	e.bytes(p.Payload)
	e.raw(p.Prev[:])
	e.uvarint(p.First)
	e.uvarint(p.Count)
	if p.Base != 0 {
		e.uvarint(p.Base)
	}
	e.bytes(p.Signature)
	e.uvarint(uint64(len(p.Path)))
	for _, h := range p.Path {
		e.raw(h[:])
	}
	return e.b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote. It does not verify the
// proof (see Verify and VerifyProof).
func (p *Proof) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	tag := d.byte()
	if tag != proofTag && tag != proofTagV1 {
		return malformed("proof tag %#x", tag)
	}
	var q Proof
	q.Topic = string(d.bytes())
	q.Publisher = ed25519.PublicKey(d.bytes())
	q.Seq = d.uvarint()
	q.Time = time.Unix(0, d.varint())
	q.TTL = time.Duration(d.varint())
	q.Payload = d.bytes()
	copy(q.Prev[:], d.raw(32))
	q.First = d.uvarint()
	q.Count = d.uvarint()
	if tag == proofTag {
		if q.Base = d.uvarint(); d.err == nil && q.Base == 0 {
			return malformed("format-2 proof with base 0")
		}
	}
	q.Signature = d.bytes()
	n := d.count(32)
	q.Path = make([][32]byte, n)
	for i := range q.Path {
		copy(q.Path[i][:], d.raw(32))
	}
	if err := d.done(); err != nil {
		return malformed("proof: %v", err)
	}
	*p = q
	return nil
}

// VerifyProof decodes a proof encoded by Proof.MarshalBinary and verifies
// it. It returns the proof (whose fields are the message) only if it
// verifies.
func VerifyProof(b []byte) (*Proof, error) {
	var p Proof
	if err := p.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if err := p.Verify(); err != nil {
		return nil, err
	}
	return &p, nil
}
