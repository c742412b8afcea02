package libp2p

import (
	"context"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// quiet is a logger that drops everything (closed nodes make noise).
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testCtx returns a context bounded by d (and by the test's own deadline).
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 5*time.Second; left < d {
			d = max(left, time.Second)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newTestSwarm starts a loopback swarm of n nodes that the test closes.
func newTestSwarm(t *testing.T, ctx context.Context, n int, tweak func(*SwarmOptions)) *Swarm {
	t.Helper()
	o := SwarmOptions{Network: "test-" + randomPrefix(), Nodes: n, Logger: quiet}
	if tweak != nil {
		tweak(&o)
	}
	sw, err := NewSwarm(ctx, o)
	require.NoError(t, err, "NewSwarm")
	t.Cleanup(func() {
		refused := sw.RefusedDials()
		require.NoError(t, sw.Close())
		require.Zero(t, refused, "swarm nodes tried to dial outside loopback")
	})
	return sw
}

// openStore opens a client handle on sw that the test closes.
func openStore(t *testing.T, ctx context.Context, sw *Swarm, tweak func(*Options)) *Store {
	t.Helper()
	o := sw.Options()
	o.Logger = quiet
	if tweak != nil {
		tweak(&o)
	}
	st, err := Open(ctx, o)
	require.NoError(t, err, "Open")
	t.Cleanup(func() {
		refused := st.Stats().RefusedDials
		_ = st.Close()
		require.Zero(t, refused, "a client tried to dial outside loopback")
	})
	return st
}

func backendVersion(v uint64) backend.Version { return backend.Version(v) }

func memDatastore() ds.Batching { return dssync.MutexWrap(ds.NewMapDatastore()) }
