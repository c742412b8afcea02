//go:build !race

package conformance

// raceEnabled reports a -race build, where a suite asked to be Reduced
// runs at the reduced sizes (see reduce).
const raceEnabled = false
