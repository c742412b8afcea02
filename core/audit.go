package core

// The head audit (topic order): announcing what a crashed publisher wrote
// to its head record but never announced.

import (
	"context"
	"slices"
	"time"
)

// defaultHeadAudit is how often an ordered-mode subscription audits the
// head records of recently active publishers.
const defaultHeadAudit = 5 * time.Second

// auditKeepFactor: a publisher stays an audit candidate for this many audit
// intervals after it was last seen in the coordinator window.
const auditKeepFactor = 12

// WithHeadAudit sets how often a subscription (ordered mode) reads the head
// records of the publishers seen recently in the topic's announcements, to
// announce what a publisher wrote to its log but never announced because it
// crashed in between (default 5s; 0 disables the periodic audit, not the
// one at Subscribe).
func WithHeadAudit(d time.Duration) Option { return func(o *options) { o.headAudit = max(d, 0) } }

// auditState is a subscription's memory of recently active publishers.
type auditState struct {
	last   int64       // unix nanoseconds of the last audit (0: none yet)
	recent []auditSeen // sorted by publisher (a slice: few, and small when idle)
}

// auditSeen is when a publisher was last seen (unix nanoseconds).
type auditSeen struct {
	pub PublisherID
	at  int64
}

// seen records that p was seen at unix nanoseconds at.
func (a *auditState) seen(p PublisherID, at int64) {
	i, ok := slices.BinarySearchFunc(a.recent, p, func(e auditSeen, p PublisherID) int { return comparePID(e.pub, p) })
	if ok {
		a.recent[i].at = at
		return
	}
	a.recent = slices.Insert(a.recent, i, auditSeen{pub: p, at: at})
}

// auditDue reports whether the periodic audit should run now.
func (s *Subscription) auditDue() bool {
	d := s.c.opts.headAudit
	now := s.c.eng.now()
	if !s.c.eng.ordered || d <= 0 || (s.audit.last != 0 && now.UnixNano()-s.audit.last < int64(d)) {
		return false
	}
	if tp := s.pushTopic; tp != nil && !tp.claimAudit(now, d) {
		s.audit.last = now.UnixNano() // another subscription of the engine audited the topic
		return false
	}
	return true
}

// auditHeads finds publishers whose signed head record is ahead of what the
// coordinator announces for them (a publisher that stopped between its head
// write and its announcement) and announces it, so that every subscriber
// delivers those messages, in one topic order. Candidates are the
// publishers of the current window, those seen there within the last
// auditKeepFactor intervals, and extra. Errors only postpone the audit.
func (s *Subscription) auditHeads(ctx context.Context, extra ...PublisherID) {
	c := s.c
	now := c.eng.now()
	s.audit.last = now.UnixNano()
	st, _, err := c.eng.readCoordShared(ctx, *s.tk)
	if err != nil {
		return
	}
	stamp := now.UnixNano()
	for _, a := range st.Window {
		s.audit.seen(a.Pub, stamp)
	}
	for _, p := range extra {
		s.audit.seen(p, stamp)
	}
	keep := max(c.opts.headAudit, time.Second) * auditKeepFactor
	s.audit.recent = slices.DeleteFunc(s.audit.recent, func(e auditSeen) bool { return stamp-e.at > int64(keep) })
	pids := make([]PublisherID, len(s.audit.recent))
	for i, e := range s.audit.recent {
		pids[i] = e.pub
	}
	heads, _ := c.eng.readHeads(ctx, *s.tk, pids)
	var anns []announcement
	for i, h := range heads {
		if h == nil {
			continue
		}
		if ann, err := c.eng.headOf(ctx, *s.tk, st, pids[i]); err != nil || h.Last <= ann {
			continue // announced, or the registry unreadable: later
		}
		sg, err := s.loadSegmentFrom(ctx, h, h.Seg, pids[i])
		if err != nil || sg.last() != h.Last || h.bindRead(s.tk.name, sg) != nil {
			continue // nothing trustworthy to announce (yet)
		}
		anns = append(anns, announcement{Pub: pids[i], Seg: h.Seg, To: h.Last, Time: sg.Msgs[len(sg.Msgs)-1].Time})
	}
	if len(anns) == 0 {
		return
	}
	if _, err := c.eng.announce(ctx, *s.tk, coordOp{anns: anns}); err != nil {
		c.opts.logger.Warn("stickypub: announcing an unannounced head failed", "topic", s.tk.name, "err", err)
	}
}
