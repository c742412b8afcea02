package core

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/stickypub/stickypub/backend"
)

// The registry is the full map publisher → highest announced seq of a
// topic, as of the coordinator's last fold. It is a two-level,
// content-addressed tree of blobs: a root listing one shard per non-empty
// first byte of the publisher ID, and shards holding sorted (publisher,
// head) pairs. A fold rewrites only the shards of the publishers it folds
// (plus the root), so its cost follows change, and the coordinator carries
// only the root's reference: publishers that stopped announcing leave the
// hot record without losing their place in history.
//
// Both blob kinds start with the topic's ID, so a registry blob is never
// shared between topics and can be reclaimed with its topic's history.
const (
	registryRootTag  = 'G'
	registryShardTag = 'E'
)

// regRoot is a decoded registry root.
type regRoot struct {
	Shards map[byte]Ref
}

// regShard is a decoded registry shard: every publisher whose ID starts
// with Prefix, with its head.
type regShard struct {
	Prefix byte
	Heads  map[PublisherID]uint64
}

func encodeRegRoot(topicID string, r *regRoot) []byte {
	var e encoder
	e.byte(registryRootTag)
	e.str(topicID)
	keys := slices.Sorted(maps.Keys(r.Shards))
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.byte(k)
		ref := r.Shards[k]
		e.raw(ref[:])
	}
	return e.b
}

func decodeRegRoot(topicID string, b []byte) (*regRoot, error) {
	d := decoder{b: b}
	if tag := d.byte(); tag != registryRootTag {
		return nil, malformed("registry root tag %#x", tag)
	}
	if id := string(d.bytes()); d.err == nil && id != topicID {
		return nil, malformed("registry root of another topic")
	}
	n := d.count(33)
	r := &regRoot{Shards: make(map[byte]Ref, n)}
	for i := 0; i < n && d.err == nil; i++ {
		k := d.byte()
		r.Shards[k] = Ref(d.raw(32))
	}
	if err := d.done(); err != nil {
		return nil, malformed("registry root: %v", err)
	}
	return r, nil
}

func encodeRegShard(topicID string, s *regShard) []byte {
	var e encoder
	e.byte(registryShardTag)
	e.str(topicID)
	e.byte(s.Prefix)
	encodeHeads(&e, s.Heads)
	return e.b
}

func decodeRegShard(topicID string, b []byte) (*regShard, error) {
	d := decoder{b: b}
	if tag := d.byte(); tag != registryShardTag {
		return nil, malformed("registry shard tag %#x", tag)
	}
	if id := string(d.bytes()); d.err == nil && id != topicID {
		return nil, malformed("registry shard of another topic")
	}
	s := &regShard{Prefix: d.byte()}
	s.Heads = decodeHeads(&d)
	if err := d.done(); err != nil {
		return nil, malformed("registry shard: %v", err)
	}
	for p := range s.Heads {
		if p[0] != s.Prefix {
			return nil, malformed("registry shard %#x holds publisher %s", s.Prefix, p)
		}
	}
	return s, nil
}

func encodeHeads(e *encoder, heads map[PublisherID]uint64) {
	keys := slices.SortedFunc(maps.Keys(heads), comparePID)
	e.uvarint(uint64(len(keys)))
	for _, p := range keys {
		e.raw(p[:])
		e.uvarint(heads[p])
	}
}

func decodeHeads(d *decoder) map[PublisherID]uint64 {
	n := d.count(17)
	heads := make(map[PublisherID]uint64, n)
	for i := 0; i < n && d.err == nil; i++ {
		var p PublisherID
		copy(p[:], d.raw(16))
		heads[p] = d.uvarint()
	}
	return heads
}

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

func (c *engine) loadRegRoot(ctx context.Context, tk topicKeys, ref Ref) (*regRoot, error) {
	if ref.IsZero() {
		return &regRoot{Shards: map[byte]Ref{}}, nil
	}
	if r, ok := c.reg.root(ref); ok {
		return r, nil
	}
	data, err := c.blobs.get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("core: registry of %q: %w", tk.name, err)
	}
	r, err := decodeRegRoot(tk.id, data)
	if err != nil {
		return nil, err
	}
	c.reg.addRoot(ref, r)
	return r, nil
}

func (c *engine) loadRegShard(ctx context.Context, tk topicKeys, ref Ref) (*regShard, error) {
	if s, ok := c.reg.shard(ref); ok {
		return s, nil
	}
	data, err := c.blobs.get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("core: registry shard of %q: %w", tk.name, err)
	}
	s, err := decodeRegShard(tk.id, data)
	if err != nil {
		return nil, err
	}
	c.reg.addShard(ref, s)
	return s, nil
}

// lostRegistry reports a registry blob that is gone for good: in unordered
// mode (DHTs) nobody refreshes the registry, so its blobs expire and their
// entries are lost ("what nobody refreshes may vanish"); the registry goes
// on without them. In ordered mode a missing blob is an error.
func (c *engine) lostRegistry(err error) bool {
	return !c.ordered && errors.Is(err, backend.ErrNotFound)
}

// registryHead returns p's head in the registry rooted at root (0 when p
// is not registered).
func (c *engine) registryHead(ctx context.Context, tk topicKeys, root Ref, p PublisherID) (uint64, error) {
	r, err := c.loadRegRoot(ctx, tk, root)
	if err != nil {
		return 0, err
	}
	ref, ok := r.Shards[p[0]]
	if !ok {
		return 0, nil
	}
	s, err := c.loadRegShard(ctx, tk, ref)
	if err != nil {
		return 0, err
	}
	return s.Heads[p], nil
}

// cachedRegistryHead is registryHead without I/O: errNeedBlobs when a blob
// on the path is not cached yet.
func (c *engine) cachedRegistryHead(root Ref, p PublisherID) (uint64, error) {
	if root.IsZero() {
		return 0, nil
	}
	r, ok := c.reg.root(root)
	if !ok {
		return 0, errNeedBlobs
	}
	ref, ok := r.Shards[p[0]]
	if !ok {
		return 0, nil
	}
	s, ok := c.reg.shard(ref)
	if !ok {
		return 0, errNeedBlobs
	}
	return s.Heads[p], nil
}

// updateRegistry returns the root of the registry root with heads merged
// in (max per publisher). Only the shards of those publishers, and the
// root, are written.
func (c *engine) updateRegistry(ctx context.Context, tk topicKeys, root Ref, heads map[PublisherID]uint64) (Ref, error) {
	if len(heads) == 0 {
		return root, nil
	}
	r, err := c.loadRegRoot(ctx, tk, root)
	if err != nil && c.lostRegistry(err) {
		r, err = &regRoot{Shards: map[byte]Ref{}}, nil
	}
	if err != nil {
		return Ref{}, err
	}
	byPrefix := map[byte]map[PublisherID]uint64{}
	for p, h := range heads {
		if byPrefix[p[0]] == nil {
			byPrefix[p[0]] = map[PublisherID]uint64{}
		}
		byPrefix[p[0]][p] = h
	}
	prefixes := slices.Sorted(maps.Keys(byPrefix))
	newRefs := make([]Ref, len(prefixes))
	err = c.blobs.parallel(ctx, len(prefixes), func(ctx context.Context, i int) error {
		k := prefixes[i]
		sh := &regShard{Prefix: k, Heads: map[PublisherID]uint64{}}
		if old, ok := r.Shards[k]; ok {
			prev, err := c.loadRegShard(ctx, tk, old)
			switch {
			case err == nil:
				sh.Heads = maps.Clone(prev.Heads)
			case !c.lostRegistry(err):
				return err
			}
		}
		for p, h := range byPrefix[k] {
			sh.Heads[p] = max(sh.Heads[p], h)
		}
		ref, err := c.blobs.put(ctx, encodeRegShard(tk.id, sh))
		if err != nil {
			return err
		}
		c.reg.addShard(ref, sh)
		newRefs[i] = ref
		return nil
	})
	if err != nil {
		return Ref{}, err
	}
	next := &regRoot{Shards: maps.Clone(r.Shards)}
	for i, k := range prefixes {
		next.Shards[k] = newRefs[i]
	}
	ref, err := c.blobs.put(ctx, encodeRegRoot(tk.id, next))
	if err != nil {
		return Ref{}, err
	}
	c.reg.addRoot(ref, next)
	return ref, nil
}

// registryAll returns every registered publisher and its head (Info and
// subscriber start-up in unordered mode; O(publishers) by nature).
func (c *engine) registryAll(ctx context.Context, tk topicKeys, root Ref) (map[PublisherID]uint64, error) {
	r, err := c.loadRegRoot(ctx, tk, root)
	if err != nil && c.lostRegistry(err) {
		return map[PublisherID]uint64{}, nil
	}
	if err != nil {
		return nil, err
	}
	keys := slices.Sorted(maps.Keys(r.Shards))
	shards := make([]*regShard, len(keys))
	err = c.blobs.parallel(ctx, len(keys), func(ctx context.Context, i int) error {
		var err error
		shards[i], err = c.loadRegShard(ctx, tk, r.Shards[keys[i]])
		if err != nil && c.lostRegistry(err) {
			shards[i], err = &regShard{}, nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[PublisherID]uint64{}
	for _, s := range shards {
		maps.Copy(out, s.Heads)
	}
	return out, nil
}

// registryGarbage lists the blobs of the registry rooted at old that the
// registry rooted at next no longer references: the old root and the
// shards the fold from old to next replaced.
func (c *engine) registryGarbage(ctx context.Context, tk topicKeys, old, next Ref) ([]Ref, error) {
	if old.IsZero() || old == next {
		return nil, nil
	}
	ro, err := c.loadRegRoot(ctx, tk, old)
	if err != nil {
		return nil, err
	}
	rn, err := c.loadRegRoot(ctx, tk, next)
	if err != nil {
		return nil, err
	}
	out := []Ref{old}
	for k, ref := range ro.Shards {
		if rn.Shards[k] != ref {
			out = append(out, ref)
		}
	}
	sort.Slice(out[1:], func(i, j int) bool { return string(out[1+i][:]) < string(out[1+j][:]) })
	return out, nil
}

// registered returns every publisher registered in st: the registry and
// the window.
func (c *engine) registered(ctx context.Context, tk topicKeys, st *coordState) (map[PublisherID]uint64, error) {
	reg, err := c.registryAll(ctx, tk, st.Registry)
	if err != nil {
		return nil, err
	}
	for p, h := range st.hot {
		reg[p] = max(reg[p], h)
	}
	return reg, nil
}
