package conformance

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

func (s *suite) testCapabilities(t *testing.T) {
	f := s.setup(t, basicTimeout)
	c := f.caps
	t.Logf("capabilities: consistency=%v max key=%d B max value=%d B persistent=%v", c.Consistency, c.MaxKeySize, c.MaxValueSize, c.Persistent)
	require.Contains(t, []backend.Consistency{backend.Eventual, backend.PerNodeCAS, backend.Linearizable}, c.Consistency,
		"Capabilities().Consistency must be a declared level")
	require.GreaterOrEqual(t, c.MaxKeySize, backend.MinKeySize,
		"Capabilities().MaxKeySize must be at least backend.MinKeySize, the longest key the protocol writes")
	require.GreaterOrEqual(t, c.MaxValueSize, backend.MinValueSize,
		"Capabilities().MaxValueSize must be at least backend.MinValueSize, the smallest value limit the protocol can chunk into")
	require.GreaterOrEqual(t, c.RecordLifetime, time.Duration(0), "Capabilities().RecordLifetime must not be negative")
	require.Equal(t, c, f.open().Capabilities(), "a second handle onto the same namespace declares other capabilities")
	for _, iface := range []struct {
		name string
		ok   bool
	}{
		{"Watcher", implements[backend.Watcher](f.store)},
		{"Deleter", implements[backend.Deleter](f.store)},
		{"Updater", implements[backend.Updater](f.store)},
		{"Batcher", implements[backend.Batcher](f.store)},
	} {
		t.Logf("implements backend.%s: %v", iface.name, iface.ok)
	}
}

func implements[I any](st backend.Store) bool {
	_, ok := st.(I)
	return ok
}

func (s *suite) testGetNotFound(t *testing.T) {
	f := s.setup(t, basicTimeout)
	f.mustNotExist(f.store, "missing")
	// A key that was never written stays absent after other keys are.
	f.put(f.store, "present", 0, []byte("x"))
	f.mustNotExist(f.store, "missing")
	f.mustNotExist(f.store, "presen")
}

func (s *suite) testCreateOnly(t *testing.T) {
	f := s.setup(t, basicTimeout)
	v := f.put(f.store, "k", 0, []byte("first"))
	want := backend.Entry{Value: []byte("first"), Version: v}
	f.mustGet(f.store, "k", want)

	_, err := f.store.CompareAndPut(f.ctx, "k", 0, []byte("second"))
	f.requireConflict(err, "k", 0, want)
	f.mustGet(f.store, "k", want)
}

func (s *suite) testCASSuccess(t *testing.T) {
	f := s.setup(t, basicTimeout)
	v1 := f.put(f.store, "k", 0, []byte("one"))
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("one"), Version: v1})
	v2 := f.put(f.store, "k", v1, []byte("two"))
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("two"), Version: v2})
	v3 := f.put(f.store, "k", v2, []byte("three"))
	require.Greater(t, v3, v2)
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("three"), Version: v3})
}

func (s *suite) testCASStale(t *testing.T) {
	f := s.setup(t, basicTimeout)
	v1 := f.put(f.store, "k", 0, []byte("one"))
	v2 := f.put(f.store, "k", v1, []byte("two"))
	want := backend.Entry{Value: []byte("two"), Version: v2}
	f.mustGet(f.store, "k", want)

	_, err := f.store.CompareAndPut(f.ctx, "k", v1, []byte("stale"))
	f.requireConflict(err, "k", v1, want)
	_, known := backend.CurrentEntry(err)
	t.Logf("conflict errors carry the current entry: %v", known)
	f.mustGet(f.store, "k", want)
	// Also from a second handle, which never saw v1 itself.
	_, err = f.open().CompareAndPut(f.ctx, "k", v1, []byte("stale"))
	f.requireConflict(err, "k", v1, want)
	f.mustGet(f.store, "k", want)
}

func (s *suite) testCASForged(t *testing.T) {
	f := s.setup(t, basicTimeout)
	v := f.put(f.store, "k", 0, []byte("one"))
	want := backend.Entry{Value: []byte("one"), Version: v}
	// Versions that were never issued for this key.
	for _, forged := range []backend.Version{v + 1, v + 1000, math.MaxUint64} {
		_, err := f.store.CompareAndPut(f.ctx, "k", forged, []byte("forged"))
		f.requireConflict(err, "k", forged, want)
	}
	f.mustGet(f.store, "k", want)
}

func (s *suite) testCASAbsent(t *testing.T) {
	f := s.setup(t, basicTimeout)
	// Expecting a version on a key that does not exist is a conflict; a
	// carried current entry must say "absent" (Version 0).
	_, err := f.store.CompareAndPut(f.ctx, "k", 5, []byte("x"))
	f.requireConflict(err, "k", 5, backend.Entry{})
	f.mustNotExist(f.store, "k")
}

// maxTestValue caps the values the suite allocates for "exactly
// MaxValueSize" when an adapter declares an enormous limit.
const maxTestValue = 64 << 20

func (s *suite) testValuesEmpty(t *testing.T) {
	f := s.setup(t, basicTimeout)
	v1 := f.put(f.store, "k", 0, []byte{})
	f.mustGet(f.store, "k", backend.Entry{Value: []byte{}, Version: v1})
	v2 := f.put(f.store, "k", v1, []byte("x"))
	v3 := f.put(f.store, "k", v2, nil)
	e := f.readAtLeast(f.store, "k", v3)
	require.Equal(t, v3, e.Version)
	require.Empty(t, e.Value, "a nil value reads back as empty")
}

func (s *suite) testValuesBinary(t *testing.T) {
	f := s.setup(t, basicTimeout)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	// Every byte value, in order and reversed; plus bytes that often
	// trip text encodings (NUL runs, invalid UTF-8, CRLF).
	rev := make([]byte, 256)
	for i := range rev {
		rev[i] = byte(255 - i)
	}
	tricky := []byte("\x00\x00\xff\xfe\r\n\x80\xc0\xaf{\"v\":\x00}")
	var v backend.Version
	for _, val := range [][]byte{all, rev, tricky} {
		v = f.put(f.store, "bin", v, val)
		f.mustGet(f.store, "bin", backend.Entry{Value: val, Version: v})
		f.mustGet(f.open(), "bin", backend.Entry{Value: val, Version: v})
	}
}

func (s *suite) testValuesMaxSize(t *testing.T) {
	f := s.setup(t, basicTimeout)
	n := f.caps.MaxValueSize
	if n > maxTestValue {
		t.Logf("MaxValueSize is %d bytes; testing a %d-byte value instead of the limit itself", n, maxTestValue)
		n = maxTestValue
	}
	val := pattern(n)
	v := f.put(f.store, "big", 0, val)
	f.mustGet(f.store, "big", backend.Entry{Value: val, Version: v})
}

func (s *suite) testValuesTooLarge(t *testing.T) {
	f := s.setup(t, basicTimeout)
	n := f.caps.MaxValueSize
	if n >= maxTestValue {
		t.Skipf("MaxValueSize is %d bytes; not allocating a value beyond it", n)
	}
	big := pattern(n + 1)
	_, err := f.store.CompareAndPut(f.ctx, "k", 0, big)
	require.ErrorIs(t, err, backend.ErrTooLarge, "creating a %d-byte value", n+1)
	f.mustNotExist(f.store, "k")

	v := f.put(f.store, "k", 0, []byte("small"))
	_, err = f.store.CompareAndPut(f.ctx, "k", v, big)
	require.ErrorIs(t, err, backend.ErrTooLarge, "updating to a %d-byte value", n+1)
	f.mustGet(f.store, "k", backend.Entry{Value: []byte("small"), Version: v})
}

func (s *suite) testValuesAliasing(t *testing.T) {
	f := s.setup(t, basicTimeout)
	buf := []byte("original")
	v := f.put(f.store, "k", 0, buf)
	copy(buf, "XXXXXXXX") // the caller reuses its buffer
	want := backend.Entry{Value: []byte("original"), Version: v}
	f.mustGet(f.store, "k", want)

	e := f.readAtLeast(f.store, "k", v)
	for i := range e.Value {
		e.Value[i] = 'Y' // the caller scribbles on what it read
	}
	f.mustGet(f.store, "k", want)

	// A value returned by Get belongs to the caller: later reads and writes,
	// of this key and others, must not change it (an adapter that returns a
	// pooled or reused buffer breaks this).
	kept := f.readAtLeast(f.store, "k", v)
	for i := range 20 {
		other := fmt.Sprintf("other-%d", i)
		ov := f.put(f.store, other, 0, []byte(fmt.Sprintf("value %d of another key", i)))
		f.readAtLeast(f.store, other, ov)
		f.readAtLeast(f.store, "k", v)
	}
	v2 := f.put(f.store, "k", v, []byte("replaced"))
	f.readAtLeast(f.store, "k", v2)
	requireBytes(t, []byte("original"), kept.Value, "a value returned by Get changed after later calls: the adapter reuses the buffer it returned")
}

// pattern returns n deterministic, non-repeating-looking bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// oddKeys writes each key with a distinct value and reads them all back,
// which also catches keys that collapse onto one another.
func (f *fixture) oddKeys(keys ...string) {
	f.t.Helper()
	vers := make([]backend.Version, len(keys))
	for i, k := range keys {
		vers[i] = f.put(f.store, k, 0, []byte("value of "+k))
	}
	other := f.open()
	for i, k := range keys {
		f.mustGet(f.store, k, backend.Entry{Value: []byte("value of " + k), Version: vers[i]})
		f.mustGet(other, k, backend.Entry{Value: []byte("value of " + k), Version: vers[i]})
	}
}

func (s *suite) testKeysUnicode(t *testing.T) {
	f := s.setup(t, basicTimeout)
	f.oddKeys("ключ", "キー/鍵", "🔑🗝️", "e\u0301", "\u00e9", "ℌ𝔢𝔩𝔩𝔬")
}

func (s *suite) testKeysSlashes(t *testing.T) {
	f := s.setup(t, basicTimeout)
	f.oddKeys("a/b/c", "/leading", "trailing/", "a//b", "/", "..", "../x", "a/./b")
}

func (s *suite) testKeysSpaces(t *testing.T) {
	f := s.setup(t, basicTimeout)
	f.oddKeys("with space", " leading", "trailing ", "tab\there", "   ")
}

// maxTestKey caps the key the suite builds for "exactly MaxKeySize".
const maxTestKey = 1 << 20

func (s *suite) testKeysMaxSize(t *testing.T) {
	f := s.setup(t, basicTimeout)
	n := f.caps.MaxKeySize
	if n > maxTestKey {
		t.Logf("MaxKeySize is %d bytes; testing a %d-byte key instead of the limit itself", n, maxTestKey)
		n = maxTestKey
	}
	f.oddKeys(longKey(n, 'a'), longKey(n, 'b'))
}

func (s *suite) testKeysTooLong(t *testing.T) {
	f := s.setup(t, basicTimeout)
	n := f.caps.MaxKeySize
	if n >= maxTestKey {
		t.Skipf("MaxKeySize is %d bytes; not building a key beyond it", n)
	}
	long := longKey(n+1, 'a')
	_, err := f.store.Get(f.ctx, long)
	require.ErrorIs(t, err, backend.ErrInvalidKey, "Get with a %d-byte key", n+1)
	_, err = f.store.CompareAndPut(f.ctx, long, 0, []byte("x"))
	require.ErrorIs(t, err, backend.ErrInvalidKey, "CompareAndPut with a %d-byte key", n+1)
	// Nothing was stored under a truncated form of the key either.
	f.mustNotExist(f.store, long[:n])
}

func (s *suite) testKeysEmpty(t *testing.T) {
	f := s.setup(t, basicTimeout)
	_, err := f.store.Get(f.ctx, "")
	require.ErrorIs(t, err, backend.ErrInvalidKey, "Get with an empty key")
	_, err = f.store.CompareAndPut(f.ctx, "", 0, []byte("x"))
	require.ErrorIs(t, err, backend.ErrInvalidKey, "CompareAndPut with an empty key")
}

func (s *suite) testKeysDistinct(t *testing.T) {
	f := s.setup(t, basicTimeout)
	// Keys that differ only in case, a trailing separator, a prefix or
	// Unicode normalisation are different keys.
	f.oddKeys("k", "K", "k/", "k.", "kk", "k ", "ka", "topic", "topic/0", "topic/00", "\u212b", "\u00c5")
}

// longKey returns an n-byte key ending in a marker byte, so that keys of the
// same length differ only at their end.
func longKey(n int, last byte) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'k'
	}
	b[n-1] = last
	return string(b)
}
