package bolt

// Listing keys by prefix (backend.Lister): one read transaction per page,
// directly (Store) or through the file's owner process (Shared).

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	_ backend.Lister = (*Store)(nil)
	_ backend.Lister = (*Shared)(nil)
)

// listPage is the number of keys List reads per transaction.
const listPage = 512

// List implements backend.Lister: keys in byte order, a page per read
// transaction (fn runs outside it, so it may use the store and a long
// listing never pins an old snapshot of the file). Each page resumes after
// the last key of the one before, so a key is never passed twice, and a
// key that exists throughout is never skipped.
func (s *Store) List(ctx context.Context, prefix string, fn backend.ListFunc) error {
	return listPages(ctx, prefix, s.listPage, fn)
}

// listPages runs a listing on page, which returns the keys after the key
// after (nil: from the start).
func listPages(ctx context.Context, prefix string, page func(ctx context.Context, prefix string, after []byte) ([]string, error), fn backend.ListFunc) error {
	var after []byte
	for {
		keys, err := page(ctx, prefix, after)
		if err != nil || len(keys) == 0 {
			return err
		}
		after = []byte(keys[len(keys)-1])
		if err := fn(keys); err != nil {
			return err
		}
		if len(keys) < listPage {
			return nil
		}
	}
}

// listPage returns up to listPage keys that start with prefix and sort
// after the key after (nil: from the first), in one read transaction.
func (s *Store) listPage(ctx context.Context, prefix string, after []byte) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, s.errClosed
	}
	pre := []byte(prefix)
	var keys []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		data := tx.Bucket(s.dataName)
		if data == nil {
			return fmt.Errorf("%w: the %q bucket is missing", backend.ErrCorrupt, dataBucketName)
		}
		c := data.Cursor()
		k, _ := c.Seek(pre)
		if after != nil {
			k, _ = c.Seek(after)
			if bytes.Equal(k, after) {
				k, _ = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, pre) && len(keys) < listPage; k, _ = c.Next() {
			keys = append(keys, string(k))
		}
		return nil
	})
	switch {
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return nil, s.errClosed
	case err != nil:
		return nil, fmt.Errorf("bolt: list %s: %w", quoteKey(prefix), err)
	}
	return keys, nil
}

// List implements backend.Lister through the file's owner: a page per
// request, resuming after the last key passed, so a new owner (after the
// old one went away) continues the listing where it stopped.
func (s *Shared) List(ctx context.Context, prefix string, fn backend.ListFunc) error {
	return listPages(ctx, prefix, func(ctx context.Context, prefix string, after []byte) ([]string, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.isClosed() {
			return nil, s.errClosed
		}
		for {
			a, _, err := s.current(ctx)
			if err != nil {
				return nil, err
			}
			keys, err := a.list(ctx, prefix, after)
			if !s.settle(a, err) {
				return keys, err
			}
		}
	}, fn)
}

func (o *ownerAtt) list(ctx context.Context, prefix string, after []byte) ([]string, error) {
	return o.st.listPage(ctx, prefix, after)
}

func (r *remoteAtt) list(ctx context.Context, prefix string, after []byte) ([]string, error) {
	rep, err := r.call(ctx, &request{Op: wireList, Key: prefix, Value: after})
	if err != nil {
		return nil, err
	}
	if rep.Err != nil {
		return nil, decodeError(ctx, rep.Err)
	}
	return rep.Keys, nil
}
