package conformance_test

import (
	"context"
	"testing"

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
