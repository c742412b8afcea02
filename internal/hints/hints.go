// Package hints is a small, bounded, concurrency-safe map from key to the
// backend.Entry a store handle last wrote or read there. Adapters whose
// Batcher runs the caller's update function away from the data (Redis, a
// remote handle of a shared bolt file) use it to skip the read before an
// update: a hint is never trusted, the engine checks it and a stale one
// costs one more round trip, not a wrong write.
package hints

import (
	"bytes"
	"sync"

	"github.com/stickypub/stickypub/backend"
)

// DefaultCap is the number of keys a Cache holds when its Cap is zero.
const DefaultCap = 1024

// Cache remembers one entry per key. Its zero value is ready to use and
// holds at most DefaultCap keys; past that, putting a new key drops an
// arbitrary other one. Values are copied in and out.
type Cache struct {
	// Cap bounds the keys held (0: DefaultCap).
	Cap int

	mu sync.Mutex
	m  map[string]backend.Entry
}

// Get returns a copy of the entry remembered for key.
func (c *Cache) Get(key string) (backend.Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	e.Value = bytes.Clone(e.Value)
	return e, ok
}

// Put remembers a copy of e as key's entry.
func (c *Cache) Put(key string, e backend.Entry) {
	e.Value = bytes.Clone(e.Value)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]backend.Entry)
	}
	limit := c.Cap
	if limit <= 0 {
		limit = DefaultCap
	}
	if _, ok := c.m[key]; !ok && len(c.m) >= limit {
		for k := range c.m { // drop an arbitrary one
			delete(c.m, k)
			break
		}
	}
	c.m[key] = e
}

// Drop forgets key.
func (c *Cache) Drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}
