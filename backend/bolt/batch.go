package bolt

// UpdateWith (backend.Batcher): compare-and-puts of several keys and an
// update of one more, applied as one op of the group commit.

import (
	"context"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
	bbolt "go.etcd.io/bbolt"
)

// UpdateWith implements backend.Batcher. The puts and the update are one op
// of the group commit: their versions are checked and fn is run (as in
// Update: once, inside the transaction, on a private copy) before anything
// is written, so a conflict or an error from fn leaves every key as it
// was; the batch costs the caller one commit, shared with concurrent
// writers.
func (s *Store) UpdateWith(ctx context.Context, puts []backend.Put, key string, fn backend.UpdateFunc) (backend.Version, []backend.Version, error) {
	if err := s.checkBatch(ctx, puts, key, fn); err != nil {
		return 0, nil, err
	}
	o := &op{kind: opBatch, key: key, kb: []byte(key), fn: fn, puts: make([]*op, len(puts))}
	for i, p := range puts {
		o.puts[i] = &op{kind: opCAS, key: p.Key, kb: []byte(p.Key), expect: p.Expect, rec: newRecord(p.Value)}
	}
	v, err := s.submit(ctx, o)
	if err != nil {
		return 0, nil, err
	}
	vers := make([]backend.Version, len(puts))
	for i, p := range o.puts {
		vers[i] = p.ver
	}
	return v, vers, nil
}

// checkBatch validates an UpdateWith call before it is queued.
func (s *Store) checkBatch(ctx context.Context, puts []backend.Put, key string, fn backend.UpdateFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return s.errClosed
	}
	if fn == nil {
		return errors.New("bolt: UpdateWith with nil UpdateFunc")
	}
	if err := checkPuts(puts, key, s.caps); err != nil {
		return err
	}
	if s.readOnly {
		return s.errReadOnly
	}
	return nil
}

// checkPuts checks the keys and values of a batch: valid, distinct keys
// (key included) and values within the limit.
func checkPuts(puts []backend.Put, key string, caps backend.Capabilities) error {
	if err := backend.CheckKey(key, caps); err != nil {
		return err
	}
	seen := map[string]bool{key: true}
	for _, p := range puts {
		if err := backend.CheckKey(p.Key, caps); err != nil {
			return err
		}
		if seen[p.Key] {
			return fmt.Errorf("%w: %s appears twice in one batch", backend.ErrInvalidKey, quoteKey(p.Key))
		}
		seen[p.Key] = true
		if err := backend.CheckValue(p.Value, caps); err != nil {
			return err
		}
	}
	return nil
}

// applyBatch runs a batch op inside the group transaction. Everything that
// can fail the op is checked before the first write; an error while
// writing (the file itself failing) is returned and aborts the whole
// transaction, so no batch is ever half applied.
func (s *Store) applyBatch(data, meta *bbolt.Bucket, o *op) error {
	curs := make([]backend.Version, len(o.puts))
	for i, p := range o.puts {
		cur, err := lookup(data, p.kb)
		if err != nil {
			o.err = err
			return nil
		}
		if cur.Version != p.expect {
			o.err = s.conflict(p, cur)
			return nil
		}
		curs[i] = cur.Version
	}
	cur, err := lookup(data, o.kb)
	if err != nil {
		o.err = err
		return nil
	}
	value, panicked, err := s.callUpdate(o, cloneEntry(cur))
	skip := errors.Is(err, backend.ErrSkipUpdate)
	switch {
	case panicked:
		return nil
	case err != nil && !skip:
		o.err = fmt.Errorf("bolt: update %s: %w", quoteKey(o.key), err)
		return nil
	case !skip:
		if err := backend.CheckValue(value, s.caps); err != nil {
			o.err = fmt.Errorf("bolt: update %s: %w", quoteKey(o.key), err)
			return nil
		}
	}
	for i, p := range o.puts {
		if p.ver, err = s.write(data, meta, p, curs[i], p.rec); err != nil {
			return err
		}
	}
	if skip {
		o.ver = cur.Version
		return nil
	}
	o.ver, err = s.write(data, meta, o, cur.Version, newRecord(value))
	return err
}
