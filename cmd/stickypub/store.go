package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bolt"
	"github.com/stickypub/stickypub/backend/redis"
	"github.com/stickypub/stickypub/core"
)

// openStore opens the store named by uri. A bolt file is opened shared
// (bolt.Shared, the URI parameter share=1, unless the URI sets share
// itself), so that several stickypub processes can use it at once; every
// other scheme goes to its adapter through backend.Open. With readOnlyOK, a
// bolt file this user may not write is opened read-only instead (readOnly
// is then true).
func openStore(ctx context.Context, uri string, logger *slog.Logger, readOnlyOK bool) (st backend.Store, readOnly bool, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %s: %v", backend.ErrBadURI, core.QuoteInput(uri), pathErr(err))
	}
	switch u.Scheme {
	case bolt.Scheme:
	case redis.Scheme, redis.SchemeTLS, redis.SchemeCluster, redis.SchemeClusterTLS:
		// Typed, so that go-redis's own log lines (failed dials, …) go to
		// this command's logger, rate-limited, instead of raw to stderr.
		o, err := redis.ParseURI(u)
		if err != nil {
			return nil, false, err
		}
		o.Logger = logger
		st, err := redis.Open(ctx, o)
		if err != nil {
			return nil, false, err // not st: a nil *Store in a non-nil interface
		}
		return st, false, nil
	default:
		st, err := backend.Open(ctx, uri)
		return st, false, err
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %s: query: %v", backend.ErrBadURI, u.Redacted(), err)
	}
	shared := *u
	if !q.Has("share") && !q.Has("readonly") {
		q.Set("share", "1")
		shared.RawQuery = q.Encode()
	}
	s, err := bolt.OpenURI(ctx, &shared, bolt.WithLogger(logger))
	if err == nil {
		return s, false, nil
	}
	if !readOnlyOK || !errors.Is(err, os.ErrPermission) {
		return nil, false, err
	}
	q.Del("share")
	q.Set("readonly", "true")
	ro := *u
	ro.RawQuery = q.Encode()
	rs, rerr := bolt.OpenURI(ctx, &ro)
	if rerr != nil {
		return nil, false, alsoErr(err, rerr)
	}
	logger.Info("no write permission: the bolt file is open read-only", "path", rs.(*bolt.Store).Path())
	return rs, true, nil
}
