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

// reduce reports whether a suite whose caller asked for Reduced runs at the
// reduced sizes: only under the race detector, and only when FullEnv is
// unset.
func reduce(asked bool) bool {
	return asked && raceEnabled && os.Getenv(FullEnv) == ""
}

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
