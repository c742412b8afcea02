package core

// Reclaiming orphaned segments: segments a publisher wrote but no head
// record ever pointed to (it crashed, or lost a race with its own identity
// elsewhere), found by listing the store's blobs (backend.Lister).

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// DefaultOrphanGrace is how old, by its newest message's time, a segment
// that lies beyond its publisher's head must be before SweepOrphans deletes
// it (see WithOrphanGrace).
const DefaultOrphanGrace = time.Hour

// ErrSweepUnsupported: SweepOrphans needs a store that implements both
// backend.Lister and backend.Deleter.
var ErrSweepUnsupported = errors.New("core: the store cannot list or delete keys; orphaned segments cannot be swept")

// WithOrphanGrace sets how old a segment beyond its publisher's head must
// be before SweepOrphans deletes it: longer than any publish may take
// between writing its segment and its head record (retries included), plus
// the worst clock skew between publishers and the sweeping client (the age
// is judged from the publisher's message times by the sweeper's clock).
// Default DefaultOrphanGrace. A publishing client uses its own setting too:
// a retried batch, or one whose messages are older than half of it, writes
// its segment again and reads it back after its head record.
func WithOrphanGrace(d time.Duration) Option {
	return func(o *options) { o.orphanGrace = max(d, 0); o.orphanGraceSet = true }
}

// orphanGrace is the client's grace period for orphaned segments.
func (c *Client) orphanGrace() time.Duration {
	if c.opts.orphanGraceSet {
		return c.opts.orphanGrace
	}
	return DefaultOrphanGrace
}

// SweepReport is what one SweepOrphans call found and did.
type SweepReport struct {
	// Blobs is the number of blob keys listed (segments, snapshots,
	// chunks, of every topic).
	Blobs int
	// Segments is the number of them that are segments of the swept
	// topics (signed for one of them).
	Segments int
	// Reachable is the number of those that a head record's chain reaches.
	Reachable int
	// Deleted is the number of orphaned segments deleted.
	Deleted int
	// Kept is the number of unreachable segments left in place: beyond
	// their publisher's head and younger than the grace period (a publish
	// in flight), below a break in their publisher's chain (a segment
	// missing from the store), or whose publisher's head could not be
	// read or verified.
	Kept int
}

// orphanCand is one segment of a swept topic found by the listing: its
// header only (a sweep must not hold the store's payloads in memory).
type orphanCand struct {
	topic  string
	ref    Ref
	pid    PublisherID
	prev   Ref
	first  uint64
	newest int64 // newest message time (publisher's clock, unix ns)
}

// SweepOrphans deletes the segments of topics that no publisher's head
// record reaches and never will: on stores that implement backend.Lister
// and backend.Deleter (ErrSweepUnsupported otherwise). A segment is
// deleted when it is signed by its publisher for one of the topics, is not
// on the chain of segments that publisher's head record reaches, and
// either
//
//   - its first seq is at or below the head's last one, within the chain
//     still stored (the publisher went on without it: a crash before its
//     head was written, then a restart; or a race lost to the same
//     identity elsewhere), on a linearizable store; or
//   - it lies beyond the head (or the publisher has no head) and its
//     newest message is older than the grace period (WithOrphanGrace): the
//     publisher crashed and never published again. A younger one may be a
//     publish in flight and is kept.
//
// Nothing a head reaches is deleted, so no reader within retention loses
// a record (what retention dropped is reclaimed while folding, not here).
// The sweep lists and reads every blob of the store (O(store) reads): run
// it as maintenance (after crashes, or hourly), not per publish. Concurrent
// sweeps and publishers are safe. See docs/protocol.md, "Orphaned segments".
func (c *Client) SweepOrphans(ctx context.Context, topics ...string) (SweepReport, error) {
	var rep SweepReport
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return rep, ErrClientClosed
	}
	for _, t := range topics {
		if err := checkTopic(t); err != nil {
			return rep, err
		}
	}
	if len(topics) == 0 {
		return rep, nil
	}
	e := c.eng
	l, lok := e.store.(backend.Lister)
	d, dok := e.store.(backend.Deleter)
	if !lok || !dok {
		return rep, ErrSweepUnsupported
	}
	cutoff := e.now().Add(-c.orphanGrace()).UnixNano()
	cands, blobs, err := e.findSegments(ctx, l, topics)
	rep.Blobs = blobs
	if err != nil {
		return rep, err
	}
	type owner struct {
		topic string
		pid   PublisherID
	}
	byOwner := map[owner][]*orphanCand{}
	for _, cd := range cands {
		o := owner{cd.topic, cd.pid}
		byOwner[o] = append(byOwner[o], cd)
	}
	rep.Segments = len(cands)
	strong := e.caps.Consistency >= backend.Linearizable
	for o, segs := range byOwner {
		known := make(map[Ref]*orphanCand, len(segs))
		for _, cd := range segs {
			known[cd.ref] = cd
		}
		ch, err := e.headChain(ctx, newTopicKeys(o.topic), o.pid, known)
		if err != nil {
			if ctx.Err() != nil {
				return rep, err
			}
			c.opts.logger.Warn("stickypub: sweep: head unusable, keeping its segments", "topic", o.topic, "publisher", o.pid, "err", err)
			rep.Kept += len(segs)
			continue
		}
		for _, cd := range segs {
			old := cd.newest < cutoff
			switch {
			case ch.reach[cd.ref]:
				rep.Reachable++
				continue
			case ch.superseded(cd.first) && (strong || old), ch.beyond(cd.first) && old:
			default:
				// Young beyond the head (in flight), or below a break in
				// the chain (a segment lost or reclaimed out of order:
				// announcements may still name the ones below it).
				rep.Kept++
				continue
			}
			if err := e.blobs.delete(ctx, d, cd.ref, 0); err != nil {
				return rep, fmt.Errorf("core: sweep %q: %w", o.topic, err)
			}
			rep.Deleted++
		}
	}
	c.stats.orphans.Add(uint64(rep.Deleted))
	return rep, nil
}

// findSegments lists every blob and returns those that are segments signed
// for one of topics, and the number of blob keys listed.
func (e *engine) findSegments(ctx context.Context, l backend.Lister, topics []string) ([]*orphanCand, int, error) {
	var (
		mu    sync.Mutex
		out   []*orphanCand
		blobs int
	)
	err := l.List(ctx, "x/", func(keys []string) error {
		blobs += len(keys)
		return e.blobs.parallel(ctx, len(keys), func(ctx context.Context, i int) error {
			ref, ok := refOfKey(keys[i])
			if !ok {
				return nil
			}
			cd, err := e.segmentFor(ctx, ref, topics)
			if cd == nil || err != nil {
				return err
			}
			mu.Lock()
			out = append(out, cd)
			mu.Unlock()
			return nil
		})
	})
	if err != nil {
		return nil, blobs, fmt.Errorf("core: sweep: list blobs: %w", err)
	}
	return out, blobs, nil
}

// refOfKey parses a blob key x/<digest>.
func refOfKey(key string) (Ref, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(key, "x/"))
	if err != nil || len(raw) != len(Ref{}) || !strings.HasPrefix(key, "x/") {
		return Ref{}, false
	}
	return Ref(raw), true
}

// segmentFor reads blob ref and returns it as a candidate when it is a
// segment signed for one of topics; nil for anything else (other records,
// chunks, segments of other topics, forgeries, blobs gone meanwhile).
// Chunked blobs are only read whole when their first chunk starts like a
// segment.
func (e *engine) segmentFor(ctx context.Context, ref Ref, topics []string) (*orphanCand, error) {
	ent, err := e.store.Get(ctx, blobKey(ref))
	if errors.Is(err, backend.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("core: sweep: read blob %s: %w", ref, err)
	}
	if len(ent.Value) < 2 {
		return nil, nil
	}
	var data []byte
	switch body := ent.Value[1:]; ent.Value[0] {
	case blobLeaf:
		if !segmentLike(body) || digest(body) != ref {
			return nil, nil
		}
		data = body
	case blobIndex, blobIndirect:
		if ent.Value[0] == blobIndex && len(body) >= 32 {
			first, err := e.store.Get(ctx, blobKey(Ref(body[:32])))
			if err != nil || len(first.Value) < 2 || !segmentLike(first.Value[1:]) {
				return nil, nil // gone, or not a segment
			}
		}
		if data, err = e.blobs.get(ctx, ref); err != nil {
			return nil, nil // gone meanwhile, or damaged: not ours to judge
		}
		if !segmentLike(data) {
			return nil, nil
		}
	default:
		return nil, nil
	}
	sg, err := decodeSegment(data)
	if err != nil {
		return nil, nil
	}
	for _, t := range topics {
		if segSignedFor(t, sg) {
			cd := &orphanCand{topic: t, ref: ref, pid: PublisherIDOf(sg.Publisher), prev: sg.Prev, first: sg.First}
			for _, m := range sg.Msgs {
				cd.newest = max(cd.newest, m.Time)
			}
			return cd, nil
		}
	}
	return nil, nil
}

// segmentLike reports whether data starts with a segment tag.
func segmentLike(data []byte) bool {
	return len(data) > 0 && (data[0] == segmentTag || data[0] == segmentTagV2 || data[0] == segmentZTag)
}

// segSignedFor reports whether s carries its publisher's valid signature
// for topic.
func segSignedFor(topic string, s *segment) bool {
	if len(s.Msgs) == 0 || len(s.Publisher) != ed25519.PublicKeySize || len(s.Sig) != ed25519.SignatureSize {
		return false
	}
	return segSigOK(s.Publisher, s.signed(topic, merkleRoot(s.leaves(topic))), s.Sig)
}

// chain is what a publisher's head record reaches on one topic.
type chain struct {
	head  *headRecord  // nil: the publisher has no head record
	reach map[Ref]bool // segments on the chain, from the head down
	low   uint64       // first seq of the oldest chain segment still stored
}

// superseded reports whether a segment from seq first, not on the chain,
// covers seqs the chain holds in other segments: its publisher went on
// without it.
func (c *chain) superseded(first uint64) bool {
	return c.head != nil && c.low > 0 && first >= c.low && first <= c.head.Last
}

// beyond reports whether a segment from seq first lies beyond the head
// (or the publisher has no head): nothing points to it yet.
func (c *chain) beyond(first uint64) bool { return c.head == nil || first > c.head.Last }

// headChain reads pid's head record on tk and walks the chain of segments
// it reaches (Prev links) down to the first seq or the first segment no
// longer stored. known holds segments already read; others are read. A
// head or chain segment that does not verify is an error: nothing of that
// publisher is judged then.
func (e *engine) headChain(ctx context.Context, tk topicKeys, pid PublisherID, known map[Ref]*orphanCand) (*chain, error) {
	ch := &chain{reach: map[Ref]bool{}}
	ent, err := e.store.Get(ctx, tk.head(pid))
	if errors.Is(err, backend.ErrNotFound) {
		return ch, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read head: %w", err)
	}
	h, err := decodeHead(tk.name, ent.Value)
	if err != nil {
		return nil, err
	}
	if PublisherIDOf(h.Publisher) != pid {
		return nil, malformed("head record under %s names publisher %s", pid, PublisherIDOf(h.Publisher))
	}
	if h.V2 {
		// A format-2 head's segment reference is not signed: a head that
		// names another segment than the one it carries must not make the
		// sweep judge the real chain's segments orphaned.
		if _, err := e.headSegment(ctx, tk.name, h); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return nil, err
		}
	}
	ch.head = h
	for ref := h.Seg; !ref.IsZero() && !ch.reach[ref]; {
		first, prev := uint64(0), Ref{}
		if cd, ok := known[ref]; ok {
			first, prev = cd.first, cd.prev
		} else {
			data, err := e.segmentData(ctx, h, ref)
			if errors.Is(err, backend.ErrNotFound) {
				break // reclaimed below retention: the chain ends here
			}
			if err != nil {
				return nil, err
			}
			sg, err := decodeSegment(data)
			if err != nil {
				return nil, err
			}
			if PublisherIDOf(sg.Publisher) != pid || !segSignedFor(tk.name, sg) {
				return nil, fmt.Errorf("%w: chain segment %s", ErrBadSignature, ref)
			}
			first, prev = sg.First, sg.Prev
		}
		ch.reach[ref] = true
		ch.low = first
		if first <= 1 {
			break
		}
		ref = prev
	}
	return ch, nil
}
