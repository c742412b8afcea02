package bittorrent

import "sync/atomic"

// Stats counts what a handle saw from the network.
type Stats struct {
	// BadItems counts items dropped by kind (never delivered).
	BadItems map[BadItemKind]int64
	// PutConflicts counts puts a node refused with 301 or 302.
	PutConflicts int64
	// PutRefusals counts puts a node refused with any other error.
	PutRefusals int64
	// Repairs counts items re-put to nodes that lacked them or held an
	// older one.
	Repairs int64
	// Republished counts items re-put by the republisher.
	Republished int64
	// Gets and Puts count calls of Get and CompareAndPut.
	Gets, Puts int64
	// Traversals counts DHT walks; DirectRounds counts reads answered by a
	// recently found closest set without a walk.
	Traversals, DirectRounds int64
}

// statCounters are the live counters behind Stats.
type statCounters struct {
	bad         [numBadKinds]atomic.Int64
	conflicts   atomic.Int64
	refusals    atomic.Int64
	repairs     atomic.Int64
	republished atomic.Int64
	gets        atomic.Int64
	puts        atomic.Int64
	traversals  atomic.Int64
	direct      atomic.Int64
}

// Stats returns a snapshot of the handle's counters.
func (s *Store) Stats() Stats {
	st := Stats{
		BadItems:     make(map[BadItemKind]int64),
		PutConflicts: s.stats.conflicts.Load(),
		PutRefusals:  s.stats.refusals.Load(),
		Repairs:      s.stats.repairs.Load(),
		Republished:  s.stats.republished.Load(),
		Gets:         s.stats.gets.Load(),
		Puts:         s.stats.puts.Load(),
		Traversals:   s.stats.traversals.Load(),
		DirectRounds: s.stats.direct.Load(),
	}
	for k := range s.stats.bad {
		if n := s.stats.bad[k].Load(); n > 0 {
			st.BadItems[BadItemKind(k)] = n
		}
	}
	return st
}
