package conformance

import "testing"

// RunContract runs the contract suite: every behaviour of backend.Store and
// of the optional interfaces the store implements, at the consistency level
// it declares. All subtests are grouped under "Contract", so that
//
//	go test -run 'TestMyAdapter/Contract/CompareAndPut/Stale'
//
// (or '/Contract/CompareAndPut/Stale' for every adapter test in a package)
// runs one of them. Each subtest gets its own harness from mk and runs under
// a context deadline. Subtests of optional interfaces skip, saying so, when
// the store does not implement them; so do the checks that only a
// linearizable store promises.
func RunContract(t *testing.T, mk MakeHarness) {
	t.Helper()
	RunContractWith(t, mk, ContractOptions{})
}

// ContractOptions adjusts RunContractWith.
type ContractOptions struct {
	// Reduced marks a second variant of an engine whose full-size suite
	// runs elsewhere in the same test run (another transport to the same
	// engine, another deployment of the same server): under the race
	// detector its workloads (keys listed, counters, rounds, watches) take
	// their -short sizes. Every subtest still runs, and the smaller
	// listings still span several pages. Without -race, or with FullEnv
	// set, the suite runs at full size.
	Reduced bool
}

// RunContractWith is RunContract with options.
func RunContractWith(t *testing.T, mk MakeHarness, o ContractOptions) {
	t.Helper()
	s := &suite{mk: mk, reduced: reduce(o.Reduced)}
	logReduced(t, s.reduced, "contract")
	t.Run("Contract", func(t *testing.T) {
		t.Run("Capabilities", s.testCapabilities)
		t.Run("Get", func(t *testing.T) {
			t.Run("NotFound", s.testGetNotFound)
		})
		t.Run("CompareAndPut", func(t *testing.T) {
			t.Run("CreateOnly", s.testCreateOnly)
			t.Run("Success", s.testCASSuccess)
			t.Run("Stale", s.testCASStale)
			t.Run("Forged", s.testCASForged)
			t.Run("Absent", s.testCASAbsent)
		})
		t.Run("Versions", func(t *testing.T) {
			t.Run("Increasing", s.testVersionsIncreasing)
			t.Run("TwoHandles", s.testVersionsTwoHandles)
			t.Run("Reopen", s.testVersionsReopen)
			t.Run("AfterDelete", s.testVersionsAfterDelete)
		})
		t.Run("Values", func(t *testing.T) {
			t.Run("Empty", s.testValuesEmpty)
			t.Run("Binary", s.testValuesBinary)
			t.Run("MaxSize", s.testValuesMaxSize)
			t.Run("TooLarge", s.testValuesTooLarge)
			t.Run("Aliasing", s.testValuesAliasing)
		})
		t.Run("Keys", func(t *testing.T) {
			t.Run("Unicode", s.testKeysUnicode)
			t.Run("Slashes", s.testKeysSlashes)
			t.Run("Spaces", s.testKeysSpaces)
			t.Run("MaxSize", s.testKeysMaxSize)
			t.Run("TooLong", s.testKeysTooLong)
			t.Run("Empty", s.testKeysEmpty)
			t.Run("Distinct", s.testKeysDistinct)
		})
		t.Run("Context", func(t *testing.T) {
			t.Run("Get", s.testContextGet)
			t.Run("CompareAndPut", s.testContextCAS)
			t.Run("Deadline", s.testContextDeadline)
			t.Run("Watch", s.testContextWatch)
			t.Run("Delete", s.testContextDelete)
			t.Run("Update", s.testContextUpdate)
		})
		t.Run("Closed", func(t *testing.T) {
			t.Run("Get", s.testClosedGet)
			t.Run("CompareAndPut", s.testClosedCAS)
			t.Run("Watch", s.testClosedWatch)
			t.Run("Delete", s.testClosedDelete)
			t.Run("Update", s.testClosedUpdate)
			t.Run("Twice", s.testClosedTwice)
			t.Run("OtherHandle", s.testClosedOtherHandle)
		})
		t.Run("Watch", func(t *testing.T) {
			t.Run("Notify", s.testWatchNotify)
			t.Run("OtherHandle", s.testWatchOtherHandle)
			t.Run("Many", s.testWatchMany)
			t.Run("Coalesce", s.testWatchCoalesce)
			t.Run("Cancel", s.testWatchCancel)
			t.Run("Close", s.testWatchClose)
		})
		t.Run("Delete", func(t *testing.T) {
			t.Run("Success", s.testDeleteSuccess)
			t.Run("Conflict", s.testDeleteConflict)
			t.Run("NotFound", s.testDeleteNotFound)
			t.Run("Recreate", s.testDeleteRecreate)
		})
		t.Run("Update", func(t *testing.T) {
			t.Run("Create", s.testUpdateCreate)
			t.Run("Modify", s.testUpdateModify)
			t.Run("Skip", s.testUpdateSkip)
			t.Run("Error", s.testUpdateError)
			t.Run("Concurrent", s.testUpdateConcurrent)
		})
		t.Run("Batch", func(t *testing.T) {
			t.Run("Apply", s.testBatchApply)
			t.Run("AllOrNothing", s.testBatchAllOrNothing)
			t.Run("Concurrent", s.testBatchConcurrent)
		})
		t.Run("List", func(t *testing.T) {
			t.Run("Prefix", s.testListPrefix)
			t.Run("Pages", s.testListPages)
			t.Run("Deleted", s.testListDeleted)
			t.Run("Concurrent", s.testListConcurrent)
			t.Run("Stop", s.testListStop)
			t.Run("Errors", s.testListErrors)
		})
		t.Run("ReadYourWrites", s.testReadYourWrites)
		t.Run("Stress", func(t *testing.T) {
			t.Run("Counters", s.testStressCounters)
		})
		t.Run("Linearizability", s.testLinearizability)
	})
}
