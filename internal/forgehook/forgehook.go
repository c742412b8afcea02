// Package forgehook is the one door through which the attack helper
// (internal/forge) writes records the way package core does: core fills
// Core when it is loaded, and nothing else may set it. Core's exported API
// shows none of it, and the package is internal to the module, so only the
// module's own packages (internal/forge, used by the conformance suite)
// reach it.
//
// It names no core type (core imports it): records travel as the plain
// structs below, and identities as Identity, which core asserts to be its
// *core.Identity.
package forgehook

import (
	"context"
	"crypto/ed25519"

	"github.com/stickypub/stickypub/backend"
)

// Identity is a *core.Identity (any other type makes core panic).
type Identity interface {
	PublicKey() ed25519.PublicKey
}

// Msg is one message of a segment: unix nanoseconds, a TTL in
// nanoseconds, and the payload.
type Msg struct {
	Time, TTL int64
	Payload   []byte
}

// Segment holds the fields of one segment (a batch of one publisher's
// consecutive messages), as core stores it. Base is the publisher's
// retention floor it carries (format 3, at least 1; 0 makes a format-2
// segment, which carries none).
type Segment struct {
	Publisher ed25519.PublicKey
	Prev      [32]byte
	First     uint64
	Base      uint64
	Msgs      []Msg
	Sig       []byte
}

// Writer writes to one store as a core client of one identity does.
type Writer interface {
	// Now is the client's clock, in unix nanoseconds.
	Now() int64
	// Store is the store the writer writes to.
	Store() backend.Store
	// PutBlob stores data as a content-addressed blob, riding out
	// transient errors, and returns its reference.
	PutBlob(ctx context.Context, data []byte) ([32]byte, error)
	// Announce merges into topic's coordinator an announcement that
	// publisher pub's log reaches seq to, in segment seg, with the given
	// time (unix nanoseconds). No check is made that it is true.
	Announce(ctx context.Context, topic string, pub [16]byte, seg [32]byte, to uint64, time int64) error
	// GetBlob reads and verifies the content-addressed blob ref.
	GetBlob(ctx context.Context, ref [32]byte) ([]byte, error)
	// Close releases the writer.
	Close(ctx context.Context) error
}

// Hooks is what core lends the forger: a writer, and its record encoders
// and signers.
type Hooks struct {
	// NewWriter returns a writer onto store as id, whose topics have the
	// given ordering (a core.Ordering).
	NewWriter func(store backend.Store, id Identity, ordering uint8) (Writer, error)
	// SignSegment sets s.Sig: signer's signature over s's header for
	// topic and root, or when root is nil over the root of s's messages.
	SignSegment func(signer Identity, topic string, s *Segment, root *[32]byte)
	// Leaves returns the leaf hashes of s's messages under topic.
	Leaves func(topic string, s *Segment) [][32]byte
	// EncodeSegment returns s's stored form.
	EncodeSegment func(s *Segment) []byte
	// HeadRecord returns the stored form of a format-1 head record of
	// topic signed by signer, claiming to be claim's (signer's own key if
	// nil). Publishers no longer write format 1; readers still take it.
	HeadRecord func(signer Identity, topic string, base, last uint64, seg [32]byte, claim ed25519.PublicKey) []byte
	// SegmentHead returns the stored form of the format-2 head record that
	// carries format-3 segment s's header and signature (the root of its
	// messages' tree under topic) and names seg as the segment: what a
	// publisher writes after storing s as seg, or, with another seg, a
	// head that points elsewhere than what it carries.
	SegmentHead func(topic string, s *Segment, seg [32]byte) []byte
	// CarryingHead returns the stored form of the format-3 head record
	// that carries a segment's stored bytes data (whatever they hold): its
	// segment reference is their digest.
	CarryingHead func(data []byte) []byte
	// Policy returns the stored form of a write-access policy of topic,
	// signed by owner.
	Policy func(owner Identity, topic string, version uint64, allowed [][16]byte) []byte
	// HeadKey and PolicyKey are the keys of pub's head record and of the
	// policy on topic.
	HeadKey   func(topic string, pub [16]byte) string
	PolicyKey func(topic string) string
	// DecodeHead reads a head record of topic: its last seq and segment.
	DecodeHead func(topic string, rec []byte) (last uint64, seg [32]byte, err error)
	// CarriedSegment returns the stored bytes of the segment a head record
	// carries (format 3), nil when it carries none.
	CarriedSegment func(rec []byte) []byte
	// DecodeSegment decodes a stored segment (not verifying it).
	DecodeSegment func(data []byte) (*Segment, error)
	// BlobKey is the key of blob ref; RefOfKey reads it back.
	BlobKey  func(ref [32]byte) string
	RefOfKey func(key string) ([32]byte, bool)
}

// Core is filled in by package core's initialization.
var Core Hooks
