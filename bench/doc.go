// Package bench holds the project's contention benchmarks: the sticky
// pub/sub protocol (package core) publishing and catching up on each
// linearizable backend (bolt, Redis), beside baselines measured in the same
// run on the same store kind: raw compare-and-put, Redis Streams XADD and raw
// Ed25519 verification.
//
// The package has no API; everything lives in its _test.go files and only
// runs with -bench (plain `go test ./...` compiles it and runs nothing):
//
//	go test -run '^$' -bench . -count 3 ./bench/
//
// See docs/benchmarks.md for the commands, the measured medians and the
// ratios against the baselines.
package bench
