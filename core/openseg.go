package core

// Open segments (publisher order): the newest messages ride in the head
// record only, and reach a segment blob of their own a few messages later.

import (
	"context"
)

// In publisher order the head record carries its segment's stored bytes
// (format 3) whenever they fit, so a subscriber that follows the head needs
// no second read. A publisher then need not store that segment as a blob
// at all yet: the head holds it. Its next batch extends the same segment
// (same First and Prev, more messages, signed again) and the head carries
// the larger one; only when the extended segment would no longer fit does
// the publisher store the segment the head carries as a blob (sealing it)
// and start a new one chained to it. The sealed blob is byte for byte the
// carried segment, so its reference is the digest the head already named.
//
// So a publish costs one head compare-and-put, and a blob write only every
// few messages: on a DHT, where each write is a walk and a round of puts,
// that is most of the publish's cost (docs/bittorrent.md). Nothing is
// acknowledged before the head that holds it is written (and, on a store
// that is not linearizable, read back), and the blob holding the messages a
// head drops is written before that head: every acknowledged message is
// always in the current head or in the chain behind it.
//
// Readers need nothing new: a chain walk stops at the first segment that
// reaches back to what it delivered, so an extended segment delivers only
// its new messages. Whoever walks a chain from a head reads the head's own
// segment from the head (engine.segmentData), never as a blob, since it
// may not be stored yet.

// openSegMax bounds the uncompressed encoding of a segment a head carries
// (stored, it is no larger), below the store's value limit (openSegLimit).
const openSegMax = 1024

// openSegLimit is the largest segment (uncompressed) a head record
// carries on this engine's store: openSegMax, or less where the store's values are smaller
// (the head adds a tag and a length); 0 with withoutOpenSegments.
func (e *engine) openSegLimit() int {
	if e.cfg.noOpenSegs {
		return 0
	}
	return min(openSegMax, e.maxValue-4)
}

// withoutOpenSegments makes every batch a segment blob of its own, never
// carried by the head (tests that need a chain of stored segments).
func withoutOpenSegments() Option {
	return func(o *options) { o.noOpenSegs = true; o.engineOpt("withoutOpenSegments") }
}

// openSeg is the segment the publisher's head carries and no blob holds
// yet: the messages of the batches since the last sealed segment.
type openSeg struct {
	first  uint64
	msgs   []segMsg
	leaves [][32]byte
	// data is the segment's stored bytes as the head carries them (and as
	// the blob holds them once sealed); ref is their digest.
	data []byte
	ref  Ref
}

// last is the seq of the open segment's newest message.
func (o *openSeg) last() uint64 { return o.first + uint64(len(o.msgs)) - 1 }

// segPlan is how a batch is written: the segment that holds it (data, its
// digest ref, and its head record), whether the head alone carries it, and
// the open segment to seal (store as a blob) first.
type segPlan struct {
	data []byte
	ref  Ref
	head *headRecord
	// carried: data is in the head only; no blob is written for it now.
	carried bool
	// seal is the open segment to store as a blob before the head moves
	// (nil: none), because data no longer extends it.
	seal *openSeg
	// open is the publisher's open segment once the head is written
	// (nil when data is stored as a blob).
	open *openSeg
}

// blobWrite is one blob a plan stores: its content and their digest.
type blobWrite struct {
	ref  Ref
	data []byte
}

// blobs returns what the plan stores as blobs before the head, in order.
func (pl *segPlan) blobs() []blobWrite {
	var out []blobWrite
	if pl.seal != nil {
		out = append(out, blobWrite{pl.seal.ref, pl.seal.data})
	}
	if !pl.carried {
		out = append(out, blobWrite{pl.ref, pl.data})
	}
	return out
}

// carries reports whether ref is the segment head record h carries
// (format 3), which may be stored nowhere else yet (see above). h may be
// nil.
func (h *headRecord) carries(ref Ref) bool { return h != nil && h.inline != nil && ref == h.Seg }

// segmentData returns the stored bytes of segment ref reached from head
// record h: the bytes h carries when it carries ref, else the blob.
func (e *engine) segmentData(ctx context.Context, h *headRecord, ref Ref) ([]byte, error) {
	if h.carries(ref) {
		return h.inline, nil
	}
	return e.blobs.get(ctx, ref)
}
