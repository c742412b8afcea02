package core

// Reading and writing the coordinator record: decoding it (inline, or a
// reference to a blob), refusing one of the other ordering, encoding it (in a
// blob when it outgrows a value), and the state this engine last wrote.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/stickypub/stickypub/backend"
)

// readCoord returns the topic coordinator and its version (0 and an empty
// state when the topic has none yet).
//
// A coordinator stored as a blob may be replaced, and its blob reclaimed,
// between reading the key and reading the blob: the key is then read again.
func (e *engine) readCoord(ctx context.Context, tk topicKeys) (*coordState, backend.Version, error) {
	return e.readCoordWith(ctx, tk, e.decodeCoordValue)
}

// readCoordWith is readCoord with decode turning the stored value into the
// state (an error matching backend.ErrNotFound: a reclaimed blob).
func (e *engine) readCoordWith(ctx context.Context, tk topicKeys, decode func(context.Context, []byte) (*coordState, error)) (*coordState, backend.Version, error) {
	for attempt := 0; ; attempt++ {
		ent, err := e.store.Get(ctx, tk.coord)
		if errors.Is(err, backend.ErrNotFound) {
			return e.newCoord(), 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("core: read coordinator of %q: %w", tk.name, err)
		}
		st, err := decode(ctx, ent.Value)
		if errors.Is(err, backend.ErrNotFound) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("core: coordinator of %q: %w", tk.name, err)
		}
		return st, ent.Version, nil
	}
}

// readCoordShared is readCoord for a reader that never modifies the state
// (a poll, an audit), shared between the engine's readers of the topic in
// two ways. Reads are grouped: a caller waits for the next read that starts
// after it arrived (so what it gets is as fresh as its own read would be)
// and every caller waiting for that read gets its result, so that
// thousands of subscriptions kicked together read the key once, not each
// its own copy of the value. And the engine keeps, per topic, the last
// value decoded and its state, and returns that same state while the
// stored value is byte for byte the same, so each coordinator version is
// decoded once.
func (e *engine) readCoordShared(ctx context.Context, tk topicKeys) (*coordState, backend.Version, error) {
	e.mu.Lock()
	g := e.reads[tk.name]
	if g == nil {
		g = &coordReads{}
		e.reads[tk.name] = g
	}
	e.mu.Unlock()
	done := make(chan coordRead, 1)
	g.mu.Lock()
	g.waiting = append(g.waiting, done)
	start := !g.running
	g.running = true
	g.mu.Unlock()
	if start {
		e.wg.Go(func() { e.groupReads(tk, g) })
	}
	select {
	case r := <-done:
		return r.st, r.v, r.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// coordReads is the grouped coordinator reads of one topic.
type coordReads struct {
	mu      sync.Mutex
	running bool
	waiting []chan coordRead
}

// coordRead is the result of one grouped read.
type coordRead struct {
	st  *coordState
	v   backend.Version
	err error
}

// groupReads serves the waiting callers, one read per group, until none
// waits.
func (e *engine) groupReads(tk topicKeys, g *coordReads) {
	for {
		g.mu.Lock()
		batch := g.waiting
		g.waiting = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		var r coordRead
		r.st, r.v, r.err = e.readCoordDecoded(e.ctx, tk)
		for _, ch := range batch {
			ch <- r
		}
	}
}

// readCoordDecoded is readCoord through the engine's per-topic cache of
// the last decoded value (see readCoordShared).
func (e *engine) readCoordDecoded(ctx context.Context, tk topicKeys) (*coordState, backend.Version, error) {
	return e.readCoordWith(ctx, tk, func(ctx context.Context, raw []byte) (*coordState, error) {
		e.mu.Lock()
		d, ok := e.decoded[tk.name]
		e.mu.Unlock()
		if ok && bytes.Equal(d.raw, raw) {
			return d.st, nil
		}
		st, err := e.decodeCoordValue(ctx, raw)
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		if len(e.decoded) >= 1024 {
			clear(e.decoded) // bounded; it is only a cache
		}
		e.decoded[tk.name] = decodedCoord{raw: bytes.Clone(raw), st: st}
		e.mu.Unlock()
		return st, nil
	})
}

// decodedCoord is a coordinator value and its decoded state (read-only).
type decodedCoord struct {
	raw []byte
	st  *coordState
}

// decodeCoordValue decodes a coordinator value (inline, or a reference to
// a blob) and refuses one of the other ordering.
func (e *engine) decodeCoordValue(ctx context.Context, v []byte) (*coordState, error) {
	if len(v) == 0 {
		return nil, malformed("empty coordinator")
	}
	data, ref := v, Ref{}
	if v[0] == coordBlob {
		if len(v) != 33 {
			return nil, malformed("coordinator reference of %d bytes", len(v))
		}
		ref = Ref(v[1:])
		var err error
		if data, err = e.blobs.get(ctx, ref); err != nil {
			return nil, err
		}
	}
	st, err := decodeCoordState(data)
	if err != nil {
		return nil, err
	}
	st.blob = ref
	return st, e.checkOrder(st)
}

func (e *engine) encodeCoordValue(ctx context.Context, st *coordState) ([]byte, error) {
	enc := st.encode()
	if len(enc) <= e.maxValue {
		return enc, nil
	}
	// Always written, never skipped because the cache has it: a
	// coordinator state can recur (a subscriber leaves again), and its
	// earlier blob may have been reclaimed since.
	ref, err := e.blobs.putFresh(ctx, enc)
	if err != nil {
		return nil, err
	}
	return append([]byte{coordBlob}, ref[:]...), nil
}

// lastWritten returns the coordinator state and version this engine last
// wrote for tk, if any. The state must not be modified.
func (e *engine) lastWritten(tk topicKeys) (*coordState, backend.Version, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	w, ok := e.written[tk.name]
	return w.st, w.v, ok
}

func (e *engine) rememberWritten(tk topicKeys, st *coordState, v backend.Version) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.written) > 1024 {
		clear(e.written) // bounded; it is only a hint
	}
	e.written[tk.name] = writtenCoord{st: st, v: v}
}
