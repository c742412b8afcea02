package libp2p

// bySpeed returns normal, or under the race detector (which slows every
// libp2p request 5-10x) the smaller raced: the multi-node tests run in CI
// under -race, where the package must stay within about 90 s on two
// shared cores.
func bySpeed(normal, raced int) int {
	if raceEnabled {
		return raced
	}
	return normal
}
