package bittorrent

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// contention slows down a handle's writes to a key it keeps losing races
// on. A DHT compare-and-put costs several round trips, far more than the
// callers' own backoff assumes, and many writers retrying a hot key at
// once (a topic's coordinator when a hundred publishers register) would
// otherwise flood the closest nodes and starve each other. After n
// consecutive conflicts on a key, the next write to it first waits a random
// time up to min(maxContentionWait, contentionBase·2^n); a success resets it.
type contention struct {
	mu     sync.Mutex
	losses map[Target]int
}

// Bounds of the wait before a write to a contended key.
const (
	contentionBase    = 5 * time.Millisecond
	maxContentionWait = 2 * time.Second
)

// wait sleeps before a write to t according to its recent losses, or
// until ctx ends.
func (c *contention) wait(ctx context.Context, t Target) error {
	c.mu.Lock()
	n := c.losses[t]
	c.mu.Unlock()
	if n == 0 {
		return nil
	}
	ceil := maxContentionWait
	if n < 10 {
		ceil = min(maxContentionWait, contentionBase<<n)
	}
	timer := time.NewTimer(rand.N(ceil) + time.Millisecond)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// lost records a conflict on t.
func (c *contention) lost(t Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.losses == nil || len(c.losses) > 4096 {
		c.losses = make(map[Target]int)
	}
	c.losses[t]++
}

// won records a successful write to t.
func (c *contention) won(t Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.losses, t)
}
