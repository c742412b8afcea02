package core

// Detecting a store that went back in time (lost writes), and starting
// over on what it holds.

import (
	"fmt"

	"github.com/stickypub/stickypub/backend"
)

// regressed handles a coordinator older than one this subscription already
// processed, on a linearizable store (where reads are never stale): the
// store lost data. It is reported, and delivery starts over on the history
// the store holds now, from its first announcement, keeping each
// publisher's next expected seq: what a publisher publishes after seqs
// this subscription delivered is delivered; a log that restarted at lower
// seqs (a publisher process that started afresh on the emptied store) is
// suppressed as duplicates up to the seqs already delivered.
func (s *Subscription) regressed(st *coordState, v backend.Version) {
	c := s.c
	err := fmt.Errorf("%w: the coordinator of %q went back (version %d after %d, %d announcements after %d); delivering what the store holds now",
		ErrLogRegressed, s.tk.name, v, s.coordVer, st.Count, s.cursor)
	c.stats.failures.Add(1)
	c.emit(Event{Kind: EventPollError, Topic: s.tk.name, Err: err})
	c.opts.logger.Warn("stickypub: topic history went backwards", "topic", s.tk.name, "err", err)
	s.cursor, s.coordVer, s.target = 0, 0, st.Count
	s.rebase(map[PublisherID]uint64{})
	if d := s.dur; d != nil {
		d.mu.Lock()
		d.mark, d.prevMark = Cursor{}, Cursor{}
		d.mu.Unlock()
	}
}
