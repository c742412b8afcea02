package core

// Client.Retry: settling a failed publish without duplicating it.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// Retry settles a publish that failed with err (a *PublishError returned by
// Publish or PublishBatch of this client) without ever duplicating it:
//
//   - messages still queued (StillQueued): Retry waits for their outcome;
//   - messages that reached the publisher's log (possible when the outcome
//     was unknown) are not written again: Retry makes sure they are
//     announced and returns their receipts, with their original seqs;
//   - messages that are not in the log are published again, with the same
//     seqs when no later publish took them, else with the next ones.
//
// If the log holds other messages at those seqs (another process publishes
// with this identity), Retry fails with ErrConcurrentPublisher.
func (c *Client) Retry(ctx context.Context, err error) ([]Receipt, error) {
	var pe *PublishError
	if !errors.As(err, &pe) || len(pe.msgs) == 0 || pe.c != c {
		return nil, fmt.Errorf("core: Retry needs a *PublishError from this client's Publish or PublishBatch, got: %w", err)
	}
	p, err := c.publisher(pe.Topic)
	if err != nil {
		return nil, err
	}
	if pe.StillQueued && pe.req != nil {
		return p.wait(ctx, pe.req)
	}
	if err := p.load(ctx); err != nil {
		return nil, err
	}
	e, err := p.readOwnHead(ctx)
	var h *headRecord
	switch {
	case errors.Is(err, backend.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("core: retry on %q: read own head: %w", pe.Topic, err)
	default:
		if h, err = decodeHead(pe.Topic, e.Value); err != nil {
			return nil, fmt.Errorf("core: retry on %q: own head record: %w", pe.Topic, err)
		}
	}
	var inLog, rest []*pendingMsg
	for _, m := range pe.msgs {
		if h != nil && m.seq <= h.Last {
			inLog = append(inLog, m)
		} else {
			rest = append(rest, m)
		}
	}
	var rs []Receipt
	if len(inLog) > 0 {
		last, err := p.logHolds(ctx, h, inLog)
		if err != nil {
			return nil, err
		}
		if err := p.ensureAnnounced(ctx, announcement{Pub: c.pid, Seg: h.Seg, To: h.Last, Time: last}); err != nil {
			return nil, err
		}
		for _, m := range inLog {
			rs = append(rs, Receipt{Topic: pe.Topic, Seq: m.seq, Time: time.Unix(0, m.time)})
		}
		c.stats.published.Add(uint64(len(inLog)))
		p.mu.Lock()
		p.ackedMax = max(p.ackedMax, inLog[len(inLog)-1].seq)
		p.mu.Unlock()
	}
	if len(rest) == 0 {
		return rs, nil
	}
	again := make([]*pendingMsg, len(rest))
	for i, m := range rest {
		again[i] = &pendingMsg{time: m.time, ttl: m.ttl, payload: m.payload}
	}
	more, err := p.submit(ctx, again)
	if err != nil {
		return rs, err
	}
	return append(rs, more...), nil
}

// logHolds checks that the publisher's log (head h) holds exactly msgs at
// their seqs, and returns the time of h's newest message.
func (p *topicPublisher) logHolds(ctx context.Context, h *headRecord, msgs []*pendingMsg) (int64, error) {
	c := p.c
	p.hashLeaves(msgs)
	want := map[uint64][32]byte{}
	low := msgs[0].seq
	for _, m := range msgs {
		want[m.seq] = *m.leaf.Load()
		low = min(low, m.seq)
	}
	var newest int64
	for ref, first := h.Seg, true; ; first = false {
		data, err := c.eng.segmentData(ctx, h, ref)
		if err != nil {
			return 0, fmt.Errorf("core: retry on %q: read own segment %s: %w", p.tk.name, ref, err)
		}
		sg, err := decodeSegment(data)
		if err != nil {
			return 0, fmt.Errorf("core: retry on %q: own segment %s: %w", p.tk.name, ref, err)
		}
		if first {
			if err := h.bindRead(p.tk.name, sg); err != nil {
				return 0, fmt.Errorf("core: retry on %q: %w", p.tk.name, err)
			}
			newest = sg.Msgs[len(sg.Msgs)-1].Time
		}
		for i, m := range sg.Msgs {
			seq := sg.First + uint64(i)
			if leaf, ok := want[seq]; ok && leaf != msgLeaf(p.tk.name, seq, m.Time, m.TTL, m.Payload) {
				return 0, fmt.Errorf("%w: %q seq %d holds another message than the one being retried",
					ErrConcurrentPublisher, p.tk.name, seq)
			}
		}
		if sg.First <= low || sg.Prev.IsZero() {
			return newest, nil
		}
		ref = sg.Prev
	}
}

// ensureAnnounced announces a unless the coordinator already covers it
// (registration only, in unordered mode, where it also makes sure an
// activity lease is live so that subscribers read the head record soon).
func (p *topicPublisher) ensureAnnounced(ctx context.Context, a announcement) error {
	c := p.c
	st, _, err := c.eng.readCoord(ctx, p.tk)
	if err != nil {
		return err
	}
	h, err := c.eng.headOf(ctx, p.tk, st, a.Pub)
	if err != nil {
		return err
	}
	var op coordOp
	if (c.eng.ordered && h < a.To) || (!c.eng.ordered && h == 0) {
		op.anns = []announcement{a}
	}
	if now := c.eng.now().UnixNano(); !c.eng.ordered && st.Active[a.Pub]-now < int64(activeLease/2) {
		op.active = map[PublisherID]int64{a.Pub: now + int64(activeLease)}
	}
	if len(op.anns) == 0 && op.active == nil {
		return nil
	}
	_, err = c.eng.announce(ctx, p.tk, op)
	return err
}
