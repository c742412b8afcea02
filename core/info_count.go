package core

// Counting the messages a FromStart subscriber would receive now.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// retainedCount is what a FromStart subscriber would receive now, counted
// by reading the retained segments.
type retainedCount struct {
	live, expired, unreadable uint64
}

// countRetained walks every retained segment of the topic (through the
// announcements, then each publisher's head record for what they do not
// cover) and counts the messages that are readable and not expired. A
// segment that is missing, does not match its digest or does not decode
// makes its messages unreadable. Signatures are not verified here.
//
// heads are the publishers' announced heads (registry and window, see
// Client.registered). In ordered mode a publisher's retained range starts
// at the From of its first retained announcement; a publisher with no
// retained announcement retains nothing. In unordered mode base[p] is the
// last seq before what p's head record (recs) says it retains.
func (c *Client) countRetained(ctx context.Context, tk topicKeys, st *coordState, base, heads map[PublisherID]uint64, recs map[PublisherID]*headRecord) (retainedCount, error) {
	var n retainedCount
	done := maps.Clone(base)
	if done == nil {
		done = map[PublisherID]uint64{}
	}
	if c.eng.ordered {
		err := c.eng.eachAnn(ctx, st, st.RetainFrom, func(anns []announcement) error {
			for _, a := range anns {
				if _, seen := done[a.Pub]; !seen && a.From > 0 {
					done[a.Pub] = a.From - 1
				}
				if a.To <= done[a.Pub] {
					continue
				}
				if err := c.countSegments(ctx, &n, nil, a.Pub, a.Seg, done[a.Pub]+1, a.To); err != nil {
					return err
				}
				done[a.Pub] = a.To
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	for p, to := range heads {
		if _, seen := done[p]; c.eng.ordered && !seen {
			continue // every announcement of p lies before retention
		}
		if to <= done[p] {
			continue
		}
		h := recs[p]
		if h == nil {
			e, err := c.eng.store.Get(ctx, tk.head(p))
			if err == nil {
				h, err = decodeHead(tk.name, e.Value)
			}
			if err != nil && !errors.Is(err, backend.ErrNotFound) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
				return n, fmt.Errorf("core: read head of %s on %q: %w", p, tk.name, err)
			}
		}
		if h == nil || PublisherIDOf(h.Publisher) != p {
			n.unreadable += to - done[p]
			continue
		}
		if h.V2 {
			// A format-2 head's reference is not signed: count from it
			// only if it names the segment the head carries.
			if _, err := c.eng.headSegment(ctx, tk.name, h); errors.Is(err, ErrMalformed) {
				n.unreadable += to - done[p]
				continue
			}
		}
		if err := c.countSegments(ctx, &n, h, p, h.Seg, done[p]+1, min(to, h.Last)); err != nil {
			return n, err
		}
	}
	return n, nil
}

// countSegments counts publisher p's messages from seq from to seq to,
// walking back from segment ref (h's own segment read from h, when h is
// the head record it came from).
func (c *Client) countSegments(ctx context.Context, n *retainedCount, h *headRecord, p PublisherID, ref Ref, from, to uint64) error {
	now := c.eng.now()
	for upTo := to; upTo >= from && !ref.IsZero(); {
		data, err := c.eng.segmentData(ctx, h, ref)
		var sg *segment
		if err == nil {
			sg, err = decodeSegment(data)
		}
		if err == nil && (PublisherIDOf(sg.Publisher) != p || sg.First > upTo) {
			err = malformed("segment %s does not continue the log of %s", ref, p)
		}
		switch {
		case errors.Is(err, backend.ErrNotFound), errors.Is(err, ErrMalformed):
			n.unreadable += upTo - from + 1
			return nil
		case err != nil:
			return err
		}
		for i, m := range sg.Msgs {
			seq := sg.First + uint64(i)
			switch {
			case seq < from || seq > upTo:
			case (&Message{Time: time.Unix(0, m.Time), TTL: time.Duration(m.TTL)}).Expired(now):
				n.expired++
			default:
				n.live++
			}
		}
		if sg.First <= from {
			return nil
		}
		ref, upTo = sg.Prev, sg.First-1
	}
	return nil
}
