package core

// Reading the segments a delivery needs: the walk back along Prev links,
// the prefetch of whole windows of announcements, and what a missing or
// damaged segment means.

import (
	"context"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
)

// segPart is a segment to deliver, or a hole [from, to] when seg is nil.
type segPart struct {
	seg      *segment
	msgs     []*Message // its messages, verified
	from, to uint64
	reason   string
}

// collect loads and verifies the segments covering [from, a.To], oldest
// first. A segment that fails verification ends the walk and cancels it:
// nothing of this announcement is delivered now.
func (s *Subscription) collect(ctx context.Context, a announcement, from uint64) ([]segPart, error) {
	var parts []segPart
	ref, upTo := a.Seg, a.To
	for {
		var (
			sg   *segment
			msgs []*Message
			err  error
		)
		if v, ok := s.pre[ref]; ok && PublisherIDOf(v.seg.Publisher) == a.Pub {
			sg, msgs = v.seg, v.msgs
		} else {
			sg, err = s.loadSegment(ctx, ref, a.Pub)
		}
		if errors.Is(err, errRetryLater) {
			return nil, err
		}
		if errors.Is(err, backend.ErrNotFound) {
			parts = append(parts, segPart{from: from, to: upTo, reason: "segment missing from the store"})
			break
		}
		if err != nil {
			s.invalidOnce(ref, err)
			if to, ok := s.vouched(ctx, a.Pub, ref, from); ok {
				// The publisher's own signed log leads to this segment: it
				// is damaged in the store, not forged, and its messages are
				// lost. Report them; later segments still arrive.
				parts = append(parts, segPart{from: from, to: to, reason: "segment damaged in the store"})
			} else {
				parts = nil // nothing older can be delivered without this one
			}
			break
		}
		if msgs == nil {
			if msgs, err = verifySegment(s.tk.name, sg); err != nil {
				// Not signed by its publisher as it stands (altered,
				// truncated, spliced, reordered, signed by another key):
				// nothing of it or behind it is delivered, and the expected
				// seq does not move, so the real messages still arrive.
				// Its First and Prev are not trusted either: a forged
				// segment cannot make a "log starts later" gap.
				s.invalidOnce(ref, err)
				parts = nil
				break
			}
		}
		if sg.last() < upTo {
			s.invalidOnce(ref, malformed("announcement of %s to %d names a segment ending at %d", a.Pub, upTo, sg.last()))
		}
		parts = append(parts, segPart{seg: sg, msgs: msgs})
		if sg.First <= from {
			break
		}
		if sg.Prev.IsZero() {
			parts = append(parts, segPart{from: from, to: sg.First - 1, reason: "log starts later"})
			break
		}
		ref, upTo = sg.Prev, sg.First-1
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return parts, nil
}

// vouched reports whether publisher p's signed head record leads, along
// Prev links, to segment bad before going below seq from, and if so the
// last seq bad holds. Only then is a segment that fails verification
// damage rather than a forgery: an unsigned announcement naming garbage
// must not make a subscriber skip real messages.
func (s *Subscription) vouched(ctx context.Context, p PublisherID, bad Ref, from uint64) (uint64, bool) {
	e, err := s.c.eng.store.Get(ctx, s.tk.head(p))
	if err != nil {
		return 0, false
	}
	h, err := decodeHead(s.tk.name, e.Value)
	if err != nil || PublisherIDOf(h.Publisher) != p {
		return 0, false
	}
	ref, upTo := h.Seg, h.Last
	for upTo >= from && !ref.IsZero() {
		if ref == bad {
			return upTo, true
		}
		sg, err := s.loadSegment(ctx, ref, p)
		if err != nil || sg.First > upTo {
			return 0, false
		}
		ref, upTo = sg.Prev, sg.First-1
	}
	return 0, false
}

// prefetchWindow is how many announcements a poll prefetches at a time.
const prefetchWindow = 256

// prefetched is a segment read and verified ahead of delivery.
type prefetched struct {
	seg  *segment
	msgs []*Message
}

// prefetch reads and verifies the segments of anns in parallel, so that a
// catch-up over many small segments is not one round trip and one
// single-threaded verification at a time. Whatever fails here is simply
// not prefetched: delivery reads it again and handles the error.
func (s *Subscription) prefetch(ctx context.Context, anns []announcement) {
	type want struct {
		ref Ref
		pub PublisherID
	}
	var wants []want
	seen := map[Ref]bool{}
	for _, a := range anns {
		if !seen[a.Seg] && a.To >= s.next(a.Pub) {
			seen[a.Seg] = true
			wants = append(wants, want{a.Seg, a.Pub})
		}
	}
	if len(wants) < 2 {
		return
	}
	got := make([]*prefetched, len(wants))
	_ = s.c.eng.blobs.parallel(ctx, len(wants), func(ctx context.Context, i int) error {
		got[i], _ = s.fetchVerified(ctx, wants[i].ref, wants[i].pub)
		return nil
	})
	s.pre = make(map[Ref]*prefetched, len(wants))
	for i, p := range got {
		if p != nil {
			s.pre[wants[i].ref] = p
		}
	}
}

// fetchVerified reads, decodes and verifies segment ref of publisher pub
// for a prefetch, and returns its size in bytes. Whatever fails gives nil:
// delivery reads it again, and handles and counts the failure there.
func (s *Subscription) fetchVerified(ctx context.Context, ref Ref, pub PublisherID) (*prefetched, int) {
	data, err := s.c.eng.blobs.get(ctx, ref)
	if err != nil {
		return nil, 0
	}
	sg, err := decodeSegment(data)
	if err != nil || PublisherIDOf(sg.Publisher) != pub {
		return nil, len(data)
	}
	msgs, err := verifySegment(s.tk.name, sg)
	if err != nil {
		return nil, len(data)
	}
	return &prefetched{seg: sg, msgs: msgs}, len(data)
}

// errRetryLater marks a segment that is missing for now on a backend where
// writes may still be propagating.
var errRetryLater = errors.New("core: segment not visible yet")

func (s *Subscription) loadSegment(ctx context.Context, ref Ref, p PublisherID) (*segment, error) {
	c := s.c
	data, err := c.eng.blobs.get(ctx, ref)
	if errors.Is(err, backend.ErrNotFound) && c.eng.caps.Consistency < backend.Linearizable {
		s.missing[ref]++
		if s.missing[ref] < missingLimitWeak {
			return nil, fmt.Errorf("%w: %s: %w", errRetryLater, ref, err)
		}
	}
	if err != nil {
		if !errors.Is(err, backend.ErrNotFound) && !errors.Is(err, ErrMalformed) {
			return nil, fmt.Errorf("%w: %w", errRetryLater, err) // transient engine error
		}
		return nil, err
	}
	delete(s.missing, ref)
	sg, err := decodeSegment(data)
	if err != nil {
		return nil, err
	}
	if PublisherIDOf(sg.Publisher) != p {
		return nil, malformed("segment %s is not by publisher %s", ref, p)
	}
	return sg, nil
}
