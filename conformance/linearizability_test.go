package conformance

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"

	"github.com/stickypub/stickypub/backend"
)

// The model is checked on small hand-written histories, including the
// unknown-outcome cases that the in-memory adapters never produce.

func get(call, ret int64, found bool, val string, ver backend.Version) porcupine.Operation {
	return porcupine.Operation{
		Input:  linInput{Key: "k", Kind: linGet},
		Output: linOutput{Found: found, Value: val, Version: ver},
		Call:   call, Return: ret,
	}
}

func cas(call, ret int64, expect backend.Version, val string, out linOutput) porcupine.Operation {
	return porcupine.Operation{
		Input:  linInput{Key: "k", Kind: linCAS, Expect: expect, Value: val},
		Output: out,
		Call:   call, Return: ret,
	}
}

func ok(v backend.Version) linOutput { return linOutput{OK: true, Version: v} }

func conflict(val string, v backend.Version) linOutput {
	return linOutput{Known: true, Value: val, Version: v}
}

var (
	unknownConflict = linOutput{}
	unknownOutcome  = linOutput{Unknown: true}
)

func TestLinModel(t *testing.T) {
	const never = math.MaxInt64
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"sequential", []porcupine.Operation{
			get(0, 1, false, "", 0),
			cas(2, 3, 0, "a", ok(5)),
			get(4, 5, true, "a", 5),
			cas(6, 7, 5, "b", ok(9)),
			cas(8, 9, 5, "c", conflict("b", 9)),
			cas(10, 11, 0, "d", unknownConflict),
			get(12, 13, true, "b", 9),
		}, true},
		{"concurrent writes, either order", []porcupine.Operation{
			cas(0, 10, 0, "a", ok(1)),
			cas(1, 9, 0, "b", conflict("a", 1)),
			get(2, 8, true, "a", 1),
		}, true},
		{"lost update: two successes from one version", []porcupine.Operation{
			cas(0, 1, 0, "a", ok(1)),
			cas(2, 10, 1, "b", ok(2)),
			cas(3, 9, 1, "c", ok(3)),
		}, false},
		{"stale read", []porcupine.Operation{
			cas(0, 1, 0, "a", ok(1)),
			cas(2, 3, 1, "b", ok(2)),
			get(4, 5, true, "a", 1),
		}, false},
		{"version not increasing", []porcupine.Operation{
			cas(0, 1, 0, "a", ok(4)),
			cas(2, 3, 4, "b", ok(4)),
		}, false},
		{"conflict with the expected version", []porcupine.Operation{
			cas(0, 1, 0, "a", ok(4)),
			cas(2, 3, 4, "b", conflict("a", 4)),
		}, false},
		{"conflict reporting a wrong entry", []porcupine.Operation{
			cas(0, 1, 0, "a", ok(4)),
			cas(2, 3, 7, "b", conflict("x", 4)),
		}, false},
		{"unknown outcome, applied", []porcupine.Operation{
			cas(0, 1, 0, "a", ok(1)),
			cas(2, never, 1, "b", unknownOutcome),
			get(4, 5, true, "b", 3),
			cas(6, 7, 3, "c", ok(6)),
		}, true},
		{"unknown outcome, not applied", []porcupine.Operation{
			cas(0, 1, 0, "a", ok(1)),
			cas(2, never, 1, "b", unknownOutcome),
			get(4, 5, true, "a", 1),
			cas(6, 7, 1, "c", ok(6)),
		}, true},
		{"unknown outcome seen by a successful compare", []porcupine.Operation{
			cas(0, never, 0, "a", unknownOutcome),
			cas(2, 3, 8, "b", ok(9)),
			get(4, 5, true, "b", 9),
		}, true},
		{"unknown outcome that could not match", []porcupine.Operation{
			cas(0, 1, 0, "a", ok(1)),
			cas(2, never, 7, "b", unknownOutcome),
			get(4, 5, true, "b", 8),
		}, false},
		{"unknown outcome read back with a too-small version", []porcupine.Operation{
			cas(0, 1, 0, "a", ok(5)),
			cas(2, never, 5, "b", unknownOutcome),
			get(4, 5, true, "b", 5),
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, porcupine.CheckOperations(linModel, tc.ops))
		})
	}
}
