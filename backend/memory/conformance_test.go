package memory_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/backend/memory"
	"github.com/stickypub/stickypub/conformance"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness is the conformance harness of this adapter: one Space per
// subtest, a new handle on it for every NewStore. This is all an adapter
// needs to run the shared suite.
type harness struct{ space *memory.Space }

func (h harness) NewStore(context.Context) (backend.Store, error) { return h.space.Open(), nil }

// Close has nothing to release: the Space is garbage once the handles are.
func (h harness) Close() {}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(context.Context, *testing.T) (conformance.Harness, error) {
		// Small limits keep the size tests cheap and exercise them exactly.
		return harness{memory.NewSpace(memory.Options{MaxKeySize: 256, MaxValueSize: 64 << 10})}, nil
	})
}

func TestConformanceDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the default limits are covered by TestConformance's smaller ones under -short")
	}
	conformance.RunContract(t, func(context.Context, *testing.T) (conformance.Harness, error) {
		return harness{memory.NewSpace(memory.Options{})}, nil
	})
}
