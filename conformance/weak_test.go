package conformance_test

import (
	"testing"

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
// so the suite must pass, logging the measured lost-update rate (run with
// -v to see it) instead of failing.
func TestWeakLevels(t *testing.T) {
	for _, level := range []backend.Consistency{backend.Eventual, backend.PerNodeCAS} {
		t.Run(level.String(), func(t *testing.T) {
			conformance.Run(t, wrapHarness(func(inner backend.Store, _ *wrapShared) backend.Store {
				return declared{&lostUpdateStore{inner}, level}
			}))
		})
	}
}
