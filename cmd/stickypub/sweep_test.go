package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend/bolt"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/forge"
)

// TestSweep: a segment that a publisher which crashed long ago left in the
// bolt file is deleted by "stickypub sweep"; what was published is kept
// and still delivered.
func TestSweep(t *testing.T) {
	e := newEnv(t)
	e.ok("publish", "demo", "a", "b")

	// The crash: written straight into the file while no process holds it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := bolt.Open(filepath.Join(e.dir, "stickypub.db"))
	require.NoError(t, err)
	id, err := core.GenerateIdentity()
	require.NoError(t, err)
	f, err := forge.New(st, id, core.OrderDefault)
	require.NoError(t, err)
	key, err := f.CrashedSegment(ctx, "demo", time.Now().Add(-3*time.Hour), []byte("lost"))
	require.NoError(t, err)
	require.NoError(t, f.Close(ctx))
	require.NoError(t, st.Close())

	kept := decode[jsonSweep](t, e.ok("sweep", "--json", "--grace", "4h", "demo"))
	require.Equal(t, []string{"demo"}, kept.Topics)
	require.Equal(t, 1, kept.Kept, "younger than --grace: %+v", kept)
	require.Zero(t, kept.Deleted)
	require.Equal(t, kept.Segments, kept.Reachable+1)
	swept := decode[jsonSweep](t, e.ok("sweep", "--json", "demo"))
	require.Equal(t, 1, swept.Deleted, "%+v", swept)
	require.Equal(t, kept.Reachable, swept.Reachable)
	require.Contains(t, e.ok("sweep", "demo"), "0 orphans deleted")

	st, err = bolt.Open(filepath.Join(e.dir, "stickypub.db"))
	require.NoError(t, err)
	_, err = st.Get(ctx, key)
	require.Error(t, err, "the orphaned segment is still stored")
	require.NoError(t, st.Close())
	require.Len(t, splitLines(e.ok("subscribe", "--from-start", "--count", "2", "demo")), 2)
}

// splitLines splits output into its lines.
func splitLines(out string) []string {
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}
