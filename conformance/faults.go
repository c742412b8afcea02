package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/backoff"
)

// FaultConfig says which faults Faulty injects. Rates are probabilities per
// operation, in [0, 1].
type FaultConfig struct {
	// Seed makes the fault sequence reproducible (with one goroutine).
	Seed uint64
	// StaleReadRate: a Get returns the key's previous state (which may be
	// "not found") instead of the current one.
	StaleReadRate float64
	// LostUpdateRate: a CompareAndPut that lost a race by exactly one
	// version is accepted anyway and silently replaces the winner's value,
	// so both writers were told they succeeded (measured on libp2p).
	LostUpdateRate float64
	// ErrorRate: an operation fails with backend.ErrUnavailable before it
	// reaches the store.
	ErrorRate float64
	// AmbiguousRate: a write reaches the store and then reports
	// backend.ErrUnavailable (a timeout after the fact).
	AmbiguousRate float64
	// MaxLatency adds a uniform random delay in [0, MaxLatency] per call.
	MaxLatency time.Duration
	// MaxValueSize overrides the declared value limit (e.g. 1000, as BEP44).
	MaxValueSize int
	// SameVersionRate: a CompareAndPut that lost a race by exactly one
	// version is applied anyway and reported as a success at the very
	// version the winner was told, so two writers both hold "success at
	// version v" (the Eventual contract allows it; measured on libp2p). The
	// loser's value is what later reads return, under that version, and a
	// compare-and-put expecting v from either writer succeeds.
	SameVersionRate float64
	// RecordLifetime makes records expire: a key not written for this long
	// reads as absent (and can be created again), as on a DHT whose nodes
	// drop records nobody re-put. It is declared in Capabilities. Zero
	// means records never expire.
	RecordLifetime time.Duration
	// Now is the clock for RecordLifetime (default time.Now).
	Now func() time.Time
	// FirstAlways injects every fault kind whose rate is above zero at its
	// first opportunity on the store (on every store of the harness, for
	// FaultyHarness, which always sets it), then at its rate: so a short
	// test meets each kind it gives a chance to, not only with luck.
	FirstAlways bool
}

// DHTFaults is the profile used by the suite's own tests: the faults of the
// two DHT backends (stale reads, silently replaced writes, two writers told
// success at the same version, errors before and after the fact, latency)
// and BEP44's 1000-byte value limit. Record expiry is not in it (the
// protocol suite's topics would expire between steps); tests that need it
// set RecordLifetime.
var DHTFaults = FaultConfig{
	Seed: 1, StaleReadRate: 0.05, LostUpdateRate: 0.2, SameVersionRate: 0.05, ErrorRate: 0.01, AmbiguousRate: 0.01,
	MaxLatency: 200 * time.Microsecond, MaxValueSize: 1000,
}

// Faulty wraps inner in a store that simulates the faults of eventually
// consistent backends. It declares Consistency Eventual and hides every
// optional interface of inner (no Watch, no Update, no Delete), so code
// above it sees exactly what a DHT adapter offers.
func Faulty(inner backend.Store, cfg FaultConfig) backend.Store {
	return newFaulty(inner, cfg, &faultCounter{})
}

// newFaulty is Faulty counting into c, which other stores may share.
func newFaulty(inner backend.Store, cfg FaultConfig, c *faultCounter) *faulty {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &faulty{inner: inner, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)), count: c,
		prev: map[string]backend.Entry{}, alias: map[string]versionAlias{}, written: map[string]time.Time{},
		last: map[string][2]backend.Version{}}
}

// versionAlias: the inner store holds version inner, which the wrapper
// reports as told (a version some other writer was also told).
type versionAlias struct{ inner, told backend.Version }

type faulty struct {
	inner backend.Store
	cfg   FaultConfig

	mu   sync.Mutex
	rng  *rand.Rand
	prev map[string]backend.Entry // the state before the latest write seen
	// alias maps keys whose stored version is reported as another one
	// (SameVersionRate); written is when each key was last written
	// (RecordLifetime).
	alias   map[string]versionAlias
	written map[string]time.Time
	// last is the handle's latest write of a key: the inner versions
	// before and after it.
	last map[string][2]backend.Version
	// count counts opportunities and injected faults (see faults_tally.go).
	count *faultCounter
}

// roll reports whether to inject a fault of kind, at rate p, at one of its
// opportunities (counted). With FirstAlways, a kind not injected yet on
// the counter is injected whatever the roll.
func (f *faulty) roll(kind faultKind, p float64) bool {
	if p <= 0 {
		return false
	}
	first := f.count.opportunity(kind) && f.cfg.FirstAlways
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64() < p || first
}

func (f *faulty) delay(ctx context.Context) error {
	if f.cfg.MaxLatency <= 0 {
		return ctx.Err()
	}
	f.mu.Lock()
	d := time.Duration(f.rng.Int64N(int64(f.cfg.MaxLatency) + 1))
	f.mu.Unlock()
	return backoff.Sleep(ctx, d)
}

func (f *faulty) injected(op, key string) error {
	f.count.injected(faultError)
	return fmt.Errorf("%w: injected fault in %s %q", backend.ErrUnavailable, op, key)
}

// Capabilities declares an eventually consistent store with the configured
// value limit.
func (f *faulty) Capabilities() backend.Capabilities {
	c := f.inner.Capabilities()
	c.Consistency = backend.Eventual
	if f.cfg.MaxValueSize > 0 {
		c.MaxValueSize = f.cfg.MaxValueSize
	}
	if f.cfg.RecordLifetime > 0 {
		c.RecordLifetime = f.cfg.RecordLifetime
	}
	return c
}

// isExpired reports whether key's record outlived RecordLifetime (a key
// the wrapper never saw written counts as written when first seen).
func (f *faulty) isExpired(key string) bool {
	if f.cfg.RecordLifetime <= 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.written[key]
	if !ok {
		f.written[key] = f.cfg.Now()
		return false
	}
	return f.cfg.Now().Sub(w) > f.cfg.RecordLifetime
}

func (f *faulty) touch(key string) {
	if f.cfg.RecordLifetime <= 0 {
		return
	}
	f.mu.Lock()
	f.written[key] = f.cfg.Now()
	f.mu.Unlock()
}

// outer translates a stored version to the one reported.
func (f *faulty) outer(key string, v backend.Version) backend.Version {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.alias[key]; ok && a.inner == v {
		return a.told
	}
	return v
}

// innerExpect translates an expected version to the stored one.
func (f *faulty) innerExpect(key string, v backend.Version) backend.Version {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.alias[key]; ok && a.told == v {
		return a.inner
	}
	return v
}

// mapConflict rewrites the current entry a conflict carries.
func (f *faulty) mapConflict(key string, err error) error {
	var ce *backend.ConflictError
	if errors.As(err, &ce) && ce.Known && ce.Current.Version != 0 {
		c := *ce
		c.Current.Version = f.outer(key, ce.Current.Version)
		return &c
	}
	return err
}

// oneWritePast reports whether the key's current (inner) version cur is
// one write past expect: the next version, or the handle's own latest
// write over expect (versions of some stores skip numbers).
func (f *faulty) oneWritePast(key string, expect, cur backend.Version) bool {
	if cur == expect+1 {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.last[key]
	return ok && w == [2]backend.Version{expect, cur}
}

// Get returns the current entry, or with StaleReadRate the previous one.
func (f *faulty) Get(ctx context.Context, key string) (backend.Entry, error) {
	if err := f.delay(ctx); err != nil {
		return backend.Entry{}, err
	}
	if f.roll(faultError, f.cfg.ErrorRate) {
		return backend.Entry{}, f.injected("Get", key)
	}
	e, err := f.inner.Get(ctx, key)
	if err == nil && f.isExpired(key) {
		f.count.injected(faultExpired)
		return backend.Entry{}, fmt.Errorf("%w: %q (record expired)", backend.ErrNotFound, key)
	}
	if err != nil {
		return e, err
	}
	e.Version = f.outer(key, e.Version)
	f.mu.Lock()
	old, ok := f.prev[key]
	f.mu.Unlock()
	// An opportunity: an older state of the key is known.
	if !ok || old.Version >= e.Version || !f.roll(faultStale, f.cfg.StaleReadRate) {
		return e, nil
	}
	f.count.injected(faultStale)
	if old.Version == 0 {
		return backend.Entry{}, fmt.Errorf("%w: %q (stale read)", backend.ErrNotFound, key)
	}
	return old, nil
}

// CompareAndPut writes through to inner, injecting lost updates and errors.
func (f *faulty) CompareAndPut(ctx context.Context, key string, expect backend.Version, value []byte) (backend.Version, error) {
	if err := f.delay(ctx); err != nil {
		return 0, err
	}
	if err := backend.CheckValue(value, f.Capabilities()); err != nil {
		return 0, err
	}
	if f.roll(faultError, f.cfg.ErrorRate) {
		return 0, f.injected("CompareAndPut", key)
	}
	before, berr := f.inner.Get(ctx, key)
	if berr != nil && !errors.Is(berr, backend.ErrNotFound) {
		return 0, berr
	}
	if berr == nil && f.isExpired(key) {
		// The record is gone as far as anyone can tell: only a create
		// succeeds, and it replaces whatever the inner store still holds.
		if expect != 0 {
			return 0, &backend.ConflictError{Key: key, Expected: expect, Known: true}
		}
		v, err := f.inner.CompareAndPut(ctx, key, before.Version, value)
		if err != nil {
			return 0, f.mapConflict(key, err)
		}
		f.touch(key)
		f.mu.Lock()
		delete(f.alias, key)
		f.prev[key], f.last[key] = backend.Entry{}, [2]backend.Version{0, v}
		f.mu.Unlock()
		return v, nil
	}
	told := expect
	expect = f.innerExpect(key, expect)
	v, err := f.inner.CompareAndPut(ctx, key, expect, value)
	if errors.Is(err, backend.ErrConflict) && expect != 0 && told == expect && f.cfg.SameVersionRate > 0 {
		// Lost by exactly one version (an opportunity)? Then apply it
		// anyway and tell this writer the winner's version.
		if cur, cerr := f.inner.Get(ctx, key); cerr == nil && f.oneWritePast(key, expect, cur.Version) && f.outer(key, cur.Version) == cur.Version &&
			f.roll(faultSameVersion, f.cfg.SameVersionRate) {
			if nv, werr := f.inner.CompareAndPut(ctx, key, cur.Version, value); werr == nil {
				f.touch(key)
				f.mu.Lock()
				f.alias[key] = versionAlias{inner: nv, told: cur.Version}
				f.prev[key], f.last[key] = cur, [2]backend.Version{cur.Version, nv}
				f.mu.Unlock()
				f.count.injected(faultSameVersion)
				return cur.Version, nil
			}
		}
	}
	if errors.Is(err, backend.ErrConflict) && f.cfg.LostUpdateRate > 0 {
		// Lost by one version (an opportunity)? Then overwrite the
		// winner, as a DHT node that never saw it would.
		cur, cerr := f.inner.Get(ctx, key)
		f.mu.Lock()
		p, ok := f.prev[key]
		f.mu.Unlock()
		if cerr == nil && ok && p.Version == expect && f.roll(faultLost, f.cfg.LostUpdateRate) {
			if v, err = f.inner.CompareAndPut(ctx, key, cur.Version, value); err == nil {
				f.count.injected(faultLost)
				before = cur
			}
		}
	}
	if err != nil {
		return 0, f.mapConflict(key, err)
	}
	f.touch(key)
	innerBefore := before.Version
	before.Version = f.outer(key, before.Version) // the state a stale read returns
	f.mu.Lock()
	if a, ok := f.alias[key]; ok && a.inner != v {
		delete(f.alias, key) // the aliased version was overwritten
	}
	f.prev[key], f.last[key] = before, [2]backend.Version{innerBefore, v}
	f.mu.Unlock()
	if f.roll(faultAmbiguous, f.cfg.AmbiguousRate) {
		f.count.injected(faultAmbiguous)
		return 0, fmt.Errorf("%w: injected timeout after CompareAndPut %q was applied", backend.ErrUnavailable, key)
	}
	return v, nil
}
