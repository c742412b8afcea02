package core

// Topic write-access policies: the signed record, its encoding and checks.

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Topic write access. A topic may carry a signed policy naming the
// publishers allowed to publish on it, under p/<topic>. Its owner (the key
// that created it) signs every version; versions only grow. Subscribers
// deliver only allowed publishers' messages and count the rest
// (Stats.Denied); a publisher that is not allowed gets ErrNotAllowed
// before it writes anything (a denied publisher's messages are withheld,
// not dropped: listed later, it is delivered then). Anyone with write access to the store can
// write bytes under the key, so a record that does not verify, is signed
// by another key than the owner the client knows (pinned with
// WithTopicOwner, or the first owner it saw), or is older than a version it
// saw, is rejected (ErrForgedPolicy, counted as Invalid) and the last good
// policy stays in force. See docs/protocol.md, "Topic write access".

// Errors of topic policies.
var (
	// ErrNotAllowed: the topic's policy does not allow this publisher.
	ErrNotAllowed = errors.New("core: publisher not allowed on this topic")
	// ErrForgedPolicy: a topic policy record does not verify, is signed by
	// another key than the topic's owner, or went back to an older version.
	ErrForgedPolicy = errors.New("core: forged topic policy")
	// ErrPolicyExists: the topic already has a policy (CreateTopic).
	ErrPolicyExists = errors.New("core: topic already has a policy")
	// ErrNoPolicy: the topic has no policy (Allow, Deny).
	ErrNoPolicy = errors.New("core: topic has no policy")
	// ErrNotOwner: only the topic's owner may change its policy.
	ErrNotOwner = errors.New("core: not the topic's owner")
)

// Policy is a topic's write-access policy.
type Policy struct {
	// Topic is the topic the policy governs.
	Topic string
	// Owner is the key that created the policy and signs every version.
	Owner ed25519.PublicKey
	// Version starts at 1 and grows with every change.
	Version uint64
	// Allowed lists the publishers that may publish, sorted.
	Allowed []PublisherID
}

// Allows reports whether p may publish under the policy (a nil policy
// allows everyone).
func (p *Policy) Allows(id PublisherID) bool {
	if p == nil {
		return true
	}
	_, ok := slices.BinarySearchFunc(p.Allowed, id, comparePID)
	return ok
}

// policyTag is the first byte of a policy record (format 1).
const policyTag = 'P'

// policySigned is what the owner signs.
func policySigned(topic string, version uint64, allowed []PublisherID) []byte {
	var e encoder
	e.raw([]byte("stickypub/policy/v1\x00"))
	e.str(topic)
	e.uvarint(version)
	e.uvarint(uint64(len(allowed)))
	for _, p := range allowed {
		e.raw(p[:])
	}
	return e.b
}

// encodePolicy signs and encodes a policy version with the owner's identity.
func encodePolicy(owner *Identity, topic string, version uint64, allowed []PublisherID) []byte {
	allowed = sortedIDs(allowed)
	return encodeSignedPolicy(owner.PublicKey(), version, allowed, owner.sign(policySigned(topic, version, allowed)))
}

// encodeSignedPolicy encodes a policy record from its parts (allowed
// sorted, without duplicates) and the owner's signature over them.
func encodeSignedPolicy(owner ed25519.PublicKey, version uint64, allowed []PublisherID, sig []byte) []byte {
	var e encoder
	e.byte(policyTag)
	e.raw(owner)
	e.uvarint(version)
	e.uvarint(uint64(len(allowed)))
	for _, p := range allowed {
		e.raw(p[:])
	}
	e.raw(sig)
	return e.b
}

// decodePolicy decodes and verifies a policy record of topic.
func decodePolicy(topic string, b []byte) (*Policy, error) {
	d := decoder{b: b}
	if tag := d.byte(); tag != policyTag {
		return nil, fmt.Errorf("%w: %q: record tag %#x", ErrForgedPolicy, topic, tag)
	}
	p := &Policy{Topic: topic, Owner: ed25519.PublicKey(d.raw(ed25519.PublicKeySize))}
	p.Version = d.uvarint()
	n := d.count(16)
	var id PublisherID
	for i := 0; i < n && d.err == nil; i++ {
		id = d.pid(id, i == 0)
		p.Allowed = append(p.Allowed, id)
	}
	sig := d.raw(ed25519.SignatureSize)
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrForgedPolicy, topic, err)
	}
	if p.Version == 0 {
		return nil, fmt.Errorf("%w: %q: version 0", ErrForgedPolicy, topic)
	}
	if !ed25519.Verify(p.Owner, policySigned(topic, p.Version, p.Allowed), sig) {
		return nil, fmt.Errorf("%w: %q: the signature does not verify", ErrForgedPolicy, topic)
	}
	p.Owner = slices.Clone(p.Owner)
	return p, nil
}

// sortedIDs returns ids sorted and without duplicates.
func sortedIDs(ids []PublisherID) []PublisherID {
	set := make(map[PublisherID]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return slices.SortedFunc(maps.Keys(set), comparePID)
}

// ParsePublisherID parses the printed form of a publisher ID (22
// characters of unpadded URL-safe base64).
func ParsePublisherID(s string) (PublisherID, error) {
	var id PublisherID
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("core: %s is not a publisher ID (22 characters of URL-safe base64)", QuoteInput(s))
	}
	copy(id[:], b)
	return id, nil
}
