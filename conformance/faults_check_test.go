package conformance

// The per-subtest fault check: FirstAlways injects each kind at its first
// opportunity, and missingFaults names the kinds that never fired.

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
)

// tiny rates: without FirstAlways, nothing is injected in a few calls.
var tinyRates = FaultConfig{Seed: 7, StaleReadRate: 1e-12, LostUpdateRate: 1e-12, SameVersionRate: 1e-12, ErrorRate: 1e-12, AmbiguousRate: 1e-12}

// firstChances runs one opportunity of each kind on store, in an order
// where each comes once: an error (the first call), an ambiguous write (the
// first write), a stale read (the key's older state is known), a lost
// update (a create that lost to the first write) and a same-version success
// (a write expecting the state before the latest write).
func firstChances(t *testing.T, store backend.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = store.Get(ctx, "k")
	_, _ = store.CompareAndPut(ctx, "k", 0, []byte("one"))
	_, _ = store.Get(ctx, "k")
	_, _ = store.CompareAndPut(ctx, "k", 0, []byte("two"))
	e, err := store.Get(ctx, "k")
	require.NoError(t, err)
	_, _ = store.CompareAndPut(ctx, "k", e.Version-1, []byte("three"))
}

func TestFirstAlwaysInjectsEachKindAtItsFirstChance(t *testing.T) {
	cfg := tinyRates
	cfg.FirstAlways = true
	store := Faulty(memory.New(), cfg)
	defer store.Close()
	firstChances(t, store)
	require.Equal(t, FaultTally{Stale: 1, Lost: 1, Errors: 1, Ambiguous: 1, SameVersion: 1}, Tally(store))
	opps := Opportunities(store)
	require.Positive(t, opps.Stale)
	require.Positive(t, opps.Lost)
	require.Positive(t, opps.SameVersion)
	require.Equal(t, 6, opps.Errors, "every Get and CompareAndPut")

	plain := Faulty(memory.New(), tinyRates)
	defer plain.Close()
	firstChances(t, plain)
	require.Equal(t, FaultTally{}, Tally(plain), "at 1e-12 nothing is injected without FirstAlways")
}

func TestMissingFaultsNamesTheKindsThatNeverFired(t *testing.T) {
	h := faultyHarness{cfg: DHTFaults, count: &faultCounter{}}
	h.count.opportunity(faultStale)
	h.count.injected(faultStale)
	h.count.opportunity(faultLost)
	missing := h.missingFaults(map[faultKind]string{faultSameVersion: "exempt"})
	require.Len(t, missing, 3)
	require.Contains(t, missing[0], "lost update")
	require.Contains(t, missing[0], ": 1 opportunities")
	require.Contains(t, missing[1], "error")
	require.Contains(t, missing[2], "ambiguous write")

	off := DHTFaults
	off.ErrorRate, off.AmbiguousRate, off.LostUpdateRate = 0, 0, 0
	require.Empty(t, faultyHarness{cfg: off, count: h.count}.missingFaults(map[faultKind]string{faultSameVersion: "exempt"}),
		"a kind whose rate is zero is not required")
}
