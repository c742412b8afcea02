package bolt

// Listing keys by prefix (backend.Lister), one read transaction per page.

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/stickypub/stickypub/backend"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var _ backend.Lister = (*Store)(nil)

// listPage is the number of keys List reads per transaction.
const listPage = 512

// List implements backend.Lister: keys in byte order, a page per read
// transaction (fn runs outside it, so it may use the store and a long
// listing never pins an old snapshot of the file). Each page resumes after
// the last key of the one before, so a key is never passed twice, and a
// key that exists throughout is never skipped.
func (s *Store) List(ctx context.Context, prefix string, fn backend.ListFunc) error {
	pre := []byte(prefix)
	var after []byte // the last key passed, nil before the first page
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.closed.Load() {
			return s.errClosed
		}
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
			return s.errClosed
		case err != nil:
			return fmt.Errorf("bolt: list %s: %w", quoteKey(prefix), err)
		case len(keys) == 0:
			return nil
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
