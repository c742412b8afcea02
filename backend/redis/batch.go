package redis

// UpdateWith (backend.Batcher): read the updated key (or take the entry
// this handle last saw there), run the caller's function locally, then one
// batchScript run that checks every version and writes everything or
// nothing.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickypub/stickypub/backend"
)

var _ backend.Batcher = (*Store)(nil)

// maxBatchAttempts bounds the runs of fn in one UpdateWith: when the
// updated key keeps moving between fn and the script, UpdateWith gives up
// with a *backend.ConflictError for it (core then takes its step-by-step
// path).
const maxBatchAttempts = 100

// Backoff between attempts after the second: a random pause below
// batchBackoffBase << (attempt-2), capped at batchBackoffMax, so that
// writers racing for one key spread out instead of all losing again.
const (
	batchBackoffBase = 100 * time.Microsecond
	batchBackoffMax  = 20 * time.Millisecond
)

// UpdateWith implements backend.Batcher. The updated key's entry comes
// from this handle's hint cache (the entry it last wrote or was told about
// there) or one HGETALL; fn runs locally on it; then one script run (one
// round trip, through the pipeline like every write) checks that every put
// is at its Expect and the key still at the version fn saw, and writes all
// of them. fn runs before the puts' versions are checked (they are checked
// by the script, after it). If the key moved, fn runs again on the entry
// the script returned, at most maxBatchAttempts times. On Redis Cluster
// the keys must share a hash slot, else the error matches
// backend.ErrNoBatch and nothing is sent. An error from fn is returned
// only when fn saw an entry read from the server: one it returns for a
// hinted entry makes UpdateWith read the key and ask fn again. An error
// matching ErrOutcomeUnknown means the script was sent and may have
// applied the whole batch.
func (s *Store) UpdateWith(ctx context.Context, puts []backend.Put, key string, fn backend.UpdateFunc) (backend.Version, []backend.Version, error) {
	const op = "update-with"
	if fn == nil {
		return 0, nil, errors.New("redis: UpdateWith with nil UpdateFunc")
	}
	if err := s.check(ctx, op, key); err != nil {
		return 0, nil, err
	}
	rkeys := make([]string, 0, len(puts)+1)
	seen := make(map[string]bool, len(puts)+1)
	seen[key] = true
	size := 0
	for _, p := range puts {
		if err := backend.CheckKey(p.Key, s.caps); err != nil {
			return 0, nil, fmt.Errorf("redis %s %q: %w", op, p.Key, err)
		}
		if seen[p.Key] {
			return 0, nil, fmt.Errorf("redis %s: %w: %q appears twice in one batch", op, backend.ErrInvalidKey, p.Key)
		}
		seen[p.Key] = true
		if err := backend.CheckValue(p.Value, s.caps); err != nil {
			return 0, nil, fmt.Errorf("redis %s %q: %w", op, p.Key, err)
		}
		rkeys = append(rkeys, s.prefix+p.Key)
		size += len(p.Value)
	}
	rkey := s.prefix + key
	rkeys = append(rkeys, rkey)
	if s.cluster && !sameSlot(rkeys) {
		return 0, nil, fmt.Errorf("redis %s %q: %w: its %d keys are in more than one cluster hash slot", op, key, backend.ErrNoBatch, len(rkeys))
	}

	// fresh: cur was read from the server (not taken from the hints), so
	// that an error from fn is fn's answer, not a stale hint's.
	cur, hinted := s.hints.Get(rkey)
	fresh := !hinted
	if fresh {
		var err error
		if cur, err = s.readEntry(ctx, key); err != nil {
			return 0, nil, err
		}
	}
	for attempt := 1; ; attempt++ {
		next, err := fn(cur)
		skip := errors.Is(err, backend.ErrSkipUpdate)
		if err != nil && !skip {
			if fresh {
				return 0, nil, err
			}
			// fn refused a hinted entry: ask it again about the current one.
			s.hints.Drop(rkey)
			if cur, err = s.readEntry(ctx, key); err != nil {
				return 0, nil, err
			}
			fresh = true
			continue
		}
		if !skip {
			if err := backend.CheckValue(next, s.caps); err != nil {
				return 0, nil, fmt.Errorf("redis %s %q: %w", op, key, err)
			}
			if next == nil {
				next = []byte{}
			}
		}
		r, err := s.runBatch(ctx, rkeys, puts, cur.Version, next, skip, size)
		if err != nil {
			s.hints.Drop(rkey)
			return 0, nil, err
		}
		switch r.outcome {
		case outcomeDone:
			if !skip {
				if r.keyVer <= cur.Version {
					return 0, nil, fmt.Errorf("redis %s %q on %s: %w: version went from %d to %d",
						op, key, s.where, backend.ErrCorrupt, cur.Version, r.keyVer)
				}
				cur = backend.Entry{Value: next, Version: r.keyVer}
			}
			s.hints.Put(rkey, cur)
			return r.keyVer, r.vers, nil
		case outcomePutConflict:
			p := puts[r.put]
			return 0, nil, conflict(p.Key, p.Expect, writeReply{version: r.current.Version, value: r.current.Value})
		}
		// outcomeKeyMoved: fn saw a stale entry (another writer, or a stale hint).
		s.hints.Put(rkey, r.current)
		fresh = true
		if attempt >= maxBatchAttempts {
			return 0, nil, fmt.Errorf("redis %s: %d attempts: %w", op, attempt,
				&backend.ConflictError{Key: key, Expected: cur.Version, Current: r.current, Known: true})
		}
		if err := batchBackoff(ctx, attempt); err != nil {
			return 0, nil, fmt.Errorf("redis %s %q: %w", op, key, err)
		}
		cur = r.current
	}
}

// readEntry reads key for UpdateWith: a missing key is the zero Entry.
func (s *Store) readEntry(ctx context.Context, key string) (backend.Entry, error) {
	e, err := s.Get(ctx, key)
	if errors.Is(err, backend.ErrNotFound) {
		return backend.Entry{}, nil
	}
	return e, err
}

// batchBackoff pauses before attempt+1 (not after the first attempt, which
// may have lost only to a stale hint) and returns ctx's error if it ends.
func batchBackoff(ctx context.Context, attempt int) error {
	if attempt < 2 {
		return ctx.Err()
	}
	d := min(batchBackoffBase<<min(attempt-2, 10), batchBackoffMax)
	t := time.NewTimer(rand.N(d))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runBatch runs batchScript once, through the pipeline when there is one.
func (s *Store) runBatch(ctx context.Context, rkeys []string, puts []backend.Put, keyVer backend.Version, next []byte, skip bool, size int) (batchReply, error) {
	const op = "update-with"
	key := rkeys[len(rkeys)-1][len(s.prefix):]
	token := s.tokenBase + strconv.FormatUint(s.tokenSeq.Add(1), 36)
	write, val := "1", next
	if skip {
		write, val = "0", []byte{}
	}
	args := make([]any, 0, 4+2*len(puts))
	args = append(args, token, strconv.FormatUint(uint64(keyVer), 10), write, val)
	for _, p := range puts {
		v := p.Value
		if v == nil {
			v = []byte{}
		}
		args = append(args, strconv.FormatUint(uint64(p.Expect), 10), v)
	}
	var res any
	var err error
	if s.batch == nil {
		res, err = batchScript.Run(ctx, s.client, rkeys, args...).Result()
	} else {
		c := &call{write: true, rkey: rkeys[len(rkeys)-1], script: batchScript, keys: rkeys, args: args, size: size + len(val)}
		cmd, sent, berr := s.batch.do(ctx, c, func(ctx context.Context) goredis.Cmder {
			return batchScript.Run(ctx, s.client, rkeys, args...)
		})
		if berr != nil {
			return batchReply{}, s.unsent(ctx, op, key, berr, sent)
		}
		res, err = cmd.(*goredis.Cmd).Result()
	}
	if err != nil {
		return batchReply{}, s.wrapWrite(ctx, op, key, err)
	}
	r, err := parseBatchReply(res, len(puts))
	if err != nil {
		return batchReply{}, fmt.Errorf("redis %s %q on %s: %w", op, key, s.where, err)
	}
	return r, nil
}
