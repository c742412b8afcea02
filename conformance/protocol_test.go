package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/conformance"
)

// memHarness is a harness onto a fresh in-memory Space. (The memory
// adapter's own tests run the full suite on it; here it is the base of the
// fault-simulating wrapper.)
type memHarness struct{ space *memory.Space }

func (h memHarness) NewStore(context.Context) (backend.Store, error) { return h.space.Open(), nil }
func (h memHarness) Close()                                          {}

func newMemHarness(context.Context, *testing.T) (conformance.Harness, error) {
	return memHarness{space: memory.NewSpace(memory.Options{})}, nil
}

// TestProtocolFaulty runs the protocol over the fault-simulating wrapper:
// stale reads, silently replaced writes, errors before and after the fact,
// latency and a 1000-byte value limit. Everything must still arrive exactly
// once.
func TestProtocolFaulty(t *testing.T) {
	t.Parallel()
	conformance.RunProtocol(t, conformance.FaultyHarness(newMemHarness, conformance.DHTFaults))
}

// TestFaultyInjects checks that the fault-simulating wrapper really
// injects every fault it is configured for, so that TestProtocolFaulty
// cannot pass against a wrapper that does nothing.
func TestFaultyInjects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := conformance.DHTFaults
	cfg.MaxLatency = 0
	store := conformance.Faulty(memory.New(), cfg)
	defer store.Close()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", w%2) // four writers per key
			for range 300 {
				e, err := store.Get(ctx, key)
				if err != nil && !errors.Is(err, backend.ErrNotFound) {
					continue
				}
				_, _ = store.CompareAndPut(ctx, key, e.Version, []byte("v"))
			}
		})
	}
	wg.Wait()
	stale, lost, errs, ambiguous := conformance.FaultCounts(store)
	t.Logf("injected: %d stale reads, %d lost updates, %d errors, %d ambiguous writes", stale, lost, errs, ambiguous)
	require.Positive(t, stale, "no stale read injected")
	require.Positive(t, lost, "no lost update injected")
	require.Positive(t, errs, "no error injected")
	require.Positive(t, ambiguous, "no ambiguous write injected")
	require.Positive(t, conformance.Tally(store).SameVersion, "no same-version success injected")
	require.Equal(t, backend.Eventual, store.Capabilities().Consistency)
	require.Equal(t, 1000, store.Capabilities().MaxValueSize)
	_, err := store.CompareAndPut(ctx, "big", 0, make([]byte, 1001))
	require.ErrorIs(t, err, backend.ErrTooLarge)
}
