package conformance_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/conformance"
)

// TestFaultySameVersion: with SameVersionRate 1, a writer that lost a race
// by one version is told it won, at the winner's version; reads return the
// loser's value under that version, and either writer can write on top.
func TestFaultySameVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store := conformance.Faulty(memory.New(), conformance.FaultConfig{SameVersionRate: 1})
	defer store.Close()
	v1, err := store.CompareAndPut(ctx, "k", 0, []byte("base"))
	require.NoError(t, err)
	va, err := store.CompareAndPut(ctx, "k", v1, []byte("writer A"))
	require.NoError(t, err)
	vb, err := store.CompareAndPut(ctx, "k", v1, []byte("writer B"))
	require.NoError(t, err, "the loser must be told it succeeded")
	require.Equal(t, va, vb, "both writers must be told the same version")
	e, err := store.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, va, e.Version)
	require.Equal(t, "writer B", string(e.Value), "the loser's value replaced the winner's")
	require.Equal(t, 1, conformance.Tally(store).SameVersion)

	// Both writers hold version va: the first to write on top wins, the
	// other then conflicts and sees the new state.
	v3, err := store.CompareAndPut(ctx, "k", va, []byte("A again"))
	require.NoError(t, err)
	require.Greater(t, v3, va)
	_, err = store.CompareAndPut(ctx, "k", vb, []byte("B again"))
	require.ErrorIs(t, err, backend.ErrConflict)
	cur, ok := backend.CurrentEntry(err)
	require.True(t, ok)
	require.Equal(t, v3, cur.Version)
	require.Equal(t, "A again", string(cur.Value))
}

// TestFaultyExpiry: with RecordLifetime, a record not written for longer
// than the lifetime reads as absent and can only be created again; one
// re-written in time stays. The lifetime is declared in Capabilities.
func TestFaultyExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	store := conformance.Faulty(memory.New(), conformance.FaultConfig{RecordLifetime: time.Hour, Now: clock})
	defer store.Close()
	require.Equal(t, time.Hour, store.Capabilities().RecordLifetime)

	vKeep, err := store.CompareAndPut(ctx, "keep", 0, []byte("refreshed"))
	require.NoError(t, err)
	vGone, err := store.CompareAndPut(ctx, "gone", 0, []byte("forgotten"))
	require.NoError(t, err)
	advance(40 * time.Minute)
	// Refresh "keep" by re-writing the same bytes.
	vKeep, err = store.CompareAndPut(ctx, "keep", vKeep, []byte("refreshed"))
	require.NoError(t, err)
	advance(40 * time.Minute)

	e, err := store.Get(ctx, "keep")
	require.NoError(t, err, "a record refreshed within its lifetime must stay")
	require.Equal(t, vKeep, e.Version)
	_, err = store.Get(ctx, "gone")
	require.ErrorIs(t, err, backend.ErrNotFound, "a record not refreshed for longer than its lifetime must be gone")
	_, err = store.CompareAndPut(ctx, "gone", vGone, []byte("late update"))
	require.ErrorIs(t, err, backend.ErrConflict)
	cur, ok := backend.CurrentEntry(err)
	require.True(t, ok)
	require.Zero(t, cur.Version, "an expired record is reported absent")
	v, err := store.CompareAndPut(ctx, "gone", 0, []byte("created again"))
	require.NoError(t, err)
	require.Greater(t, v, vGone, "versions are never reused, not even after expiry")
	e, err = store.Get(ctx, "gone")
	require.NoError(t, err)
	require.Equal(t, "created again", string(e.Value))
	require.Positive(t, conformance.Tally(store).Expired)
}
