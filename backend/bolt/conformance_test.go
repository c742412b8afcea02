package bolt_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/bolt"
	"github.com/stickypub/stickypub/conformance"
)

// boltHarness opens one bolt file per subtest. bbolt allows one open handle
// per file and process, so handles share it (conformance.SharedHarness) and
// a reopen really closes and reopens the file.
func boltHarness(maxValue int) conformance.MakeHarness {
	return func(_ context.Context, t *testing.T) (conformance.Harness, error) {
		path := filepath.Join(t.TempDir(), "conformance.db")
		return conformance.SharedHarness(func(context.Context) (backend.Store, error) {
			return bolt.Open(path, bolt.WithMaxValueSize(maxValue))
		}, nil), nil
	}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, boltHarness(256<<10))
}

// TestConformanceFaulty runs the protocol suite over bolt behind the
// fault-simulating wrapper (stale reads, replaced writes, injected errors,
// a 1000-byte value limit).
//
// Bolt's Concurrent100x100 runs unfaulted in TestConformance and the
// wrapper's runs over the memory adapter in conformance's
// TestProtocolFaulty; here, under -race (conformance.ReducedSizes), the
// 100 publishers send 20 messages each: still thousands of contended
// writes, so every fault kind has its chances (the wrapper injects each at
// its first). Every other subtest runs at full size (a smaller workload
// could leave a fault kind without a chance, which fails the subtest).
func TestConformanceFaulty(t *testing.T) {
	var o conformance.ProtocolOptions
	if conformance.ReducedSizes() {
		o.HeavyMessages = 20
	}
	conformance.RunProtocolWith(t, conformance.FaultyHarness(boltHarness(bolt.DefaultMaxValueSize), conformance.DHTFaults), o)
}
