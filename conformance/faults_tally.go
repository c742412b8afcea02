package conformance

// Counting what the fault wrapper did: per fault kind, its opportunities
// and injections (shared by every store of one FaultyHarness harness, so
// one protocol subtest's counts are its own), and the check that every
// enabled kind was injected during a protocol subtest.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stickypub/stickypub/backend"
)

// FaultTally counts the faults a store made by Faulty injected.
type FaultTally struct {
	Stale, Lost, Errors, Ambiguous, SameVersion, Expired int
}

// faultKind is one kind of injected fault.
type faultKind int

const (
	faultStale faultKind = iota
	faultLost
	faultError
	faultAmbiguous
	faultSameVersion
	faultExpired
	numFaultKinds
)

// faultNames names the kinds in failure messages, with their opportunity.
var faultNames = [numFaultKinds]string{
	faultStale:       "stale read (a Get of a key whose older state the handle saw)",
	faultLost:        "lost update (a compare-and-put that lost by one version to the handle's last write)",
	faultError:       "error (any Get or CompareAndPut)",
	faultAmbiguous:   "ambiguous write (a successful CompareAndPut)",
	faultSameVersion: "same-version success (a compare-and-put that lost by exactly one write)",
	faultExpired:     "expired record",
}

// rate is the configured rate of kind (expiry has none: it follows the
// clock).
func (c FaultConfig) rate(k faultKind) float64 {
	switch k {
	case faultStale:
		return c.StaleReadRate
	case faultLost:
		return c.LostUpdateRate
	case faultError:
		return c.ErrorRate
	case faultAmbiguous:
		return c.AmbiguousRate
	case faultSameVersion:
		return c.SameVersionRate
	}
	return 0
}

// faultCounter counts opportunities and injections per kind.
type faultCounter struct {
	mu   sync.Mutex
	opps [numFaultKinds]int
	inj  [numFaultKinds]int
}

// opportunity counts one opportunity for kind and reports whether none
// has been injected yet.
func (c *faultCounter) opportunity(k faultKind) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opps[k]++
	return c.inj[k] == 0
}

func (c *faultCounter) injected(k faultKind) {
	c.mu.Lock()
	c.inj[k]++
	c.mu.Unlock()
}

func (c *faultCounter) counts() (opps, inj [numFaultKinds]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opps, c.inj
}

func tallyOf(n [numFaultKinds]int) FaultTally {
	return FaultTally{Stale: n[faultStale], Lost: n[faultLost], Errors: n[faultError], Ambiguous: n[faultAmbiguous],
		SameVersion: n[faultSameVersion], Expired: n[faultExpired]}
}

// Close closes inner.
func (f *faulty) Close() error { return f.inner.Close() }

// Unwrap returns the store beneath the injected faults (see Unwrapper).
func (f *faulty) Unwrap() backend.Store { return f.inner }

// Tally reports every fault a store made by Faulty injected (zero for
// other stores). The stores of one FaultyHarness harness share their
// counts.
func Tally(s backend.Store) FaultTally {
	f, ok := s.(*faulty)
	if !ok {
		return FaultTally{}
	}
	_, inj := f.count.counts()
	return tallyOf(inj)
}

// Opportunities reports, per kind, how many chances a store made by Faulty
// had to inject a fault (an injected one counts too): every Get and
// CompareAndPut for errors, a successful write for an ambiguous one, a Get
// of a key whose older state the store saw for a stale read, and a
// compare-and-put lost by one version for a lost update or a same-version
// success. Expiry follows the clock and is not counted.
func Opportunities(s backend.Store) FaultTally {
	f, ok := s.(*faulty)
	if !ok {
		return FaultTally{}
	}
	opps, _ := f.count.counts()
	return tallyOf(opps)
}

// FaultCounts reports how many faults a store made by Faulty injected.
func FaultCounts(s backend.Store) (stale, lost, errs, ambiguous int) {
	t := Tally(s)
	return t.Stale, t.Lost, t.Errors, t.Ambiguous
}

// FaultyHarness wraps every store of mk's harnesses with Faulty(cfg),
// with FirstAlways set. The stores of one harness (one protocol subtest)
// share their counts, and RunProtocol fails a subtest during which some
// fault kind enabled in cfg was never injected.
func FaultyHarness(mk MakeHarness, cfg FaultConfig) MakeHarness {
	cfg.FirstAlways = true
	return func(ctx context.Context, t *testing.T) (Harness, error) {
		h, err := mk(ctx, t)
		if err != nil {
			return nil, err
		}
		return faultyHarness{h: h, cfg: cfg, count: &faultCounter{}}, nil
	}
}

type faultyHarness struct {
	h     Harness
	cfg   FaultConfig
	count *faultCounter
}

func (h faultyHarness) NewStore(ctx context.Context) (backend.Store, error) {
	s, err := h.h.NewStore(ctx)
	if err != nil {
		return nil, err
	}
	return newFaulty(s, h.cfg, h.count), nil
}

func (h faultyHarness) Close() { h.h.Close() }

// missingFaults names the kinds enabled in the harness's configuration,
// and not in exempt, that its stores never injected, with their
// opportunities.
func (h faultyHarness) missingFaults(exempt map[faultKind]string) []string {
	opps, inj := h.count.counts()
	var out []string
	for k := range numFaultKinds {
		if _, ok := exempt[k]; !ok && h.cfg.rate(k) > 0 && inj[k] == 0 {
			out = append(out, fmt.Sprintf("%s: %d opportunities", faultNames[k], opps[k]))
		}
	}
	return out
}

// summary is one line of injected/opportunities per kind.
func (h faultyHarness) summary() string {
	opps, inj := h.count.counts()
	var parts []string
	for k := range numFaultKinds {
		parts = append(parts, fmt.Sprintf("%s %d/%d", strings.SplitN(faultNames[k], " (", 2)[0], inj[k], opps[k]))
	}
	return strings.Join(parts, ", ")
}

// checkFaultsFired makes t fail, at the end of the subtest, if h is a
// FaultyHarness whose stores did not inject every enabled fault kind
// during it, except those the fixture declared its workload cannot give a
// chance to (faultsNotMet). A test already failing or skipped is not
// failed again for this; a fixture exempted with skipFaultCheck is not
// checked. FirstAlways makes the first opportunity of each kind inject
// it, so the check fails only when the subtest gave a kind no chance at
// all: never by chance.
func checkFaultsFired(t *testing.T, h Harness, f *fixture) {
	fh, ok := h.(faultyHarness)
	if !ok {
		return
	}
	t.Cleanup(func() {
		if t.Failed() || t.Skipped() || f.noFaultCheck {
			return
		}
		t.Logf("faults injected/opportunities: %s", fh.summary())
		if missing := fh.missingFaults(f.notMet); len(missing) > 0 {
			t.Errorf("%s ran under the fault wrapper but these enabled fault kinds never fired during it:\n\t%s",
				t.Name(), strings.Join(missing, "\n\t"))
		}
	})
}
