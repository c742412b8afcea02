package core

// Reading the segments a delivery needs: the walk back along Prev links
// (bounded: lazy parts), the prefetch of windows of announcements (bounded
// by WithPrefetchBytes), what a missing or damaged segment means, and
// reporting gaps and invalid records.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/stickypub/stickypub/backend"
)

// segPart is a segment to deliver, or a hole [from, to] when seg is nil
// and lazy is not set. A lazy part is a segment collect verified but did
// not keep (the walk went past the prefetch bound): deliver reads it again
// by ref, the same bytes since a blob is checked against its digest.
type segPart struct {
	seg      *segment
	msgs     []*Message // its messages, verified
	from, to uint64
	reason   string
	lazy     bool
	ref      Ref
	size     int // a lazy part: about what its segment holds when read again
}

// collect loads and verifies the segments covering [from, a.To], oldest
// first. A segment that fails verification ends the walk and cancels it:
// nothing of this announcement is delivered now. Past the client's
// prefetch bound of segment bytes (a long chain: a head record far ahead
// of the subscription), the segments walked are kept by reference only
// (lazy parts), so that a catch-up does not hold a publisher's history.
func (s *Subscription) collect(ctx context.Context, a announcement, from uint64) ([]segPart, error) {
	var parts []segPart
	ref, upTo := a.Seg, a.To
	held := 0
	for {
		var (
			sg   *segment
			msgs []*Message
			err  error
		)
		if k, ok := s.skel[ref]; ok && k.pub == a.Pub && ref != a.Seg && (k.first <= from || !k.prev.IsZero()) {
			// Walked past the prefetch bound (prefetchChains): its place
			// in the chain is known; delivery reads it again, a window at
			// a time, and verifies it then.
			if k.last < upTo {
				s.invalidOnce(ref, malformed("announcement of %s to %d names a segment ending at %d", a.Pub, upTo, k.last))
			}
			parts = append(parts, segPart{lazy: true, ref: ref, size: k.size})
			if k.first <= from {
				break
			}
			ref, upTo = k.prev, k.first-1
			continue
		}
		if v, ok := s.pre[ref]; ok && PublisherIDOf(v.seg.Publisher) == a.Pub {
			sg, msgs = v.seg, v.msgs
		} else if a.head.carries(ref) {
			// A format-3 head carries its segment (its publisher's: see
			// readHeadRecords): verified below like one read, and never
			// looked up by the digest of what it carries, so a forged
			// one is invalid rather than a missing segment.
			sg = a.head.iseg
		} else {
			sg, err = s.loadSegment(ctx, ref, a.Pub)
		}
		if errors.Is(err, errRetryLater) {
			return nil, err
		}
		if errors.Is(err, backend.ErrNotFound) {
			if h := a.head; h != nil && ref == a.Seg {
				// Only a head record that verifies can make its missing
				// segment a gap: a forged one (its header altered, or
				// signed by another key) may name a segment its publisher
				// never stored, such as one a head carried.
				if err := h.verify(s.tk.name); err != nil {
					s.invalidOnce(digest(h.encode()), err)
					parts = nil
					break
				}
			}
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
		if a.head != nil && ref == a.Seg {
			if err := a.head.bindSegment(sg, msgs[0].auth.root); err != nil {
				// A head record whose unsigned reference names another
				// segment than the one it carries: a forged pointer.
				s.invalidOnce(digest(a.head.encode()), err)
				parts = nil
				break
			}
		}
		if sg.last() < upTo {
			s.invalidOnce(ref, malformed("announcement of %s to %d names a segment ending at %d", a.Pub, upTo, sg.last()))
		}
		size := segBytes(sg) + segDataBytes(sg)
		// The segment a head carries stays held: it is in the head record,
		// maybe nowhere else yet (see openseg.go), so it cannot be read
		// again later.
		if held += size; held > s.c.opts.prefetchBytes && !a.head.carries(ref) {
			for i := range parts {
				if p := parts[i]; p.seg != nil && !a.head.carries(p.ref) {
					parts[i] = segPart{lazy: true, ref: p.ref, size: segBytes(p.seg) + segDataBytes(p.seg)}
					delete(s.pre, p.ref) // not held for the rest of the poll
				}
			}
			parts = append(parts, segPart{lazy: true, ref: ref, size: size})
			delete(s.pre, ref)
		} else {
			parts = append(parts, segPart{seg: sg, msgs: msgs, ref: ref})
		}
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

// segBytes is about what a decoded and verified segment holds beyond its
// stored bytes: per message, a Message and its bookkeeping (the payload
// is a slice of the stored bytes).
func segBytes(sg *segment) int {
	return 256 + len(sg.Msgs)*(int(unsafe.Sizeof(Message{}))+int(unsafe.Sizeof(segMsg{}))+8)
}

// segDataBytes is about the stored size of a decoded segment.
func segDataBytes(sg *segment) int {
	n := 128
	for _, m := range sg.Msgs {
		n += len(m.Payload) + 16
	}
	return n
}

// errBadReload: a lazy part's segment, read again, does not verify.
// Delivery stops there for this announcement (see deliver).
var errBadReload = errors.New("core: segment does not verify")

// reload reads and verifies again a lazy part's segment. A segment that
// does not verify is counted as invalid and gives errBadReload.
func (s *Subscription) reload(ctx context.Context, p *segPart, pub PublisherID) error {
	sg, err := s.loadSegment(ctx, p.ref, pub)
	if err != nil {
		return fmt.Errorf("%w: %w", errRetryLater, err)
	}
	msgs, err := verifySegment(s.tk.name, sg)
	if err != nil {
		s.invalidOnce(p.ref, err)
		return fmt.Errorf("%w: %s: %w", errBadReload, p.ref, err)
	}
	p.seg, p.msgs, p.lazy = sg, msgs, false
	return nil
}

// reloadWindow reads again, in parallel, the lazy parts at the start of
// parts (up to prefetchWindow of them and the client's prefetch bound of
// bytes, counted from their sizes when first read) and checks their
// signatures as one batch, so that a chain walked past the prefetch bound
// is delivered a window at a time rather than one round trip and one
// verification per segment. What fails here stays lazy: reload reads it
// again and handles the error.
func (s *Subscription) reloadWindow(ctx context.Context, parts []segPart, pub PublisherID) {
	n, held := 0, 0
	for n < len(parts) && n < prefetchWindow && parts[n].lazy && (n == 0 || held+parts[n].size <= s.c.opts.prefetchBytes) {
		held += parts[n].size
		n++
	}
	if n < 2 {
		return
	}
	got := make([]*segPrep, n)
	_ = s.c.eng.blobs.parallelN(ctx, readFanout, n, func(ctx context.Context, i int) error {
		got[i], _ = s.fetchPrepared(ctx, parts[i].ref, pub)
		return nil
	})
	for i := range got {
		if got[i] == nil {
			clear(got[i:]) // delivered after a part that failed: not now
			break
		}
	}
	for i, msgs := range verifyPrepared(got) {
		if msgs != nil {
			parts[i].seg, parts[i].msgs, parts[i].lazy = got[i].seg, msgs, false
		}
	}
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
		sg, err := s.loadSegmentFrom(ctx, h, ref, p)
		if err != nil || sg.First > upTo {
			return 0, false
		}
		if ref == h.Seg && h.bindRead(s.tk.name, sg) != nil {
			return 0, false // the head's reference is not the segment it carries
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

// prefetch reads the segments of anns in parallel and verifies their
// signatures as one batch (verifyPrepared), so that a catch-up over many
// small segments is not one round trip and one single-threaded
// verification at a time, and returns how many of anns it
// covered: the next prefetch starts there. It holds at most about the
// client's prefetch bound (WithPrefetchBytes) of segment bytes: once they
// are read, it starts no more reads (the ones running finish). Whatever
// fails here is simply not prefetched: delivery reads it again and handles
// the error.
func (s *Subscription) prefetch(ctx context.Context, anns []announcement) int {
	type want struct {
		ref Ref
		pub PublisherID
		at  int // its first announcement in anns
	}
	var wants []want
	seen := map[Ref]bool{}
	for i, a := range anns {
		if !seen[a.Seg] && a.To >= s.next(a.Pub) {
			seen[a.Seg] = true
			wants = append(wants, want{a.Seg, a.Pub, i})
		}
	}
	s.pre = nil
	if len(wants) < 2 {
		return len(anns)
	}
	var budget atomic.Int64
	budget.Store(int64(s.c.opts.prefetchBytes))
	got := make([]*segPrep, len(wants))
	skipped := make([]bool, len(wants))
	_ = s.c.eng.blobs.parallel(ctx, len(wants), func(ctx context.Context, i int) error {
		if budget.Load() <= 0 {
			skipped[i] = true
			return nil
		}
		var size int
		got[i], size = s.fetchPrepared(ctx, wants[i].ref, wants[i].pub)
		budget.Add(-int64(size))
		return nil
	})
	covered := len(anns)
	for i := range got {
		if skipped[i] {
			covered = max(wants[i].at, 1)
			clear(got[i:]) // not delivered by this window: not verified now
			break
		}
	}
	msgs := verifyPrepared(got)
	s.pre = make(map[Ref]*prefetched, len(wants))
	for i, p := range got {
		if msgs[i] != nil {
			s.pre[wants[i].ref] = &prefetched{seg: p.seg, msgs: msgs[i]}
		}
	}
	return covered
}

// fetchPrepared reads and decodes segment ref of publisher pub for a
// prefetch and prepares its signature check (verifyPrepared checks the
// signatures of a prefetch together), and returns about the bytes it
// holds (the stored bytes and the decoded messages). Whatever fails gives
// nil: delivery reads it again, and handles and counts the failure there.
func (s *Subscription) fetchPrepared(ctx context.Context, ref Ref, pub PublisherID) (*segPrep, int) {
	sg, n := s.fetchSegment(ctx, ref, pub)
	if sg == nil {
		return nil, n
	}
	p, err := prepareSegment(s.tk.name, sg)
	if err != nil {
		return nil, n
	}
	return p, n + segBytes(sg)
}

// fetchSegment reads and decodes segment ref of publisher pub and returns
// it with the stored bytes read (also when it does not decode); nil if it
// cannot be read or decoded or is another publisher's.
func (s *Subscription) fetchSegment(ctx context.Context, ref Ref, pub PublisherID) (*segment, int) {
	data, err := s.c.eng.blobs.get(ctx, ref)
	if err != nil {
		return nil, 0
	}
	sg, err := decodeSegment(data)
	if err != nil || PublisherIDOf(sg.Publisher) != pub {
		return nil, len(data)
	}
	return sg, len(data)
}

// errRetryLater marks a segment that is missing for now on a backend where
// writes may still be propagating.
var errRetryLater = errors.New("core: segment not visible yet")

func (s *Subscription) loadSegment(ctx context.Context, ref Ref, p PublisherID) (*segment, error) {
	return s.loadSegmentFrom(ctx, nil, ref, p)
}

// loadSegmentFrom is loadSegment on a chain from head record h: h's own
// segment is the one it carries (see engine.segmentData).
func (s *Subscription) loadSegmentFrom(ctx context.Context, h *headRecord, ref Ref, p PublisherID) (*segment, error) {
	c := s.c
	data, err := c.eng.segmentData(ctx, h, ref)
	if errors.Is(err, backend.ErrNotFound) && c.eng.caps.Consistency < backend.Linearizable {
		put(&s.missing, ref, s.missing[ref]+1)
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

func (s *Subscription) gap(p PublisherID, from, to uint64, reason string) {
	if to < s.next(p) {
		return
	}
	from = max(from, s.next(p))
	g := Gap{Topic: s.tk.name, Publisher: p, From: from, To: to, Reason: reason}
	s.setNext(p, to+1)
	s.c.stats.gaps.Add(1)
	s.c.emit(Event{Kind: EventGap, Topic: s.tk.name, Gap: &g})
	select {
	case s.gapsChan() <- g:
	default:
	}
}

// invalidOnce counts a bad record once per subscription, however often it
// is met again.
func (s *Subscription) invalidOnce(ref Ref, err error) {
	if s.seenBad[ref] {
		return
	}
	put(&s.seenBad, ref, true)
	s.invalid(err)
}
