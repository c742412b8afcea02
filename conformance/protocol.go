package conformance

import (
	"testing"
)

// RunProtocol runs the sticky pub/sub protocol's tests (package core) on
// the adapter behind mk: the seed's stress tests, which must reach 100% with
// no duplicate and no gap at any concurrency, and the behaviour of forged
// records, subscription TTLs, retention and push. All subtests are grouped
// under "Protocol".
func RunProtocol(t *testing.T, mk MakeHarness) {
	t.Helper()
	s := &suite{mk: mk}
	t.Run("Protocol", func(t *testing.T) {
		t.Run("Sequential", s.testSequential)
		t.Run("Concurrent10x100", func(t *testing.T) { s.testConcurrent(t, 10, 100) })
		t.Run("Concurrent100x100", func(t *testing.T) { s.testConcurrent(t, 100, scale(20, 100)) })
		t.Run("LateJoiner", s.testLateJoiner)
		t.Run("GroupCommit", s.testGroupCommit)
		t.Run("Forged", s.testForged)
		t.Run("SubscriptionTTL", s.testSubscriptionTTL)
		t.Run("Retention", s.testRetention)
		t.Run("LargeValues", s.testLargeValues)
		t.Run("Push", s.testPush)
	})
}
