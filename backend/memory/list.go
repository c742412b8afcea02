package memory

// Listing keys by prefix (backend.Lister).

import (
	"context"
	"slices"
	"strings"

	"github.com/stickypub/stickypub/backend"
)

var _ backend.Lister = (*Store)(nil)

// listPage is the number of keys List passes to its callback at a time.
const listPage = 256

// List implements backend.Lister. It takes one snapshot of the matching
// keys under the Space's lock, then passes them to fn in sorted pages
// without holding it (fn may use the store).
func (s *Store) List(ctx context.Context, prefix string, fn backend.ListFunc) error {
	sp := s.space
	sp.mu.Lock()
	if s.closed {
		sp.mu.Unlock()
		return backend.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		sp.mu.Unlock()
		return err
	}
	var keys []string
	for k := range sp.entries {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sp.mu.Unlock()
	slices.Sort(keys)
	for len(keys) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(keys), listPage)
		if err := fn(slices.Clone(keys[:n])); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}
