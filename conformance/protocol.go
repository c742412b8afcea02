package conformance

import (
	"fmt"
	"testing"

	"github.com/stickypub/stickypub/core"
)

// RunProtocol runs the sticky pub/sub protocol's tests (package core) on
// the adapter behind mk: the seed's stress tests, which must reach 100% with
// no duplicate and no gap at any concurrency, and the behaviour of forged
// records, subscription TTLs, retention and push. All subtests are grouped
// under "Protocol".
//
// It starts with Protocol/Preflight, a few seconds of the contract rules the
// protocol stands on (compare-and-put, increasing versions shared by
// handles, no lost update at the declared consistency), checked beneath any
// test-only fault wrapper (Unwrapper) such as Faulty. An adapter that
// breaks one fails there, with the rule named, and the protocol tests are
// not run: they would only fail slowly, by a stress test's deadline.
func RunProtocol(t *testing.T, mk MakeHarness) {
	t.Helper()
	RunProtocolWith(t, mk, ProtocolOptions{})
}

// ProtocolOptions adjusts RunProtocolWith.
type ProtocolOptions struct {
	// HeavyMessages is how many messages each of the 100 publishers of the
	// heaviest stress test publishes in topic order (default 100, or 20
	// under -short; at most reducedHeavy in a Reduced suite under -race);
	// the subtest is named Concurrent100xN accordingly.
	// Lower it for a second transport over an engine whose full suite runs
	// elsewhere (a remote handle, say): 100 independent publishers still
	// race on one coordinator.
	HeavyMessages int
	// Reduced marks a second variant of an engine whose full-size suite
	// runs elsewhere in the same test run (see ContractOptions.Reduced):
	// under the race detector every subtest still runs, in both
	// orderings, with smaller workloads: the stress tests with fewer
	// messages per publisher (Sequential 250, LateJoiner 5x25,
	// Concurrent10x20, and 100 publishers still contending in
	// Concurrent100xN with at most reducedHeavy messages each), the
	// preflight's counters with their -short sizes. Without -race, or with
	// FullEnv set, the suite runs at full size. Not for fault-injecting
	// harnesses (FaultyHarness): every fault kind must fire in each stress
	// test, which needs the full workloads.
	Reduced bool
	// TimeScale multiplies every subtest's deadline (default 1). For
	// engines where each operation is a round of network requests to many
	// nodes (a DHT swarm on loopback, all in one process on a few cores):
	// a stress test must fail on a wrong result, not on a slow machine.
	// A lost message still fails the test, later.
	TimeScale int
}

// reducedHeavy caps the messages per publisher of the 100-publisher stress
// tests in a Reduced suite: 100 publishers still race on one coordinator.
const reducedHeavy = 10

// RunProtocolWith is RunProtocol with options.
func RunProtocolWith(t *testing.T, mk MakeHarness, o ProtocolOptions) {
	t.Helper()
	s := &suite{mk: mk, checkFaults: true, reduced: reduce(o.Reduced), timeScale: max(o.TimeScale, 1)}
	logReduced(t, s.reduced, "protocol")
	heavy := o.HeavyMessages
	if heavy <= 0 {
		heavy = scale(20, 100)
	}
	if s.reduced {
		heavy = min(heavy, reducedHeavy)
	}
	each := s.sized(20, 100) // messages per publisher of Concurrent10xN
	t.Run("Protocol", func(t *testing.T) {
		if !t.Run("Preflight", s.testPreflight) {
			t.Fatal("the adapter broke a contract rule in Protocol/Preflight (named above); the protocol tests did not run")
		}
		t.Run("Sequential", s.testSequential)
		t.Run(fmt.Sprintf("Concurrent10x%d", each), func(t *testing.T) { s.testConcurrent(t, 10, each) })
		t.Run(fmt.Sprintf("Concurrent100x%d", heavy), func(t *testing.T) { s.testConcurrent(t, 100, heavy) })
		t.Run("LateJoiner", s.testLateJoiner)
		t.Run("GroupCommit", s.testGroupCommit)
		t.Run("Forged", s.testForged)
		t.Run("ForgedHeads", s.testForgedHeads)
		t.Run("SubscriptionTTL", s.testSubscriptionTTL)
		t.Run("Retention", s.testRetention)
		t.Run("LargeValues", s.testLargeValues)
		t.Run("Push", s.testPush)
		t.Run("OrderingMismatch", s.testOrderingMismatch)
		t.Run("TopicPolicy", s.testTopicPolicy)
		t.Run("Orphans", s.testOrphans)
		t.Run("PublisherOrder", s.runPublisherOrder)
	})
}

// runPublisherOrder runs the delivery tests again with every client in
// core.PublisherOrder, on stores whose default is TopicOrder (on the
// others the tests above already ran in publisher order).
func (s *suite) runPublisherOrder(t *testing.T) {
	probe := s.setup(t, basicTimeout)
	probe.skipFaultCheck() // reads the capabilities only
	if !probe.linearizable() {
		t.Skip("the store is not linearizable: the tests above already ran in publisher order, its only ordering")
	}
	po := &suite{mk: s.mk, order: core.PublisherOrder, checkFaults: s.checkFaults, reduced: s.reduced}
	t.Run("Sequential", po.testSequential)
	each := po.sized(20, 100)
	t.Run(fmt.Sprintf("Concurrent10x%d", each), func(t *testing.T) { po.testConcurrent(t, 10, each) })
	// 100 independent publishers is what stresses this ordering (their
	// registrations race; their publishes must not); 20 messages each (10
	// in a reduced suite) keep the extra tree short.
	heavy := po.sized(reducedHeavy, 20)
	t.Run(fmt.Sprintf("Concurrent100x%d", heavy), func(t *testing.T) { po.testConcurrent(t, 100, heavy) })
	t.Run("LateJoiner", po.testLateJoiner)
	t.Run("GroupCommit", po.testGroupCommit)
	t.Run("Forged", po.testForged)
	t.Run("ForgedHeads", po.testForgedHeads)
	t.Run("Retention", po.testRetention)
	t.Run("Push", po.testPush)
	t.Run("TopicPolicy", po.testTopicPolicy)
	t.Run("Orphans", po.testOrphans)
}

// testPreflight runs the contract tests whose rules the protocol depends on,
// on the store beneath any fault-injecting test wrapper (Unwrapper).
func (s *suite) testPreflight(t *testing.T) {
	s = &suite{mk: s.mk, unwrap: true, reduced: s.reduced}
	t.Run("CompareAndPut/Stale", s.testCASStale)
	t.Run("CompareAndPut/CreateOnly", s.testCreateOnly)
	t.Run("Versions/Increasing", s.testVersionsIncreasing)
	t.Run("Versions/TwoHandles", s.testVersionsTwoHandles)
	t.Run("Stress/Counters", s.testStressCounters)
}
