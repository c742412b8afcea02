package core

// Reading and writing the coordinator record: decoding it (inline, or a
// reference to a blob), refusing one of the other ordering, encoding it (in a
// blob when it outgrows a value), and the state this engine last wrote.

import (
	"context"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
)

// readCoord returns the topic coordinator and its version (0 and an empty
// state when the topic has none yet).
//
// A coordinator stored as a blob may be replaced, and its blob reclaimed,
// between reading the key and reading the blob: the key is then read again.
func (c *engine) readCoord(ctx context.Context, tk topicKeys) (*coordState, backend.Version, error) {
	for attempt := 0; ; attempt++ {
		e, err := c.store.Get(ctx, tk.coord)
		if errors.Is(err, backend.ErrNotFound) {
			return c.newCoord(), 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("core: read coordinator of %q: %w", tk.name, err)
		}
		st, err := c.decodeCoordValue(ctx, e.Value)
		if errors.Is(err, backend.ErrNotFound) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("core: coordinator of %q: %w", tk.name, err)
		}
		return st, e.Version, nil
	}
}

func (c *engine) decodeCoordValue(ctx context.Context, v []byte) (*coordState, error) {
	st, err := c.decodeCoordAny(ctx, v)
	if err == nil {
		err = c.checkOrder(st)
	}
	return st, err
}

// decodeCoordAny decodes a coordinator value of either ordering.
func (c *engine) decodeCoordAny(ctx context.Context, v []byte) (*coordState, error) {
	if len(v) == 0 {
		return nil, malformed("empty coordinator")
	}
	if v[0] == coordBlob {
		if len(v) != 33 {
			return nil, malformed("coordinator reference of %d bytes", len(v))
		}
		ref := Ref(v[1:])
		data, err := c.blobs.get(ctx, ref)
		if err != nil {
			return nil, err
		}
		st, err := decodeCoordState(data)
		if err == nil {
			st.blob = ref
		}
		return st, err
	}
	return decodeCoordState(v)
}

func (c *engine) encodeCoordValue(ctx context.Context, st *coordState) ([]byte, error) {
	enc := st.encode()
	if len(enc) <= c.maxValue {
		return enc, nil
	}
	// Always written, never skipped because the cache has it: a
	// coordinator state can recur (a subscriber leaves again), and its
	// earlier blob may have been reclaimed since.
	ref, err := c.blobs.putFresh(ctx, enc)
	if err != nil {
		return nil, err
	}
	return append([]byte{coordBlob}, ref[:]...), nil
}

// lastWritten returns the coordinator state and version this engine last
// wrote for tk, if any. The state must not be modified.
func (c *engine) lastWritten(tk topicKeys) (*coordState, backend.Version, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.written[tk.name]
	return w.st, w.v, ok
}

func (c *engine) rememberWritten(tk topicKeys, st *coordState, v backend.Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.written) > 1024 {
		clear(c.written) // bounded; it is only a hint
	}
	c.written[tk.name] = writtenCoord{st: st, v: v}
}
