package bittorrent

import (
	"net"
	"sync"
	"time"
)

// deadNodes remembers addresses that did not answer queries, so that
// traversals and direct rounds skip them for a while instead of waiting out
// a query timeout each time (the library keeps unresponsive nodes in its
// routing table). An address is skipped after deadAfter consecutive
// timeouts (one slow answer on a loaded machine is not death), for
// deadFor; one that answers again is forgotten at once.
type deadNodes struct {
	mu    sync.Mutex
	state map[string]*deadState
}

// deadState is one address's record.
type deadState struct {
	misses int
	until  time.Time
}

// Skipping parameters.
const (
	deadAfter = 2
	deadFor   = 10 * time.Second
)

// mark records that addr did not answer.
func (d *deadNodes) mark(addr net.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == nil || len(d.state) > 4096 {
		d.state = make(map[string]*deadState)
	}
	k := unmapped(addr)
	st := d.state[k]
	if st == nil {
		st = &deadState{}
		d.state[k] = st
	}
	st.misses++
	if st.misses >= deadAfter {
		st.until = time.Now().Add(deadFor)
	}
}

// alive records that addr answered.
func (d *deadNodes) alive(addr net.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.state, unmapped(addr))
}

// isDead reports whether addr is being skipped.
func (d *deadNodes) isDead(addr net.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.state[unmapped(addr)]
	if !ok || st.misses < deadAfter {
		return false
	}
	if time.Now().After(st.until) {
		st.misses = deadAfter - 1 // one more timeout skips it again
		return false
	}
	return true
}

// unmapped is addr's string with an IPv4-mapped IPv6 address written as
// IPv4, so both forms of one node share an entry.
func unmapped(addr net.Addr) string {
	if u, ok := addr.(*net.UDPAddr); ok {
		if v4 := u.IP.To4(); v4 != nil {
			return (&net.UDPAddr{IP: v4, Port: u.Port}).String()
		}
	}
	return addr.String()
}
