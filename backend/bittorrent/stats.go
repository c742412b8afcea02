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
	// FirstWaveReads counts Gets that the ReadQuorum nearest nodes of a
	// recently found closest set answered alone (a subset of
	// DirectRounds); SecondWaves counts Gets that asked the rest of the
	// set because one of those nodes failed.
	FirstWaveReads, SecondWaves int64
	// Retraversals counts walks done again without skipping nodes marked
	// dead, because the first reached too few nodes.
	Retraversals int64
	// ShortReads counts reads that reached fewer nodes than the operation
	// needs (ReadQuorum, or WriteQuorum before a write) and failed.
	ShortReads int64
	// NoQuorum counts writes that fewer than WriteQuorum nodes accepted
	// (other than by a conflict).
	NoQuorum int64
	// QueryTimeouts counts queries a node did not answer in time.
	QueryTimeouts int64
}

// statCounters are the live counters behind Stats.
type statCounters struct {
	bad          [numBadKinds]atomic.Int64
	conflicts    atomic.Int64
	refusals     atomic.Int64
	repairs      atomic.Int64
	republished  atomic.Int64
	gets         atomic.Int64
	puts         atomic.Int64
	traversals   atomic.Int64
	direct       atomic.Int64
	firstWave    atomic.Int64
	secondWaves  atomic.Int64
	retraversals atomic.Int64
	shortReads   atomic.Int64
	noQuorum     atomic.Int64
	timeouts     atomic.Int64
}

// Stats returns a snapshot of the handle's counters.
func (s *Store) Stats() Stats {
	st := Stats{
		BadItems:       make(map[BadItemKind]int64),
		PutConflicts:   s.stats.conflicts.Load(),
		PutRefusals:    s.stats.refusals.Load(),
		Repairs:        s.stats.repairs.Load(),
		Republished:    s.stats.republished.Load(),
		Gets:           s.stats.gets.Load(),
		Puts:           s.stats.puts.Load(),
		Traversals:     s.stats.traversals.Load(),
		DirectRounds:   s.stats.direct.Load(),
		FirstWaveReads: s.stats.firstWave.Load(),
		SecondWaves:    s.stats.secondWaves.Load(),
		Retraversals:   s.stats.retraversals.Load(),
		ShortReads:     s.stats.shortReads.Load(),
		NoQuorum:       s.stats.noQuorum.Load(),
		QueryTimeouts:  s.stats.timeouts.Load(),
	}
	for k := range s.stats.bad {
		if n := s.stats.bad[k].Load(); n > 0 {
			st.BadItems[BadItemKind(k)] = n
		}
	}
	return st
}
