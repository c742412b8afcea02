package core

// Segment signatures: leaf hashes, the Merkle tree, signing and verifying
// a segment with one signature.

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Amortized authentication (segment formats 2 and 3). A publisher signs a segment
// once: each message has a leaf hash (msgLeaf), the leaves form a Merkle
// tree (RFC 6962 shape: leaves and interior nodes hashed with distinct
// prefixes, an odd node promoted), and one Ed25519 signature covers the
// segment header and the tree's root (segSigned). A subscriber verifies
// the signature once and delivers a message only if its recomputed leaf is
// part of the signed tree, so every delivered message is verified while
// the cost is one signature per segment. A single message can be exported
// with its Merkle path and the segment signature (see Proof). Format 3
// also signs the publisher's retention floor (Base) as of the write, so the
// same signature authenticates the publisher's head record (format 2): a
// publish costs one signature.

// leafPrefix and nodePrefix separate leaf hashes from interior node hashes,
// so no interior node can be passed off as a message.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// msgDomain and segDomain separate the hashed and signed byte strings of
// this format from every other signed string of the protocol.
const (
	msgDomain   = "stickypub/msg/v2\x00"
	segDomain   = "stickypub/seg/v2\x00"
	segDomainV3 = "stickypub/seg/v3\x00"
)

// msgLeaf is the leaf hash of one message: SHA-256 over the leaf prefix,
// the domain, the topic and the message's seq, time, TTL and payload, each
// length-prefixed or varint-encoded, so no two distinct messages share a
// leaf encoding.
func msgLeaf(topic string, seq uint64, t, ttl int64, payload []byte) [32]byte {
	h := sha256.New()
	var e encoder
	e.b = make([]byte, 0, 64+len(topic))
	e.byte(leafPrefix)
	e.raw([]byte(msgDomain))
	e.str(topic)
	e.uvarint(seq)
	e.varint(t)
	e.varint(ttl)
	e.uvarint(uint64(len(payload)))
	h.Write(e.b)
	h.Write(payload)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// nodeHash is the hash of an interior node of the tree.
func nodeHash(left, right [32]byte) [32]byte {
	var b [1 + 64]byte
	b[0] = nodePrefix
	copy(b[1:], left[:])
	copy(b[33:], right[:])
	return sha256.Sum256(b[:])
}

// merkleRoot returns the root of the tree over leaves (at least one): at
// each level adjacent nodes are paired and an odd last node is promoted
// unchanged, which is the tree of RFC 6962 (split at the largest power of
// two below the size).
func merkleRoot(leaves [][32]byte) [32]byte {
	level := append([][32]byte(nil), leaves...)
	for len(level) > 1 {
		next := level[:0]
		for i := 0; i < len(level); i += 2 {
			if i+1 < len(level) {
				next = append(next, nodeHash(level[i], level[i+1]))
			} else {
				next = append(next, level[i])
			}
		}
		level = next
	}
	return level[0]
}

// merklePath returns the sibling hashes from leaf i up to the root, the
// path that rootFromPath consumes.
func merklePath(leaves [][32]byte, i int) [][32]byte {
	var path [][32]byte
	level := append([][32]byte(nil), leaves...)
	for len(level) > 1 {
		if sib := i ^ 1; sib < len(level) {
			path = append(path, level[sib])
		}
		next := level[:0]
		for j := 0; j < len(level); j += 2 {
			if j+1 < len(level) {
				next = append(next, nodeHash(level[j], level[j+1]))
			} else {
				next = append(next, level[j])
			}
		}
		level, i = next, i/2
	}
	return path
}

// rootFromPath recomputes the root of a tree of size leaves from leaf i
// and its path. It fails if the path does not have exactly the length the
// tree's shape needs.
func rootFromPath(leaf [32]byte, i, size uint64, path [][32]byte) ([32]byte, error) {
	if size == 0 || i >= size {
		return [32]byte{}, fmt.Errorf("leaf %d outside a tree of %d", i, size)
	}
	r := leaf
	for width := size; width > 1; width = (width + 1) / 2 {
		if sib := i ^ 1; sib < width {
			if len(path) == 0 {
				return [32]byte{}, fmt.Errorf("merkle path too short")
			}
			if i&1 == 1 {
				r = nodeHash(path[0], r)
			} else {
				r = nodeHash(r, path[0])
			}
			path = path[1:]
		}
		i /= 2
	}
	if len(path) != 0 {
		return [32]byte{}, fmt.Errorf("merkle path too long by %d", len(path))
	}
	return r, nil
}

// segSigned is the exact byte string a segment signature covers: the
// topic, the publisher's key, the previous segment, the first seq, the
// message count, in format 3 the publisher's retention floor (base, at
// least 1; 0 selects format 2, which does not sign one) and the root of
// the messages' tree. Every byte of a segment is thereby covered: the
// header directly, the messages through their leaves. In format 3 the one
// signature also authenticates the publisher's head record (see
// headRecord): a head carries the header and signature of the segment
// holding its Last.
func segSigned(topic string, pub ed25519.PublicKey, prev Ref, first, count, base uint64, root [32]byte) []byte {
	var e encoder
	e.b = make([]byte, 0, len(segDomainV3)+len(topic)+len(pub)+len(prev)+len(root)+40)
	if base == 0 {
		e.raw([]byte(segDomain))
	} else {
		e.raw([]byte(segDomainV3))
	}
	e.str(topic)
	e.raw(pub)
	e.raw(prev[:])
	e.uvarint(first)
	e.uvarint(count)
	if base != 0 {
		e.uvarint(base)
	}
	e.raw(root[:])
	return e.b
}

// signed is the byte string s's signature covers for topic, given the root
// of its messages' tree.
func (s *segment) signed(topic string, root [32]byte) []byte {
	return segSigned(topic, s.Publisher, s.Prev, s.First, uint64(len(s.Msgs)), s.Base, root)
}

// parallelHashBytes is the payload volume above which a segment's leaves
// are hashed by several goroutines.
const parallelHashBytes = 1 << 20

// leaves returns the leaf hashes of s's messages under topic.
func (s *segment) leaves(topic string) [][32]byte {
	out := make([][32]byte, len(s.Msgs))
	one := func(i int) {
		m := s.Msgs[i]
		out[i] = msgLeaf(topic, s.First+uint64(i), m.Time, m.TTL, m.Payload)
	}
	size := 0
	for _, m := range s.Msgs {
		size += len(m.Payload)
	}
	workers := runtime.GOMAXPROCS(0)
	if size < parallelHashBytes || len(s.Msgs) < 2 || workers == 1 {
		for i := range s.Msgs {
			one(i)
		}
		return out
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(s.Msgs); i += workers {
				one(i)
			}
		})
	}
	wg.Wait()
	return out
}

// sign sets s.Sig: id's signature over the segment for topic, given its
// messages' leaves (computed here when nil), and returns the root of their
// tree. Ed25519 is deterministic, so a retried batch writes the same bytes.
func (s *segment) sign(id *Identity, topic string, leaves [][32]byte) [32]byte {
	if leaves == nil {
		leaves = s.leaves(topic)
	}
	root := merkleRoot(leaves)
	s.Sig = id.sign(s.signed(topic, root))
	return root
}

// segAuth is what the messages of one verified segment share to build
// their proofs: the segment's header, signature and leaves.
type segAuth struct {
	prev   Ref
	first  uint64
	base   uint64 // 0: a format-2 segment, which signs none
	root   [32]byte
	sig    []byte
	leaves [][32]byte
}

// verifySegment checks s's signature for topic against the tree of its
// messages' leaves: one signature verification for the whole segment. It
// returns the messages in order, or an error wrapping ErrBadSignature and
// no message: a segment that does not verify delivers nothing. Segments
// in hand together are verified in one batch by verifyPrepared.
func verifySegment(topic string, s *segment) ([]*Message, error) {
	p, err := prepareSegment(topic, s)
	if err != nil {
		return nil, err
	}
	if !segSigOK(s.Publisher, p.signed, s.Sig) {
		return nil, p.badSignature()
	}
	return p.messages(), nil
}

// segPrep is a decoded segment whose signature is still to be checked:
// its messages' leaves and the bytes its signature must cover.
type segPrep struct {
	topic  string
	seg    *segment
	leaves [][32]byte
	root   [32]byte
	signed []byte
}

// prepareSegment checks s's shape and computes what its signature must
// cover for topic (the leaves: one SHA-256 per message).
func prepareSegment(topic string, s *segment) (*segPrep, error) {
	if len(s.Msgs) == 0 || len(s.Publisher) != ed25519.PublicKeySize || len(s.Sig) != ed25519.SignatureSize {
		return nil, malformed("segment of %d messages, key of %d bytes, signature of %d bytes", len(s.Msgs), len(s.Publisher), len(s.Sig))
	}
	leaves := s.leaves(topic)
	root := merkleRoot(leaves)
	return &segPrep{topic: topic, seg: s, leaves: leaves, root: root, signed: s.signed(topic, root)}, nil
}

// badSignature is the error of a prepared segment whose signature does
// not verify.
func (p *segPrep) badSignature() error {
	s := p.seg
	return fmt.Errorf("%w: segment of %s, seqs %d-%d on %q", ErrBadSignature, PublisherIDOf(s.Publisher), s.First, s.last(), p.topic)
}

// messages are the messages of a prepared segment whose signature
// verified, in order.
func (p *segPrep) messages() []*Message {
	s, topic := p.seg, p.topic
	pid := PublisherIDOf(s.Publisher)
	auth := &segAuth{prev: s.Prev, first: s.First, base: s.Base, root: p.root, sig: s.Sig, leaves: p.leaves}
	out := make([]*Message, len(s.Msgs))
	for i, m := range s.Msgs {
		out[i] = &Message{
			Topic: topic, Publisher: s.Publisher, PublisherID: pid, Seq: s.First + uint64(i),
			Time: time.Unix(0, m.Time), TTL: time.Duration(m.TTL),
			Payload: m.Payload, Signature: s.Sig, auth: auth,
		}
	}
	return out
}
