package conformance

// Workload sizes: full, -short, and reduced (a second variant of an engine
// under the race detector).

import (
	"os"
	"testing"
)

// FullEnv names the environment variable that, set to any non-empty value,
// runs every suite at full size even under the race detector: Reduced in
// ContractOptions and ProtocolOptions is then ignored.
const FullEnv = "STICKYPUB_FULL"

// ReducedSizes reports whether suites asked to be Reduced run at the
// reduced sizes: under the race detector, unless FullEnv is set. An
// adapter's tests may use it to size their own second-variant workloads
// (HeavyMessages, say) by the same switch.
func ReducedSizes() bool {
	return raceEnabled && os.Getenv(FullEnv) == ""
}

// reduce reports whether a suite whose caller asked for Reduced runs at the
// reduced sizes (see ReducedSizes).
func reduce(asked bool) bool { return asked && ReducedSizes() }

// scale returns short under -short and long otherwise.
func scale(short, long int) int {
	if testing.Short() {
		return short
	}
	return long
}

// scale returns short under -short or when the suite runs reduced, and long
// otherwise.
func (s *suite) scale(short, long int) int {
	if s.reduced {
		return short
	}
	return scale(short, long)
}

// sized returns reduced when the suite runs reduced and full otherwise,
// whatever -short: for the protocol's stress tests, whose -short sizes
// stay as they were (under a fault-injecting harness every fault kind must
// fire in each of them, which the smaller workloads may not give).
func (s *suite) sized(reduced, full int) int {
	if s.reduced {
		return reduced
	}
	return full
}

// logReduced says in the test log that a suite runs at the reduced sizes.
func logReduced(t *testing.T, reduced bool, what string) {
	t.Helper()
	if reduced {
		t.Logf("%s suite at reduced sizes (a second variant of the engine, under -race); %s=1 runs it at full size", what, FullEnv)
	}
}
