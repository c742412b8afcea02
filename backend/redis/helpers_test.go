package redis

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

// testTimeout bounds every test's context.
const testTimeout = 60 * time.Second

// testCtx returns a context that ends with the test or after testTimeout.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// optionsFor returns Options reaching srv under prefix.
func optionsFor(srv *redistest.Server, prefix string) Options {
	return Options{
		Addrs:       srv.Addrs,
		Cluster:     srv.Cluster,
		Username:    srv.Username,
		Password:    srv.Password,
		DB:          srv.DB,
		TLS:         srv.TLS,
		Prefix:      prefix,
		DialTimeout: time.Second,
	}
}

// openStore opens a Store on srv under a fresh prefix; the store is closed
// and its keys deleted when the test ends. mods adjust the options.
func openStore(t testing.TB, srv *redistest.Server, mods ...func(*Options)) *Store {
	t.Helper()
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, srv, prefix)
	o := optionsFor(srv, prefix)
	for _, m := range mods {
		m(&o)
	}
	s, err := Open(testCtx(t), o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// anyStore opens a Store on whatever Redis redistest.Require finds.
func anyStore(t testing.TB, mods ...func(*Options)) (*Store, *redistest.Server) {
	t.Helper()
	srv := redistest.Require(t)
	return openStore(t, srv, mods...), srv
}

// mustPut writes value under key expecting version expect and returns the
// new version.
func mustPut(t testing.TB, s backend.Store, key string, expect backend.Version, value string) backend.Version {
	t.Helper()
	v, err := s.CompareAndPut(testCtx(t), key, expect, []byte(value))
	require.NoError(t, err)
	require.Greater(t, v, expect)
	return v
}

// recvVersion waits for a notification on ch.
func recvVersion(t testing.TB, ch <-chan backend.Version, within time.Duration) backend.Version {
	t.Helper()
	select {
	case v, ok := <-ch:
		require.True(t, ok, "watch channel closed")
		return v
	case <-time.After(within):
		t.Fatalf("no notification within %s", within)
		return 0
	}
}

// mustClient returns a go-redis client for addr with short dials, closed
// when the test ends. Its pool is large enough that go-redis keeps dialing
// (and logging) for every failed command of a test.
func mustClient(t testing.TB, addr string) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{
		Addr: addr, DialTimeout: 200 * time.Millisecond, DialerRetries: 2, PoolSize: 100,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
