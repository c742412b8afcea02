package bittorrent

import (
	"net"
	"sync"
	"time"
)

// deadNodes remembers addresses that did not answer a query, so that
// traversals and direct rounds skip them for a while instead of waiting out
// a query timeout each time (the library keeps unresponsive nodes in its
// routing table). An address that answers again is forgotten at once.
type deadNodes struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// deadFor is how long an unresponsive address is skipped.
const deadFor = 30 * time.Second

// mark records that addr did not answer.
func (d *deadNodes) mark(addr net.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.until == nil || len(d.until) > 4096 {
		d.until = make(map[string]time.Time)
	}
	d.until[unmapped(addr)] = time.Now().Add(deadFor)
}

// alive records that addr answered.
func (d *deadNodes) alive(addr net.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.until, unmapped(addr))
}

// isDead reports whether addr is being skipped.
func (d *deadNodes) isDead(addr net.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.until[unmapped(addr)]
	if !ok {
		return false
	}
	if time.Now().After(t) {
		delete(d.until, unmapped(addr))
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
