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
func (e *engine) readCoord(ctx context.Context, tk topicKeys) (*coordState, backend.Version, error) {
	for attempt := 0; ; attempt++ {
		ent, err := e.store.Get(ctx, tk.coord)
		if errors.Is(err, backend.ErrNotFound) {
			return e.newCoord(), 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("core: read coordinator of %q: %w", tk.name, err)
		}
		st, err := e.decodeCoordValue(ctx, ent.Value)
		if errors.Is(err, backend.ErrNotFound) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("core: coordinator of %q: %w", tk.name, err)
		}
		return st, ent.Version, nil
	}
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
