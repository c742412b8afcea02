package core

// The publisher registry: a two-level blob tree of every publisher's
// announced head, its encodings and its update at fold time.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// The registry is the full map publisher → highest announced seq of a
// topic, as of the coordinator's last fold. It is a two-level,
// content-addressed tree of blobs: a root listing the shards, and shards
// holding sorted (publisher, head) pairs, a publisher's shard being the
// first Bits bits of its ID. Bits starts at 0 (one shard) and grows when a
// shard would exceed regShardMax entries (the one fold that grows it
// rewrites every shard). A fold rewrites only the shards of the publishers
// it folds (plus the root), so its cost follows change, and the coordinator
// carries only the root's reference: publishers that stopped announcing
// leave the hot record without losing their place in history.
//
// Both blob kinds start with the topic's ID, so a registry blob is never
// shared between topics and can be reclaimed with its topic's history.
const (
	registryRootTag  = 'G'
	registryShardTag = 'E'
	// regShardMax is the most entries a shard holds before the registry
	// splits its shards (about 2.4 KB).
	regShardMax = 128
)

// shardOf is the shard of publisher p in a registry of 2^bits shards.
func shardOf(p PublisherID, bits byte) byte {
	if bits == 0 {
		return 0
	}
	return p[0] >> (8 - bits)
}

// regRoot is a decoded registry root.
type regRoot struct {
	Bits   byte
	Shards map[byte]Ref
}

// regShard is a decoded registry shard: every publisher whose shard is
// Prefix, with its head.
type regShard struct {
	Bits   byte
	Prefix byte
	Heads  map[PublisherID]uint64
}

func encodeRegRoot(topicID string, r *regRoot) []byte {
	var e encoder
	e.byte(registryRootTag)
	e.str(topicID)
	e.byte(r.Bits)
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
	r := &regRoot{Bits: d.byte()}
	n := d.count(33)
	r.Shards = make(map[byte]Ref, n)
	for i, prev := 0, -1; i < n && d.err == nil; i++ {
		k := d.byte()
		if d.err == nil && int(k) <= prev {
			d.fail(fmt.Errorf("shard %#x not after %#x", k, prev))
		}
		prev = int(k)
		r.Shards[k] = Ref(d.raw(32))
	}
	if err := d.done(); err != nil {
		return nil, malformed("registry root: %v", err)
	}
	if r.Bits > 8 {
		return nil, malformed("registry root with %d bits", r.Bits)
	}
	return r, nil
}

func encodeRegShard(topicID string, s *regShard) []byte {
	var e encoder
	e.byte(registryShardTag)
	e.str(topicID)
	e.byte(s.Bits)
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
	s := &regShard{Bits: d.byte(), Prefix: d.byte()}
	s.Heads = decodeHeads(&d)
	if err := d.done(); err != nil {
		return nil, malformed("registry shard: %v", err)
	}
	if s.Bits > 8 {
		return nil, malformed("registry shard with %d bits", s.Bits)
	}
	for p := range s.Heads {
		if shardOf(p, s.Bits) != s.Prefix {
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
	var p PublisherID
	for i := 0; i < n && d.err == nil; i++ {
		p = d.pid(p, i == 0)
		heads[p] = d.uvarint()
	}
	return heads
}

// updateRegistry returns the root of the registry root with heads merged
// in (max per publisher). Only the shards of those publishers, and the
// root, are written, unless a shard outgrows regShardMax: then the shards
// split (every shard is rewritten once).
func (e *engine) updateRegistry(ctx context.Context, tk topicKeys, root Ref, heads map[PublisherID]uint64) (Ref, error) {
	if len(heads) == 0 {
		return root, nil
	}
	r, err := e.loadRegRoot(ctx, tk, root)
	if err != nil && e.lostRegistry(err) {
		r, err = &regRoot{Shards: map[byte]Ref{}}, nil
	}
	if err != nil {
		return Ref{}, err
	}
	bits := r.Bits
	merged, err := e.mergeShards(ctx, tk, r, bits, heads)
	if err != nil {
		return Ref{}, err
	}
	grow := false
	for _, sh := range merged {
		grow = grow || (len(sh.Heads) > regShardMax && bits < 8)
	}
	next := &regRoot{Bits: bits, Shards: maps.Clone(r.Shards)}
	if grow {
		all, err := e.registryAll(ctx, tk, root)
		if err != nil {
			return Ref{}, err
		}
		for p, h := range heads {
			all[p] = max(all[p], h)
		}
		for bits < 8 && len(all)>>bits > regShardMax/2 {
			bits++
		}
		empty := &regRoot{Bits: bits, Shards: map[byte]Ref{}}
		if merged, err = e.mergeShards(ctx, tk, empty, bits, all); err != nil {
			return Ref{}, err
		}
		next = &regRoot{Bits: bits, Shards: map[byte]Ref{}}
	}
	keys := slices.Sorted(maps.Keys(merged))
	refs := make([]Ref, len(keys))
	err = e.blobs.parallel(ctx, len(keys), func(ctx context.Context, i int) error {
		sh := merged[keys[i]]
		ref, err := e.blobs.put(ctx, encodeRegShard(tk.id, sh))
		if err != nil {
			return err
		}
		e.reg.addShard(ref, sh)
		refs[i] = ref
		return nil
	})
	if err != nil {
		return Ref{}, err
	}
	for i, k := range keys {
		next.Shards[k] = refs[i]
	}
	ref, err := e.blobs.put(ctx, encodeRegRoot(tk.id, next))
	if err != nil {
		return Ref{}, err
	}
	e.reg.addRoot(ref, next)
	return ref, nil
}

// mergeShards returns the shards of r (with bits) that heads touch, with
// heads merged in.
func (e *engine) mergeShards(ctx context.Context, tk topicKeys, r *regRoot, bits byte, heads map[PublisherID]uint64) (map[byte]*regShard, error) {
	byShard := map[byte]map[PublisherID]uint64{}
	for p, h := range heads {
		k := shardOf(p, bits)
		if byShard[k] == nil {
			byShard[k] = map[PublisherID]uint64{}
		}
		byShard[k][p] = h
	}
	keys := slices.Sorted(maps.Keys(byShard))
	out := make([]*regShard, len(keys))
	err := e.blobs.parallel(ctx, len(keys), func(ctx context.Context, i int) error {
		k := keys[i]
		sh := &regShard{Bits: bits, Prefix: k, Heads: map[PublisherID]uint64{}}
		if old, ok := r.Shards[k]; ok && r.Bits == bits {
			prev, err := e.loadRegShard(ctx, tk, old)
			switch {
			case err == nil:
				sh.Heads = maps.Clone(prev.Heads)
			case !e.lostRegistry(err):
				return err
			}
		}
		for p, h := range byShard[k] {
			sh.Heads[p] = max(sh.Heads[p], h)
		}
		out[i] = sh
		return nil
	})
	if err != nil {
		return nil, err
	}
	m := make(map[byte]*regShard, len(keys))
	for i, k := range keys {
		m[k] = out[i]
	}
	return m, nil
}

// registryAll returns every registered publisher and its head (Info and
// subscriber start-up in unordered mode; O(publishers) by nature).
func (e *engine) registryAll(ctx context.Context, tk topicKeys, root Ref) (map[PublisherID]uint64, error) {
	r, err := e.loadRegRoot(ctx, tk, root)
	if err != nil && e.lostRegistry(err) {
		return map[PublisherID]uint64{}, nil
	}
	if err != nil {
		return nil, err
	}
	keys := slices.Sorted(maps.Keys(r.Shards))
	shards := make([]*regShard, len(keys))
	err = e.blobs.parallel(ctx, len(keys), func(ctx context.Context, i int) error {
		var err error
		shards[i], err = e.loadRegShard(ctx, tk, r.Shards[keys[i]])
		if err != nil && e.lostRegistry(err) {
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
func (e *engine) registryGarbage(ctx context.Context, tk topicKeys, old, next Ref) ([]Ref, error) {
	if old.IsZero() || old == next {
		return nil, nil
	}
	ro, err := e.loadRegRoot(ctx, tk, old)
	if err != nil {
		return nil, err
	}
	rn, err := e.loadRegRoot(ctx, tk, next)
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
func (e *engine) registered(ctx context.Context, tk topicKeys, st *coordState) (map[PublisherID]uint64, error) {
	reg, err := e.registryAll(ctx, tk, st.Registry)
	if err != nil {
		return nil, err
	}
	for p, h := range st.hot {
		reg[p] = max(reg[p], h)
	}
	return reg, nil
}
