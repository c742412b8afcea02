package conformance_test

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/conformance"
)

// declared makes a store declare another consistency level.
type declared struct {
	backend.Store
	level backend.Consistency
}

func (d declared) Capabilities() backend.Capabilities {
	c := d.Store.Capabilities()
	c.Consistency = d.level
	return c
}

// TestWeakLevels runs the suite against the lost-update adapter honestly
// declared as Eventual and as PerNodeCAS. Lost updates are allowed there,
// so the contract suite must accept them (logging the measured rate) and the
// protocol suite must still deliver everything exactly once. The test also
// asserts that updates really were lost during the run, so it cannot pass
// against an adapter that happens to behave.
func TestWeakLevels(t *testing.T) {
	for _, level := range []backend.Consistency{backend.Eventual, backend.PerNodeCAS} {
		t.Run(level.String(), func(t *testing.T) {
			var lost atomic.Int64
			mk := wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store {
				return declared{&lostUpdateStore{inner: inner, lost: &lost}, level}
			})
			// The engine beneath is the memory adapter, whose full
			// suites its own package runs: reduced under -race.
			conformance.RunContractWith(t, mk, conformance.ContractOptions{Reduced: true})
			conformance.RunProtocolWith(t, mk, conformance.ProtocolOptions{Reduced: true})
			require.Positive(t, lost.Load(), "the lost-update adapter lost no update: the weak-level run proved nothing")
			t.Logf("%d writes replaced a version their writer never saw; the suite passed regardless", lost.Load())
		})
	}
}
