//go:build race

package libp2p

// raceEnabled sizes the multi-node tests down under the race detector.
const raceEnabled = true

// envRaceSwarms opts the multi-node stress tests in under -race.
const envRaceSwarms = "STICKYPUB_LIBP2P_RACE_SWARMS"
