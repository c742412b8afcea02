package core

// Reclaiming in publisher order: each publisher deletes its own segments
// below its head's Base.

import (
	"context"
	"errors"

	"github.com/stickypub/stickypub/backend"
)

// Reclaiming in publisher order. There is no topic-wide retention there:
// each publisher's head record says from which seq its log is retained
// (Base), and the publisher itself deletes its own segments that lie
// wholly below it, on stores with backend.Deleter (unless WithoutReclaim).
// Nothing below Base is ever delivered: a subscriber behind it, durable or
// not, reports the range up to Base as a retention gap from the head alone,
// so no subscriber position pins segments here (unlike topic order, where
// resuming reads dropped announcements to place publishers). Segments are
// deleted oldest first, so an interrupted reclaim leaves the chain intact
// from the head down to what remains; a reader that still walks to a
// deleted segment (it read an older head) reports a gap with its range.

// reclaimStep is how far Base must move past what was reclaimed before the
// publisher reclaims again (batches the deletes).
const reclaimStep = 64

// ownSeg is one of the publisher's segments that may still be reclaimed.
type ownSeg struct {
	ref         Ref
	first, last uint64
}

// ownReclaim is the reclaim state of a topic publisher (owned by its run
// goroutine).
type ownReclaim struct {
	segs []ownSeg // oldest first
	// below: every segment ending below this seq is deleted (or never
	// existed); 0 until the first reclaim of this process walked the
	// chain it found at load.
	below uint64
	// loaded is the newest segment of the head found at load: the chain
	// from there down predates this process.
	loaded Ref
}

// reclaimEnabled reports whether p reclaims its own segments.
func (p *topicPublisher) reclaimEnabled() bool {
	c := p.c
	_, ok := c.eng.store.(backend.Deleter)
	return ok && !c.eng.ordered && !c.eng.cfg.noReclaim && c.eng.cfg.retention != (Retention{})
}

// noteSegment records a segment written by this publisher.
func (p *topicPublisher) noteSegment(ref Ref, first, last uint64) {
	if p.reclaimEnabled() {
		p.own.segs = append(p.own.segs, ownSeg{ref: ref, first: first, last: last})
	}
}

// maybeReclaimOwn deletes the publisher's segments below its Base once Base
// moved reclaimStep past what was reclaimed. Errors are logged: nothing is
// lost by reclaiming later.
func (p *topicPublisher) maybeReclaimOwn(ctx context.Context) {
	if !p.reclaimEnabled() || p.base < p.own.below+reclaimStep {
		return
	}
	if err := p.reclaimOwn(ctx); err != nil && ctx.Err() == nil {
		p.c.opts.logger.Warn("stickypub: reclaiming own segments failed", "topic", p.tk.name, "err", err)
	}
}

func (p *topicPublisher) reclaimOwn(ctx context.Context) error {
	c := p.c
	d := c.eng.store.(backend.Deleter)
	target := p.base
	if p.own.below == 0 {
		// First reclaim of this process: the segments written before it
		// started are found from the head it loaded.
		older, err := p.walkOwn(ctx, p.own.loaded, target)
		if err != nil {
			return err
		}
		p.own.segs = append(older, p.own.segs...)
		p.own.below = 1
	}
	n := 0
	for n < len(p.own.segs) && p.own.segs[n].last < target {
		if err := c.eng.blobs.delete(ctx, d, p.own.segs[n].ref, 0); err != nil {
			p.own.segs = p.own.segs[n:]
			return err
		}
		p.own.below = p.own.segs[n].last + 1
		n++
	}
	p.own.segs = p.own.segs[n:]
	p.own.below = max(p.own.below, target)
	c.stats.reclaimedSegs.Add(uint64(n))
	return nil
}

// walkOwn returns the segments of the chain from ref down (oldest first)
// that end below target, stopping at a segment already gone.
func (p *topicPublisher) walkOwn(ctx context.Context, ref Ref, target uint64) ([]ownSeg, error) {
	var out []ownSeg
	for !ref.IsZero() {
		data, err := p.c.eng.blobs.get(ctx, ref)
		if errors.Is(err, backend.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		sg, err := decodeSegment(data)
		if err != nil {
			return nil, err
		}
		last := sg.First + uint64(len(sg.Msgs)) - 1
		if last < target {
			out = append(out, ownSeg{ref: ref, first: sg.First, last: last})
		}
		if sg.First <= 1 {
			break
		}
		ref = sg.Prev
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
