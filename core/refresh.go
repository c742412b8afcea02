package core

// Refreshing own records on stores whose entries expire (DHTs).

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Records on stores that expire them (Capabilities.RecordLifetime > 0, the
// DHTs) are refreshed by those who care: a running publisher re-writes what
// it owns on each topic it published to — its head record and every segment
// within its retention (from its head back to the head's Base) — every
// third of the lifetime, by writing the same bytes again. What nobody
// refreshes (the records of a publisher that stopped running, segments
// below retention) expires, and readers then see a gap.

// refreshTicker returns a channel that ticks every third of the store's
// record lifetime (nil when records do not expire) and its stop function.
func (p *topicPublisher) refreshTicker() (<-chan time.Time, func()) {
	lt := p.c.eng.caps.RecordLifetime
	if lt <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(max(lt/6, time.Millisecond))
	return t.C, t.Stop
}

// maybeRefresh refreshes the publisher's records when a third of the
// record lifetime has passed since the last refresh.
func (p *topicPublisher) maybeRefresh(ctx context.Context) {
	c := p.c
	lt := c.eng.caps.RecordLifetime
	if lt <= 0 || p.lastAnn.To == 0 {
		return
	}
	now := time.Now() // the store's clock: real time, not WithClock
	if p.refreshed.IsZero() {
		p.refreshed = now // just written or loaded
		return
	}
	if now.Sub(p.refreshed) < lt/3 {
		return
	}
	if err := p.refresh(ctx); err != nil {
		c.opts.logger.Warn("stickypub: refresh records", "topic", p.tk.name, "err", err)
		return
	}
	p.refreshed = now
}

// refresh re-writes the publisher's head record and its retained segments.
func (p *topicPublisher) refresh(ctx context.Context) error {
	c := p.c
	key := p.tk.head(c.pid)
	e, err := c.eng.store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("core: read own head on %q: %w", p.tk.name, err)
	}
	h, err := decodeHead(p.tk.name, e.Value)
	if err != nil || PublisherIDOf(h.Publisher) != c.pid {
		return fmt.Errorf("core: own head on %q: %w", p.tk.name, errors.Join(err, ErrMalformed))
	}
	if e.Version == p.headVer {
		v, err := c.eng.store.CompareAndPut(ctx, key, e.Version, e.Value)
		if err != nil {
			return fmt.Errorf("core: refresh own head on %q: %w", p.tk.name, err)
		}
		p.headVer = v
	}
	for ref := h.Seg; !ref.IsZero(); {
		data, err := c.eng.segmentData(ctx, h, ref)
		if err != nil {
			return err
		}
		sg, err := decodeSegment(data)
		if err != nil {
			return err
		}
		if ref == h.Seg {
			if err := h.bindRead(p.tk.name, sg); err != nil {
				return fmt.Errorf("core: own head on %q: %w", p.tk.name, err)
			}
		}
		// The segment the head carries lives in the head (refreshed
		// above); it may be stored nowhere else yet (see openseg.go).
		if !h.carries(ref) {
			if err := c.eng.blobs.refresh(ctx, ref); err != nil {
				return err
			}
		}
		if sg.First <= h.Base {
			break
		}
		ref = sg.Prev
	}
	c.stats.refreshes.Add(1)
	return nil
}
