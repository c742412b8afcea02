package core

// Content-addressed blobs (x/<sha256>): writing, chunking large ones,
// reading and verifying them, deleting them with their chunks.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/stickypub/stickypub/backend"
)

// Blob encodings. A blob is immutable and stored under x/<sha256(content)>.
// Content that fits the backend's value limit is stored whole (a leaf);
// larger content is split into leaf chunks, each under its own digest, and
// the root holds the list of chunk digests (an index) or, when that list is
// itself too large, the digest of a blob holding the list (an indirect).
//
// Chunk keys are bound to their blob: chunk i of blob ref is stored under
// sha256(ref ‖ i ‖ content) with tag 'K', so two blobs never share a chunk
// and deleting one blob's chunks cannot break another. A chunk is verified
// as part of its blob (the whole content against ref).
const (
	blobLeaf     = 'L'
	blobIndex    = 'I'
	blobIndirect = 'R'
	blobChunk    = 'K'
)

// chunkRef is the key digest of chunk i of blob ref.
func chunkRef(ref Ref, i int, part []byte) Ref {
	h := sha256.New()
	h.Write(ref[:])
	h.Write([]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
	h.Write(part)
	return Ref(h.Sum(nil))
}

// blobStore reads and writes content-addressed blobs through the contract,
// with a bounded cache of content it has read or written.
type blobStore struct {
	kv       backend.Store
	maxValue int
	cache    *lru
	fanout   int // parallel chunk operations
}

func newBlobStore(kv backend.Store, maxValue, cacheBytes int) *blobStore {
	return &blobStore{kv: kv, maxValue: maxValue, cache: newLRU(cacheBytes), fanout: 8}
}

func digest(data []byte) Ref { return sha256.Sum256(data) }

// put stores data and returns its digest. It is idempotent: storing the same
// content twice (or concurrently from several clients) is harmless.
func (b *blobStore) put(ctx context.Context, data []byte) (Ref, error) {
	ref := digest(data)
	if err := b.putAt(ctx, ref, data, false); err != nil {
		return Ref{}, err
	}
	return ref, nil
}

// putFresh is put without the cache shortcut: the blob is written (or
// found present) in the store even if this process has seen it before.
func (b *blobStore) putFresh(ctx context.Context, data []byte) (Ref, error) {
	ref := digest(data)
	if err := b.putAt(ctx, ref, data, true); err != nil {
		return Ref{}, err
	}
	return ref, nil
}

// putAt is put (putFresh when fresh) of data whose digest ref the caller
// already has.
func (b *blobStore) putAt(ctx context.Context, ref Ref, data []byte, fresh bool) error {
	if !fresh && b.cache.has(ref) {
		return nil
	}
	if err := b.putNode(ctx, ref, data); err != nil {
		return err
	}
	b.cache.add(ref, data)
	return nil
}

// leaf returns the write that stores data (digest ref) whole, if it fits
// one value (fits false: it needs chunking, see putNode).
func (b *blobStore) leaf(ref Ref, data []byte) (put backend.Put, fits bool) {
	if 1+len(data) > b.maxValue {
		return backend.Put{}, false
	}
	return backend.Put{Key: blobKey(ref), Value: append([]byte{blobLeaf}, data...)}, true
}

// ensure writes blob ref (content data) again if its root is not stored.
func (b *blobStore) ensure(ctx context.Context, ref Ref, data []byte) error {
	_, err := b.kv.Get(ctx, blobKey(ref))
	if errors.Is(err, backend.ErrNotFound) {
		return b.putNode(ctx, ref, data)
	}
	if err != nil {
		return fmt.Errorf("core: check blob %s: %w", ref, err)
	}
	return nil
}

func (b *blobStore) putNode(ctx context.Context, ref Ref, data []byte) error {
	if 1+len(data) <= b.maxValue {
		return b.putRaw(ctx, ref, append([]byte{blobLeaf}, data...))
	}
	chunk := b.maxValue - 1
	if chunk < 64 {
		return fmt.Errorf("%w: backend value limit %d is too small for chunking", backend.ErrTooLarge, b.maxValue)
	}
	n := (len(data) + chunk - 1) / chunk
	list := make([]byte, 0, n*32)
	refs := make([]Ref, n)
	for i := range n {
		refs[i] = chunkRef(ref, i, data[i*chunk:min((i+1)*chunk, len(data))])
		list = append(list, refs[i][:]...)
	}
	err := b.parallel(ctx, n, func(ctx context.Context, i int) error {
		part := data[i*chunk : min((i+1)*chunk, len(data))]
		return b.putRaw(ctx, refs[i], append([]byte{blobChunk}, part...))
	})
	if err != nil {
		return err
	}
	if 1+len(list) <= b.maxValue {
		return b.putRaw(ctx, ref, append([]byte{blobIndex}, list...))
	}
	listRef, err := b.put(ctx, list)
	if err != nil {
		return err
	}
	return b.putRaw(ctx, ref, append([]byte{blobIndirect}, listRef[:]...))
}

// putRaw creates key x/<ref>. A conflict means the blob exists already:
// content addressing makes it the same content (readers verify digests).
func (b *blobStore) putRaw(ctx context.Context, ref Ref, value []byte) error {
	_, err := b.kv.CompareAndPut(ctx, blobKey(ref), 0, value)
	if err == nil || errors.Is(err, backend.ErrConflict) {
		return nil
	}
	return fmt.Errorf("core: store blob %s: %w", ref, err)
}

// get returns the content of blob ref, verifying its digest.
func (b *blobStore) get(ctx context.Context, ref Ref) ([]byte, error) {
	if data, ok := b.cache.get(ref); ok {
		return data, nil
	}
	data, err := b.getNode(ctx, ref, 0, true)
	if err != nil {
		return nil, err
	}
	b.cache.add(ref, data)
	return data, nil
}

// getNode reads node ref; a chunk ('K') is accepted only when !verify (as
// part of a blob, which its caller verifies as a whole).
func (b *blobStore) getNode(ctx context.Context, ref Ref, depth int, verify bool) ([]byte, error) {
	if depth > 8 {
		return nil, malformed("blob %s nests too deep", ref)
	}
	e, err := b.getRetry(ctx, blobKey(ref))
	if err != nil {
		return nil, fmt.Errorf("core: read blob %s: %w", ref, err)
	}
	if len(e.Value) == 0 {
		return nil, malformed("empty blob %s", ref)
	}
	body := e.Value[1:]
	var data []byte
	switch e.Value[0] {
	case blobChunk:
		if verify {
			return nil, malformed("blob %s is a chunk", ref)
		}
		return body, nil
	case blobLeaf:
		data = body
	case blobIndex:
		data, err = b.gather(ctx, body, depth)
	case blobIndirect:
		if len(body) != 32 {
			return nil, malformed("indirect blob %s has %d bytes", ref, len(body))
		}
		var list []byte
		if list, err = b.getNode(ctx, Ref(body), depth+1, true); err == nil {
			data, err = b.gather(ctx, list, depth)
		}
	default:
		return nil, malformed("blob %s has kind %#x", ref, e.Value[0])
	}
	if err != nil {
		return nil, err
	}
	if digest(data) != ref {
		return nil, malformed("blob %s does not match its digest", ref)
	}
	return data, nil
}

func (b *blobStore) gather(ctx context.Context, list []byte, depth int) ([]byte, error) {
	if len(list)%32 != 0 || len(list) == 0 {
		return nil, malformed("chunk list of %d bytes", len(list))
	}
	parts := make([][]byte, len(list)/32)
	err := b.parallel(ctx, len(parts), func(ctx context.Context, i int) error {
		var err error
		parts[i], err = b.getNode(ctx, Ref(list[i*32:(i+1)*32]), depth+1, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return bytes.Join(parts, nil), nil
}

// parallel runs fn for 0..n-1 with at most b.fanout at a time and returns
// the first error.
func (b *blobStore) parallel(ctx context.Context, n int, fn func(context.Context, int) error) error {
	return b.parallelN(ctx, b.fanout, n, fn)
}

// readFanout bounds the reads a publisher-order poll runs at a time:
// head records, chain walks across publishers, and a window of a chain
// read again for delivery. Each is a small read whose time is mostly the
// round trip, which stores like Redis pipeline, so a poll over 100
// publishers reads their heads, and each step of their chains, in one
// round trip rather than thirteen (fanout's 8 at a time).
const readFanout = 256

// parallelN is parallel with at most limit calls at a time.
func (b *blobStore) parallelN(ctx context.Context, limit, n int, fn func(context.Context, int) error) error {
	if n == 1 {
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(limit, 1))
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	return first
}

// getRetry reads a blob key, retrying transient engine errors a few times
// and, on a backend that is not linearizable, a "not found" too: a blob is
// only ever referenced after it was written, so it may just not have
// propagated yet.
func (b *blobStore) getRetry(ctx context.Context, key string) (backend.Entry, error) {
	weak := b.kv.Capabilities().Consistency < backend.Linearizable
	for attempt := 0; ; attempt++ {
		e, err := b.kv.Get(ctx, key)
		again := errors.Is(err, backend.ErrUnavailable) || (weak && errors.Is(err, backend.ErrNotFound))
		if !again || attempt >= 5 {
			return e, err
		}
		if err := sleepJitter(ctx, attempt+4); err != nil {
			return e, err
		}
	}
}

// delete removes blob ref and its chunks from a store with backend.Deleter
// (children first, the root last, so an interrupted delete is finished by
// the next one). A blob that is already gone is not an error.
func (b *blobStore) delete(ctx context.Context, d backend.Deleter, ref Ref, depth int) error {
	if depth > 8 {
		return malformed("blob %s nests too deep", ref)
	}
	key := blobKey(ref)
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, backend.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("core: read blob %s to delete it: %w", ref, err)
	}
	if len(e.Value) > 0 {
		body := e.Value[1:]
		switch e.Value[0] {
		case blobIndex:
			for i := 0; i+32 <= len(body); i += 32 {
				if err := b.deleteKey(ctx, d, Ref(body[i:i+32])); err != nil {
					return err
				}
			}
		case blobIndirect:
			if len(body) == 32 {
				if list, err := b.getNode(ctx, Ref(body), depth+1, true); err == nil {
					for i := 0; i+32 <= len(list); i += 32 {
						if err := b.deleteKey(ctx, d, Ref(list[i:i+32])); err != nil {
							return err
						}
					}
				}
				if err := b.delete(ctx, d, Ref(body), depth+1); err != nil {
					return err
				}
			}
		}
	}
	b.cache.remove(ref)
	if err := d.Delete(ctx, key, e.Version); err != nil && !errors.Is(err, backend.ErrNotFound) && !errors.Is(err, backend.ErrConflict) {
		return fmt.Errorf("core: delete blob %s: %w", ref, err)
	}
	return nil
}

// deleteKey deletes one chunk key.
func (b *blobStore) deleteKey(ctx context.Context, d backend.Deleter, ref Ref) error {
	key := blobKey(ref)
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, backend.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("core: read chunk %s to delete it: %w", ref, err)
	}
	if err := d.Delete(ctx, key, e.Version); err != nil && !errors.Is(err, backend.ErrNotFound) && !errors.Is(err, backend.ErrConflict) {
		return fmt.Errorf("core: delete chunk %s: %w", ref, err)
	}
	return nil
}

// refresh re-writes blob ref and its chunks with the same bytes, which
// restarts their lifetime on a store whose records expire. A node that is
// gone is written again from the content (cached or read).
func (b *blobStore) refresh(ctx context.Context, ref Ref) error {
	e, err := b.kv.Get(ctx, blobKey(ref))
	if errors.Is(err, backend.ErrNotFound) {
		data, gerr := b.get(ctx, ref)
		if gerr != nil {
			return gerr
		}
		return b.putNode(ctx, ref, data)
	}
	if err != nil {
		return fmt.Errorf("core: read blob %s to refresh it: %w", ref, err)
	}
	if len(e.Value) > 0 {
		body := e.Value[1:]
		var list []byte
		switch e.Value[0] {
		case blobIndex:
			list = body
		case blobIndirect:
			if len(body) == 32 {
				if err := b.refresh(ctx, Ref(body)); err != nil {
					return err
				}
				list, _ = b.getNode(ctx, Ref(body), 1, true)
			}
		}
		for i := 0; i+32 <= len(list); i += 32 {
			if err := b.rewrite(ctx, Ref(list[i:i+32])); err != nil {
				return err
			}
		}
	}
	if _, err := b.kv.CompareAndPut(ctx, blobKey(ref), e.Version, e.Value); err != nil && !errors.Is(err, backend.ErrConflict) {
		return fmt.Errorf("core: refresh blob %s: %w", ref, err)
	}
	return nil
}

// rewrite re-writes one chunk key with its own bytes.
func (b *blobStore) rewrite(ctx context.Context, ref Ref) error {
	e, err := b.kv.Get(ctx, blobKey(ref))
	if err != nil {
		return fmt.Errorf("core: read chunk %s to refresh it: %w", ref, err)
	}
	if _, err := b.kv.CompareAndPut(ctx, blobKey(ref), e.Version, e.Value); err != nil && !errors.Is(err, backend.ErrConflict) {
		return fmt.Errorf("core: refresh chunk %s: %w", ref, err)
	}
	return nil
}
