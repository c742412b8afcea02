package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bolt"
)

// openStore opens the store named by uri. A bolt file is opened shared
// (see sharedBolt), so that several stickypub processes can use it at once;
// every other scheme goes to its adapter through backend.Open.
func openStore(ctx context.Context, uri string, logger *slog.Logger) (backend.Store, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", backend.ErrBadURI, uri, err)
	}
	if u.Scheme == bolt.Scheme {
		s, err := openSharedBolt(ctx, uri, u, logger)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return backend.Open(ctx, uri)
}
