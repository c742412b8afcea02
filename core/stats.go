package core

// Client statistics.

import "sync/atomic"

// Stats is a snapshot of a client's counters.
type Stats struct {
	Published           uint64 // messages acknowledged to Publish callers
	Received            uint64 // messages delivered to subscriptions
	Failures            uint64 // failed publish, subscribe and poll attempts
	Retries             uint64 // retried writes (coordinator races, transient errors; shared by a Hub's clients)
	Invalid             uint64 // messages or records dropped by verification
	Duplicates          uint64 // messages suppressed as already delivered
	Expired             uint64 // messages skipped because their TTL passed
	Gaps                uint64 // gaps reported
	Redelivered         uint64 // messages delivered flagged Redelivered (durable subscriptions)
	AckWrites           uint64 // durable positions stored by Ack
	ActiveSubscriptions int    // subscriptions open on the client
	Polling             bool   // background polling (StartPolling) runs
	Refreshes           uint64 // refresh rounds of own records on an expiring store
	Reclaimed           uint64 // snapshots whose history was deleted below retention (shared by a Hub's clients)
	ReclaimedSegments   uint64 // own segments deleted below retention (publisher order)
	Denied              uint64 // messages not delivered: their publisher is not allowed by the topic's policy
	OrphansDeleted      uint64 // orphaned segments deleted by SweepOrphans
}

type counters struct {
	published, received, failures, retries atomic.Uint64
	invalid, duplicates, expired, gaps     atomic.Uint64
	redelivered, acked                     atomic.Uint64
	refreshes, reclaimedSegs, denied       atomic.Uint64
	orphans                                atomic.Uint64
}

// Stats returns the client's statistics.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	active, polling := c.subs.len(), c.poller != nil
	c.mu.Unlock()
	s := &c.stats
	return Stats{
		Published: s.published.Load(), Received: s.received.Load(), Failures: s.failures.Load(),
		Retries: s.retries.Load() + c.eng.retries.Load(), Invalid: s.invalid.Load(), Duplicates: s.duplicates.Load(),
		Expired: s.expired.Load(), Gaps: s.gaps.Load(), ActiveSubscriptions: active, Polling: polling,
		Redelivered: s.redelivered.Load(), AckWrites: s.acked.Load(),
		Refreshes: s.refreshes.Load(), Reclaimed: c.eng.reclaimed.Load(), ReclaimedSegments: s.reclaimedSegs.Load(),
		Denied: s.denied.Load(), OrphansDeleted: s.orphans.Load(),
	}
}
