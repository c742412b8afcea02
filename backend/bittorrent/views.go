package bittorrent

import (
	"net"
	"sync"
	"time"
)

// viewCache remembers, per target, the closest nodes the last traversal
// found, so that the next operation on the target can ask them directly.
type viewCache struct {
	mu sync.Mutex
	m  map[Target]cachedView
}

// cachedView is one remembered closest set.
type cachedView struct {
	addrs []*net.UDPAddr
	at    time.Time
}

func newViewCache() *viewCache { return &viewCache{m: make(map[Target]cachedView)} }

// get returns the closest set of t if it was found within ttl.
func (c *viewCache) get(t Target, ttl time.Duration) []*net.UDPAddr {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[t]
	if !ok {
		return nil
	}
	if time.Since(v.at) > ttl {
		delete(c.m, t)
		return nil
	}
	return v.addrs
}

// put remembers the closest set of t, dropping expired entries now and
// then so the map stays small.
func (c *viewCache) put(t Target, addrs []*net.UDPAddr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= 4096 {
		clear(c.m)
	}
	c.m[t] = cachedView{addrs: addrs, at: time.Now()}
}

// drop forgets the closest set of t.
func (c *viewCache) drop(t Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, t)
}
