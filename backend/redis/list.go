package redis

// Listing keys by prefix (backend.Lister): SCAN with the adapter's prefix,
// on every master of a Cluster, tombstones left out.

import (
	"context"
	"errors"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickypub/stickypub/backend"
)

var _ backend.Lister = (*Store)(nil)

// listCount is the COUNT hint of each SCAN call.
const listCount = 1000

// List implements backend.Lister with SCAN MATCH <prefix>* (on a Cluster,
// on every master). SCAN's guarantee is the contract's: a key present for
// the whole scan is returned at least once, possibly more often. Each page
// is checked with one pipeline of HEXISTS, so that deleted keys (the
// tombstones Delete leaves) are not listed. A failover or slot migration
// during the listing may hide keys from it (they are listed again by the
// next call).
func (s *Store) List(ctx context.Context, prefix string, fn backend.ListFunc) error {
	if s.closed.Load() {
		return backend.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	match := globEscape(s.prefix+prefix) + "*"
	var (
		mu      sync.Mutex // serialises fn across a Cluster's masters
		stopped error      // fn's error: no further call (guarded by mu)
	)
	scan := func(ctx context.Context, c goredis.Cmdable) error {
		var cursor uint64
		for {
			if s.closed.Load() {
				return backend.ErrClosed
			}
			keys, next, err := c.Scan(ctx, cursor, match, listCount).Result()
			if err != nil {
				return s.wrap(ctx, "list", prefix, err)
			}
			live, err := s.live(ctx, c, keys)
			if err != nil {
				return s.wrap(ctx, "list", prefix, err)
			}
			if len(live) > 0 {
				mu.Lock()
				if err = stopped; err == nil {
					if err = fn(live); err != nil {
						stopped = err
						cancel(err)
					}
				}
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	var err error
	if cc, ok := s.client.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error { return scan(ctx, m) })
	} else {
		err = scan(ctx, s.client)
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause // fn's own error, not the cancellation it caused elsewhere
	}
	return err
}

// live returns the keys (adapter prefix removed) whose entry hash holds a
// value: not tombstones, not keys deleted since the scan saw them, not
// foreign keys of another type.
func (s *Store) live(ctx context.Context, c goredis.Cmdable, rkeys []string) ([]string, error) {
	if len(rkeys) == 0 {
		return nil, nil
	}
	pipe := c.Pipeline()
	cmds := make([]*goredis.BoolCmd, len(rkeys))
	for i, k := range rkeys {
		cmds[i] = pipe.HExists(ctx, k, "d")
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	out := make([]string, 0, len(rkeys))
	for i, cmd := range cmds {
		ok, err := cmd.Result()
		if err != nil {
			if isWrongType(err) {
				continue
			}
			return nil, err
		}
		if ok && strings.HasPrefix(rkeys[i], s.prefix) {
			out = append(out, rkeys[i][len(s.prefix):])
		}
	}
	return out, nil
}

// isWrongType reports a WRONGTYPE reply (a key of another type under the
// prefix: not one of the adapter's entries).
func isWrongType(err error) bool { return strings.HasPrefix(err.Error(), "WRONGTYPE") }

// globEscape escapes the characters SCAN MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
