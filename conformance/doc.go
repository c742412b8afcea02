// Package conformance is the shared conformance and stress suite for
// backend adapters, as a library in the style of gocloud's drivertest: an
// adapter's own test supplies a MakeHarness and calls Run.
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(ctx context.Context, t *testing.T) (conformance.Harness, error) {
//			return newMyHarness(ctx, t) // a fresh, isolated namespace
//		})
//	}
//
// The suite reads the store's Capabilities and holds it to what it
// declares. Every store must meet the contract of backend.Store: typed errors
// for bad input that change nothing, versions that strictly increase and are
// never reused (across handles, reopens and deletes), values copied in and
// out. Optional interfaces (Watcher, Deleter, Updater, Batcher, Lister) are tested when
// implemented. A store that declares backend.Linearizable must also produce
// exact counters under contention and linearizable histories (checked with
// porcupine; a failing history is written as HTML to a temporary directory
// whose path is logged). For weaker levels the suite checks what they
// promise (a single writer eventually reads its own writes, its versions
// increase) and logs the measured lost-update rate instead of failing.
//
// Sizes shrink under -short, and under the race detector in suites run
// with Reduced (ContractOptions, ProtocolOptions): a second or third
// variant of an engine whose full-size suite runs elsewhere in the same
// test run. Every subtest still runs there; STICKYPUB_FULL=1 (FullEnv)
// restores the full sizes. Every subtest runs under a context deadline.
package conformance
