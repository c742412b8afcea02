package core

// A byte-bounded LRU cache of immutable blobs.

import (
	"container/list"
	"sync"
)

// lruOverhead is what the cache counts for an entry beyond its bytes: the
// list element, the item and the map slot.
const lruOverhead = 160

// lru is a byte-bounded cache of immutable blob contents keyed by digest.
type lru struct {
	mu    sync.Mutex
	limit int
	size  int
	ll    *list.List
	items map[Ref]*list.Element
}

type lruItem struct {
	ref  Ref
	data []byte
}

func newLRU(limit int) *lru {
	return &lru{limit: limit, ll: list.New(), items: make(map[Ref]*list.Element)}
}

func (c *lru) get(ref Ref) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[ref]; ok {
		c.ll.MoveToFront(el)
		return el.Value.(*lruItem).data, true
	}
	return nil, false
}

func (c *lru) has(ref Ref) bool {
	_, ok := c.get(ref)
	return ok
}

func (c *lru) add(ref Ref, data []byte) {
	if len(data) > c.limit/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[ref]; ok {
		c.ll.MoveToFront(el)
		return
	}
	c.items[ref] = c.ll.PushFront(&lruItem{ref: ref, data: data})
	c.size += len(data) + lruOverhead
	for c.size > c.limit && c.ll.Len() > 0 {
		el := c.ll.Back()
		it := el.Value.(*lruItem)
		c.ll.Remove(el)
		delete(c.items, it.ref)
		c.size -= len(it.data) + lruOverhead
	}
}

// remove drops ref from the cache.
func (c *lru) remove(ref Ref) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[ref]; ok {
		c.ll.Remove(el)
		c.size -= len(el.Value.(*lruItem).data) + lruOverhead
		delete(c.items, ref)
	}
}

// bytes returns the bytes the cache counts (contents and overheads).
func (c *lru) bytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
