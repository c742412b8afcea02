package core

// Binding a format-2 head record to its segment: the head's segment
// reference is not signed, so whoever follows it from the head checks that
// the segment it names is the one whose header and signature the head
// carries.

import (
	"context"
	"fmt"
)

// headSegment reads, decodes and returns the segment h names, checking
// that it is h's publisher's and, for a format-2 head, the segment h
// carries (see headRecord.bindSegment). Its messages are not verified
// beyond that: a format-2 head's signature (see headRecord.verify) covers
// the root they must hash to. Errors from the store are returned as they
// are (backend.ErrNotFound when the segment is gone); a segment that is
// not h's wraps ErrMalformed.
func (e *engine) headSegment(ctx context.Context, topic string, h *headRecord) (*segment, error) {
	if h.iseg != nil {
		return h.iseg, nil // carried: Seg is the digest of those bytes
	}
	data, err := e.blobs.get(ctx, h.Seg)
	if err != nil {
		return nil, err
	}
	sg, err := decodeSegment(data)
	if err != nil {
		return nil, err
	}
	if PublisherIDOf(sg.Publisher) != PublisherIDOf(h.Publisher) {
		return nil, malformed("segment %s of a head record of %s is by %s", h.Seg, PublisherIDOf(h.Publisher), PublisherIDOf(sg.Publisher))
	}
	if err := h.bindRead(topic, sg); err != nil {
		return nil, fmt.Errorf("core: head record on %q: %w", topic, err)
	}
	return sg, nil
}
