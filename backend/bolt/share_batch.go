package bolt

// UpdateWith (backend.Batcher) on a shared file. In the owner's process it
// is Store.UpdateWith. The other processes run the update function here and
// send the whole batch in one request (wireBatch), which the owner applies
// as one op of its group commit after checking that the updated key still
// holds what the function saw: one round trip and one commit per batch.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/backoff"
)

var _ backend.Batcher = (*Shared)(nil)

// UpdateWith implements backend.Batcher. In the owner's process fn runs
// inside the group commit, as with Store.UpdateWith. In the others it runs
// here, on the entry this handle last wrote or read for key (a hint; the
// owner checks it), else on one read through the owner, so a caller that
// keeps updating its own key pays one round trip per batch. If key moved,
// fn runs again on its current entry: fn may run several times.
func (s *Shared) UpdateWith(ctx context.Context, puts []backend.Put, key string, fn backend.UpdateFunc) (backend.Version, []backend.Version, error) {
	if err := s.check(ctx, key); err != nil {
		return 0, nil, err
	}
	if fn == nil {
		return 0, nil, errors.New("bolt: UpdateWith with nil UpdateFunc")
	}
	if err := checkPuts(puts, key, s.caps); err != nil {
		return 0, nil, err
	}
	for {
		a, _, err := s.current(ctx)
		if err != nil {
			return 0, nil, err
		}
		if o, ok := a.(*ownerAtt); ok {
			v, vers, err := o.st.UpdateWith(ctx, puts, key, fn)
			if !errors.Is(err, backend.ErrClosed) || s.isClosed() {
				return v, vers, err
			}
			s.drop(a) // the owner is closing: attach again
			continue
		}
		return s.batchRemote(ctx, puts, key, fn)
	}
}

// batchRemote runs fn here and sends the batch; a conflict on key (it moved
// since fn saw it) runs fn again on the entry the owner returned.
func (s *Shared) batchRemote(ctx context.Context, puts []backend.Put, key string, fn backend.UpdateFunc) (backend.Version, []backend.Version, error) {
	// fresh: cur came from the owner (a read or a refusal), not from the
	// hints, so an error from fn is fn's answer, not a stale hint's.
	cur, hinted := s.hints.Get(key)
	fresh := !hinted
	read := func() (err error) {
		if cur, err = s.Get(ctx, key); errors.Is(err, backend.ErrNotFound) {
			cur, err = backend.Entry{}, nil
		}
		fresh = true
		return err
	}
	if fresh {
		if err := read(); err != nil {
			return 0, nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		val, err := fn(cloneEntry(cur))
		skip := errors.Is(err, backend.ErrSkipUpdate)
		if err != nil && !skip {
			if fresh {
				return 0, nil, fmt.Errorf("bolt: update %s: %w", quoteKey(key), err)
			}
			// fn refused a hinted entry (a caller's update can depend on
			// more than the key, e.g. blobs the entry names): ask it again
			// about the current one.
			s.hints.Drop(key)
			if err := read(); err != nil {
				return 0, nil, err
			}
			continue
		}
		if !skip {
			if val == nil {
				val = []byte{}
			}
			if err := backend.CheckValue(val, s.caps); err != nil {
				return 0, nil, fmt.Errorf("bolt: update %s: %w", quoteKey(key), err)
			}
		}
		req := batchRequest(puts, key, cur, val, skip)
		v, vers, err := s.sendBatch(ctx, req)
		var ce *backend.ConflictError
		if errors.As(err, &ce) && ce.Key == key {
			s.hints.Drop(key)
			stale := !fresh // a stale hint, not contention: no pause
			if ce.Known {
				cur, fresh = ce.Current, true
			} else if err := read(); err != nil {
				return 0, nil, err
			}
			if !stale {
				if err := backoff.Jitter(ctx, attempt); err != nil {
					return 0, nil, err
				}
			}
			continue
		}
		switch {
		case err != nil:
			s.hints.Drop(key)
		case !skip:
			s.hints.Put(key, backend.Entry{Value: val, Version: v})
		default:
			s.hints.Put(key, cur)
		}
		return v, vers, err
	}
}

// batchRequest builds the wireBatch request of a batch whose update saw cur.
func batchRequest(puts []backend.Put, key string, cur backend.Entry, val []byte, skip bool) *request {
	sum := sha256.Sum256(cur.Value)
	req := &request{Op: wireBatch, Key: key, Expect: uint64(cur.Version), Sum: sum[:], Value: val, Skip: skip,
		Puts: make([]wirePut, len(puts))}
	for i, p := range puts {
		req.Puts[i] = wirePut{Key: p.Key, Expect: uint64(p.Expect), Value: p.Value}
	}
	return req
}

// sendBatch sends req to the owner, attaching again when the owner went
// away before it was sent. A batch whose answer was lost with the owner is
// sent again only when its key shows it was certainly not applied (the
// batch is atomic); otherwise the outcome is unknown and the error matches
// backend.ErrUnavailable.
func (s *Shared) sendBatch(ctx context.Context, req *request) (backend.Version, []backend.Version, error) {
	for {
		a, _, err := s.current(ctx)
		if err != nil {
			return 0, nil, err
		}
		var (
			v    backend.Version
			vers []backend.Version
		)
		if o, ok := a.(*ownerAtt); ok { // this process became the owner
			var raw []uint64
			v, raw, err = o.serveBatch(ctx, req)
			vers = versions(raw)
		} else {
			v, vers, err = a.(*remoteAtt).batch(ctx, req)
		}
		if !s.settle(a, err) {
			return v, vers, err
		}
		if errors.Is(err, errOutcomeUnknown) {
			e, gerr := s.Get(ctx, req.Key)
			if (errors.Is(gerr, backend.ErrNotFound) && req.Expect == 0) || (gerr == nil && e.Version == backend.Version(req.Expect)) {
				continue // certainly not applied: send it again
			}
			return 0, nil, fmt.Errorf("bolt %s: the owner went away during a batch update of %s, whose outcome is unknown: %w",
				s.path, quoteKey(req.Key), backend.ErrUnavailable)
		}
	}
}

// batch sends one wireBatch request.
func (r *remoteAtt) batch(ctx context.Context, req *request) (backend.Version, []backend.Version, error) {
	rep, err := r.call(ctx, req)
	if err != nil {
		return 0, nil, err
	}
	if rep.Err != nil {
		return 0, nil, decodeError(ctx, rep.Err)
	}
	return backend.Version(rep.Version), versions(rep.Versions), nil
}

// versions converts the versions of a wireBatch reply.
func versions(raw []uint64) []backend.Version {
	vers := make([]backend.Version, len(raw))
	for i, v := range raw {
		vers[i] = backend.Version(v)
	}
	return vers
}

// serveBatch applies a wireBatch request to the owner's store: the puts,
// and the update of req.Key to req.Value (or none, with Skip) if the key
// still holds the version and the value (by SHA-256) the client's update
// function saw; else a conflict carrying the current entry.
func (o *ownerAtt) serveBatch(ctx context.Context, req *request) (backend.Version, []uint64, error) {
	puts := make([]backend.Put, len(req.Puts))
	for i, p := range req.Puts {
		puts[i] = backend.Put{Key: p.Key, Expect: backend.Version(p.Expect), Value: orEmpty(p.Value)}
	}
	expect, value := backend.Version(req.Expect), orEmpty(req.Value)
	v, vers, err := o.st.UpdateWith(ctx, puts, req.Key, func(cur backend.Entry) ([]byte, error) {
		if sum := sha256.Sum256(cur.Value); cur.Version != expect || !bytes.Equal(sum[:], req.Sum) {
			return nil, &backend.ConflictError{Key: req.Key, Expected: expect, Current: cur, Known: true}
		}
		if req.Skip {
			return nil, backend.ErrSkipUpdate
		}
		return value, nil
	})
	out := make([]uint64, len(vers))
	for i, pv := range vers {
		out[i] = uint64(pv)
	}
	return v, out, err
}
