package conformance_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stickypub/stickypub/conformance"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// brokenEnv names the adapter TestBrokenInner runs the suite against.
const brokenEnv = "STICKYPUB_CONFORMANCE_BROKEN"

// TestBrokenInner runs the contract suite against one adapter from
// brokenAdapters. It only runs as TestBroken's subprocess, and is meant to
// fail there.
func TestBrokenInner(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("runs only as a subprocess of TestBroken")
	}
	mk, ok := brokenAdapters[name]
	require.True(t, ok, "unknown adapter %q", name)
	if os.Getenv(brokenProtocolEnv) != "" {
		conformance.RunProtocol(t, mk)
		return
	}
	conformance.RunContractWith(t, mk, conformance.ContractOptions{Reduced: os.Getenv(brokenReducedEnv) != ""})
}

// brokenReducedEnv makes TestBrokenInner run the contract suite with
// Reduced set: under -race at the reduced sizes that second variants of an
// engine run at.
const brokenReducedEnv = "STICKYPUB_CONFORMANCE_BROKEN_REDUCED"

// brokenProtocolEnv makes TestBrokenInner run the protocol suite instead of
// the contract suite.
const brokenProtocolEnv = "STICKYPUB_CONFORMANCE_BROKEN_PROTOCOL"

// TestBrokenProtocol runs the protocol suite, in a subprocess, against an
// adapter that claims to be linearizable but loses updates: it must fail
// fast, in Protocol/Preflight with the broken rule named, not by running
// into a stress test's deadline.
func TestBrokenProtocol(t *testing.T) {
	start := time.Now()
	out, err := runInner(t, "lost-update", brokenProtocolEnv+"=1")
	failed := failedSubtests(out)
	t.Logf("lost-update fails: %v in %v", failed, time.Since(start).Round(time.Millisecond))
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the protocol suite passed an adapter that loses updates:\n%s", out)
	require.Contains(t, failed, "Protocol/Preflight/Stress/Counters", out)
	require.Contains(t, out, "the protocol tests did not run", out)
	for _, name := range failed {
		require.True(t, strings.HasPrefix(name, "Protocol/Preflight") || name == "Protocol",
			"the protocol tests ran after a failed preflight (%s failed):\n%s", name, out)
	}
}

// TestBroken checks that the suite has teeth: run against each deliberately
// broken adapter, in a subprocess, it must fail, and fail in the subtests
// that test for the bug. The control adapter must pass the same way.
// Adapters whose bug a shrinking workload catches run a second time with
// Reduced set (under -race the sizes of second variants of an engine): the
// reduced suite must catch them too.
func TestBroken(t *testing.T) {
	cases := []struct {
		adapter string
		// mustFail lists subtests (under TestBrokenInner/Contract/) that
		// must fail; nil means the run must pass.
		mustFail []string
		// sized: the bug is caught by subtests whose workload shrinks in
		// a Reduced suite, so the adapter is also run reduced (the
		// "-reduced" case): the smaller sizes must catch it too.
		sized bool
	}{
		{"lost-update", []string{"Stress/Counters", "Linearizability"}, true},
		{"stale-read", []string{"Linearizability"}, true},
		{"reuse-after-reopen", []string{"Versions/TwoHandles", "Versions/Reopen"}, true},
		{"backwards", []string{"Versions/Increasing"}, true},
		{"ignores-context", []string{"Context/Get", "Context/CompareAndPut", "Context/Deadline"}, false},
		{"pooled-buffer", []string{"Values/Aliasing"}, false},
		{"silent-watch", []string{"Watch/Many"}, true},
		{"update-not-atomic", []string{"Update/Concurrent"}, true},
		{"batch-not-atomic", []string{"Batch/AllOrNothing"}, false},
		{"watch-never-closes", []string{"Watch/Cancel", "Watch/Close"}, false},
		{"delete-reuses-versions", []string{"Versions/AfterDelete", "Delete/Recreate"}, false},
		{"list-skips-keys", []string{"List/Pages", "List/Concurrent"}, true},
		{"list-foreign-keys", []string{"List/Prefix"}, false},
		{"mapper-ok", nil, true},
	}
	for _, tc := range cases {
		variants := []string{""}
		if tc.sized {
			variants = append(variants, "-reduced")
		}
		for _, variant := range variants {
			t.Run(tc.adapter+variant, func(t *testing.T) {
				t.Parallel()
				var env []string
				if variant != "" {
					env = append(env, brokenReducedEnv+"=1")
				}
				out, err := runInner(t, tc.adapter, env...)
				failed := failedSubtests(out)
				t.Logf("%s%s fails: %v", tc.adapter, variant, failed)
				require.NotContains(t, out, "panic:", "the suite panicked:\n%s", out)
				require.NotContains(t, out, "test timed out", "the suite hung:\n%s", out)
				if tc.mustFail == nil {
					require.NoError(t, err, "the control adapter failed the suite:\n%s", out)
					return
				}
				var exit *exec.ExitError
				require.ErrorAs(t, err, &exit, "the suite passed a broken adapter (or did not run):\n%s", out)
				for _, name := range tc.mustFail {
					assert.Contains(t, failed, "Contract/"+name, "the suite did not fail %s", name)
				}
				if t.Failed() {
					t.Logf("subprocess output:\n%s", out)
				}
			})
		}
	}
}

// runInner runs TestBrokenInner against adapter in a subprocess of this
// test binary, bounded by a deadline, and returns its combined output.
func runInner(t *testing.T, adapter string, env ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"-test.run=^TestBrokenInner$", "-test.count=1", "-test.timeout=100s"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	// TMPDIR: failed linearizability checks write their visualisation
	// there; keep those files with this test's temporary directory.
	cmd.Env = append(append(os.Environ(), brokenEnv+"="+adapter, "TMPDIR="+t.TempDir()), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		require.FailNowf(t, "subprocess timed out", "%v\n%s", errors.Join(err, ctx.Err()), out)
	}
	return string(out), err
}

// failedSubtests lists the subtests of TestBrokenInner/ that the output
// reports as failed, sorted.
func failedSubtests(out string) []string {
	var names []string
	for _, m := range failLine.FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	return slices.Compact(names)
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: TestBrokenInner/(\S+)`)
