//go:build !race

package bittorrent_test

// raceEnabled reports a -race build: the full-scale protocol suite then
// runs only with BEP44_FULL=1 (see fullScale).
const raceEnabled = false
