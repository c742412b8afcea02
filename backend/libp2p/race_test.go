//go:build race

package libp2p

// raceEnabled sizes the multi-node tests down under the race detector.
const raceEnabled = true
