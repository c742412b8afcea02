package core

// The registry's decoded-blob cache and the head lookups through it
// (lookups inside an engine-side transaction must not do I/O).

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/stickypub/stickypub/backend"
)

// errNeedBlobs: a lookup inside an engine-side transaction needed blobs
// that are not cached; the caller loads them outside and tries again.
var errNeedBlobs = errors.New("registry blobs not cached")

// regCache holds decoded registry blobs by reference (they are immutable),
// so that lookups inside an engine-side transaction need no I/O.
type regCache struct {
	mu     sync.Mutex
	roots  map[Ref]*regRoot
	shards map[Ref]*regShard
}

const regCacheMax = 4096

func newRegCache() *regCache {
	return &regCache{roots: map[Ref]*regRoot{}, shards: map[Ref]*regShard{}}
}

func (c *regCache) root(ref Ref) (*regRoot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.roots[ref]
	return r, ok
}

func (c *regCache) shard(ref Ref) (*regShard, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.shards[ref]
	return s, ok
}

func (c *regCache) addRoot(ref Ref, r *regRoot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.roots) >= regCacheMax {
		clear(c.roots) // bounded; it is only a cache
	}
	c.roots[ref] = r
}

func (c *regCache) addShard(ref Ref, s *regShard) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.shards) >= regCacheMax {
		clear(c.shards)
	}
	c.shards[ref] = s
}

func (e *engine) loadRegRoot(ctx context.Context, tk topicKeys, ref Ref) (*regRoot, error) {
	if ref.IsZero() {
		return &regRoot{Shards: map[byte]Ref{}}, nil
	}
	if r, ok := e.reg.root(ref); ok {
		return r, nil
	}
	data, err := e.blobs.get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("core: registry of %q: %w", tk.name, err)
	}
	r, err := decodeRegRoot(tk.id, data)
	if err != nil {
		return nil, err
	}
	e.reg.addRoot(ref, r)
	return r, nil
}

func (e *engine) loadRegShard(ctx context.Context, tk topicKeys, ref Ref) (*regShard, error) {
	if s, ok := e.reg.shard(ref); ok {
		return s, nil
	}
	data, err := e.blobs.get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("core: registry shard of %q: %w", tk.name, err)
	}
	s, err := decodeRegShard(tk.id, data)
	if err != nil {
		return nil, err
	}
	e.reg.addShard(ref, s)
	return s, nil
}

// lostRegistry reports a registry blob that is gone for good: in unordered
// mode (DHTs) nobody refreshes the registry, so its blobs expire and their
// entries are lost ("what nobody refreshes may vanish"); the registry goes
// on without them. In ordered mode a missing blob is an error.
func (e *engine) lostRegistry(err error) bool {
	return !e.ordered && errors.Is(err, backend.ErrNotFound)
}

// registryHead returns p's head in the registry rooted at root (0 when p
// is not registered).
func (e *engine) registryHead(ctx context.Context, tk topicKeys, root Ref, p PublisherID) (uint64, error) {
	r, err := e.loadRegRoot(ctx, tk, root)
	if err != nil {
		return 0, err
	}
	ref, ok := r.Shards[shardOf(p, r.Bits)]
	if !ok {
		return 0, nil
	}
	s, err := e.loadRegShard(ctx, tk, ref)
	if err != nil {
		return 0, err
	}
	return s.Heads[p], nil
}

// cachedRegistryHead is registryHead without I/O: errNeedBlobs when a blob
// on the path is not cached yet.
func (e *engine) cachedRegistryHead(root Ref, p PublisherID) (uint64, error) {
	if root.IsZero() {
		return 0, nil
	}
	r, ok := e.reg.root(root)
	if !ok {
		return 0, errNeedBlobs
	}
	ref, ok := r.Shards[shardOf(p, r.Bits)]
	if !ok {
		return 0, nil
	}
	s, ok := e.reg.shard(ref)
	if !ok {
		return 0, errNeedBlobs
	}
	return s.Heads[p], nil
}
