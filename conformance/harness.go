package conformance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
	"github.com/stickypub/stickypub/internal/backoff"
)

// Harness gives the suite fresh handles onto one isolated namespace.
//
// Every handle returned by NewStore must see the same data: the suite opens
// two at once to check that versions are shared, and closes all of them and
// opens another to check that data and versions survive a reopen. This is
// required of every harness, whatever the store's Capabilities().Persistent
// says (that flag is about the engine surviving a restart, which the suite
// does not attempt).
type Harness interface {
	// NewStore opens a new handle onto the harness's namespace (the suite
	// closes it). Calling it again after closing earlier handles is a
	// "reopen".
	NewStore(ctx context.Context) (backend.Store, error)
	// Close releases the namespace (e.g. deletes its keys).
	Close()
}

// MakeHarness creates a fresh, isolated namespace for one subtest.
type MakeHarness func(ctx context.Context, t *testing.T) (Harness, error)

// Run runs every suite against the adapter behind mk: the contract suite
// (RunContract) and the protocol suite (RunProtocol).
func Run(t *testing.T, mk MakeHarness) {
	t.Helper()
	RunContract(t, mk)
	RunProtocol(t, mk)
}

// Subtest time limits. Each subtest runs under a context with one of these
// deadlines (shortened to fit the test binary's own -timeout).
const (
	basicTimeout  = 30 * time.Second
	stressTimeout = 90 * time.Second
	// heavyTimeout bounds the 100-publisher stress test: independent
	// clients contend on one coordinator key, one compare-and-put wins per
	// round, and -race on 2 shared cores slows each round several times.
	heavyTimeout = 240 * time.Second
)

// suite carries the adapter under test through the subtests.
type suite struct {
	mk MakeHarness
	// unwrap makes fixtures open the store beneath a test-only wrapper
	// that injects faults on purpose (see Unwrapper): Protocol/Preflight
	// checks the adapter's contract rules, not the wrapper's faults.
	unwrap bool
	// order is the ordering the protocol tests' clients use
	// (core.OrderDefault: the store's default).
	order core.Ordering
	// checkFaults: the protocol tests, where a subtest under
	// FaultyHarness fails if some enabled fault kind never fired during it.
	checkFaults bool
	// reduced: run at the -short sizes whatever the -short flag (see
	// reduce and suite.scale).
	reduced bool
	// timeScale multiplies subtest deadlines (ProtocolOptions.TimeScale).
	timeScale int
}

// Unwrapper is implemented by test-only store wrappers, such as Faulty,
// that inject faults on purpose. Unwrap returns the store beneath.
type Unwrapper interface {
	Unwrap() backend.Store
}

// fixture is what one subtest works with: a fresh namespace, a first handle
// onto it, that handle's capabilities and a bounded context.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	h     Harness
	store backend.Store
	caps  backend.Capabilities
	// unwrap: open the store beneath fault-injecting wrappers.
	unwrap bool
	// order is the ordering of every protocol client the fixture makes.
	order core.Ordering
	// noFaultCheck exempts the fixture from the fault check (see
	// skipFaultCheck), and notMet the fault kinds it cannot meet (see
	// faultsNotMet).
	noFaultCheck bool
	notMet       map[faultKind]string
}

// setup makes a harness and opens a first handle, all bounded by timeout.
// Everything it creates is released by t.Cleanup, handles before the
// harness.
func (s *suite) setup(t *testing.T, timeout time.Duration) *fixture {
	t.Helper()
	if s.timeScale > 1 {
		timeout *= time.Duration(s.timeScale)
	}
	if dl, ok := t.Deadline(); ok {
		// Leave a margin so that a stuck subtest fails with a message
		// rather than the whole binary panicking on -timeout.
		if left := time.Until(dl) - 5*time.Second; left < timeout {
			timeout = max(left, time.Second)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	h, err := s.mk(ctx, t)
	require.NoError(t, err, "MakeHarness")
	require.NotNil(t, h, "MakeHarness returned a nil Harness")
	t.Cleanup(h.Close)
	f := &fixture{t: t, ctx: ctx, h: h, unwrap: s.unwrap, order: s.order}
	if s.checkFaults && !s.unwrap {
		checkFaultsFired(t, h, f)
	}
	f.store = f.open()
	f.caps = f.store.Capabilities()
	return f
}

// skipFaultCheck exempts a fixture that only reads the store's
// capabilities (no Get, no write) from the check that faults fired.
func (f *fixture) skipFaultCheck() { f.noFaultCheck = true }

// faultsNotMet declares that the fixture's workload gives fault kind k no
// opportunity, for the reason given (the fault check does not require it).
func (f *fixture) faultsNotMet(k faultKind, reason string) {
	if f.notMet == nil {
		f.notMet = map[faultKind]string{}
	}
	f.notMet[k] = reason
}

// writersDoNotRace declares a workload whose writers of one key seldom
// race: one writer, writers one after the other, or a few publishers
// (under a fault wrapper, which is never linearizable, publishers write
// their own head records and only now and then the shared coordinator). A
// conflict lost by one write, which a lost update or a same-version
// success needs, then arises from an injected stale read or a rare race:
// met by chance only (LateJoiner met none in one run of eight). Those two
// kinds are required of the concurrent stress tests, which meet them
// hundreds of times; the other kinds of every subtest.
func (f *fixture) writersDoNotRace() {
	const why = "writers of one key seldom race here"
	f.faultsNotMet(faultLost, why)
	f.faultsNotMet(faultSameVersion, why)
}

// open opens another handle onto the fixture's namespace; t.Cleanup closes
// it (Close is idempotent, so closing it earlier is fine).
func (f *fixture) open() backend.Store {
	f.t.Helper()
	st, err := f.h.NewStore(f.ctx)
	require.NoError(f.t, err, "Harness.NewStore")
	require.NotNil(f.t, st, "Harness.NewStore returned a nil Store")
	f.t.Cleanup(func() { _ = st.Close() })
	for f.unwrap {
		u, ok := st.(Unwrapper)
		if !ok {
			break
		}
		st = u.Unwrap()
	}
	return st
}

// linearizable reports whether the store promises linearizability, which
// is when the suite insists that every read sees every completed write.
func (f *fixture) linearizable() bool { return f.caps.Consistency >= backend.Linearizable }

// topicOrder reports whether the fixture's clients keep one topic order
// (every subscriber, early or late, sees the same interleaving of
// publishers): a linearizable store in its default ordering.
func (f *fixture) topicOrder() bool { return f.linearizable() && f.order != core.PublisherOrder }

// put writes value under key with expect and fails the test on error.
func (f *fixture) put(st backend.Store, key string, expect backend.Version, value []byte) backend.Version {
	f.t.Helper()
	v, err := st.CompareAndPut(f.ctx, key, expect, value)
	require.NoError(f.t, err, "CompareAndPut(%q, expect %d)", key, expect)
	require.Greater(f.t, v, expect, "CompareAndPut(%q, expect %d) returned a version that is not greater than expect", key, expect)
	return v
}

// readAtLeast returns the entry of key once its version is at least min.
// A linearizable store must show it on the first read; weaker stores are
// polled until the fixture's deadline.
func (f *fixture) readAtLeast(st backend.Store, key string, min backend.Version) backend.Entry {
	f.t.Helper()
	for {
		e, err := st.Get(f.ctx, key)
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			require.NoError(f.t, err, "Get(%q)", key)
		}
		if err == nil && e.Version >= min {
			return e
		}
		if f.linearizable() {
			require.FailNowf(f.t, "stale read", "Get(%q) after a completed write of version %d returned version %d (err %v) on a linearizable store", key, min, e.Version, err)
		}
		if !sleepCtx(f.ctx, 10*time.Millisecond) {
			require.FailNowf(f.t, "write never became visible", "Get(%q) did not reach version %d before the deadline; last saw %d (err %v)", key, min, e.Version, err)
		}
	}
}

// mustGet reads key, which must exist, and checks it against want (value
// and version).
func (f *fixture) mustGet(st backend.Store, key string, want backend.Entry) {
	f.t.Helper()
	e := f.readAtLeast(st, key, want.Version)
	require.Equal(f.t, want.Version, e.Version, "Get(%q) version", key)
	requireBytes(f.t, want.Value, e.Value, "Get(%q) value", key)
}

// mustNotExist checks that key does not exist.
func (f *fixture) mustNotExist(st backend.Store, key string) {
	f.t.Helper()
	e, err := st.Get(f.ctx, key)
	require.ErrorIs(f.t, err, backend.ErrNotFound, "Get(%q) returned version %d", key, e.Version)
}

// sleepCtx sleeps for d or until ctx is done, and reports whether ctx is
// still live.
func sleepCtx(ctx context.Context, d time.Duration) bool { return backoff.Sleep(ctx, d) == nil }
