package conformance

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

func (s *suite) testVersionsIncreasing(t *testing.T) {
	f := s.setup(t, basicTimeout)
	log := newVersionLog()
	n := s.scale(20, 100)
	cur := map[string]backend.Version{}
	write := func(key string, i int) {
		v := f.put(f.store, key, cur[key], fmt.Appendf(nil, "%d", i))
		log.add(t, key, v)
		cur[key] = v
	}
	// A run of writes on one key, then writes interleaved over a few
	// keys, so that writes elsewhere are seen not to disturb a key's
	// sequence.
	for i := range n {
		write("k", i)
	}
	for i := range n {
		write(fmt.Sprintf("k%d", i%3), i)
	}
	for key, v := range cur {
		e := f.readAtLeast(f.store, key, v)
		require.Equal(t, v, e.Version, "Get(%q) after the last write", key)
	}
}

func (s *suite) testVersionsTwoHandles(t *testing.T) {
	f := s.setup(t, basicTimeout)
	handles := []backend.Store{f.store, f.open()}
	log := newVersionLog()
	cur := map[string]backend.Version{}
	i := 0
	for round := range s.scale(12, 40) {
		// The handles take turns in bursts of different lengths, so that
		// every write builds on versions the other handle handed out and
		// the handles issue different numbers of versions.
		h := round % 2
		st := handles[h]
		for range 1 + round%4 {
			key := fmt.Sprintf("k%d", i%3)
			i++
			if cur[key] != 0 {
				e := f.readAtLeast(st, key, cur[key])
				require.Equal(t, cur[key], e.Version, "handle %d reading %q written through the other handle", h, key)
			}
			v := f.put(st, key, cur[key], fmt.Appendf(nil, "%d", i))
			log.add(t, key, v)
			cur[key] = v
		}
	}
	// A stale expect through either handle is still a conflict.
	first := log.seen["k0"][0]
	for _, st := range handles {
		e := f.readAtLeast(st, "k0", cur["k0"])
		_, err := st.CompareAndPut(f.ctx, "k0", first, []byte("stale"))
		f.requireConflict(err, "k0", first, e)
	}
}

func (s *suite) testVersionsReopen(t *testing.T) {
	f := s.setup(t, basicTimeout)
	log := newVersionLog()
	keys := []string{"a", "b"}
	last := map[string]backend.Entry{}
	st := f.store
	const cycles = 4
	for cycle := range cycles {
		if cycle > 0 {
			// Reopen: every earlier handle is closed by now.
			st = f.open()
			for _, key := range keys {
				// Data survives the reopen (a harness requirement).
				f.mustGet(st, key, last[key])
			}
		}
		for i := range 3 {
			for _, key := range keys {
				val := fmt.Appendf(nil, "cycle %d write %d", cycle, i)
				v := f.put(st, key, last[key].Version, val)
				log.add(t, key, v)
				last[key] = backend.Entry{Value: val, Version: v}
			}
		}
		require.NoError(t, st.Close(), "Close before reopening")
	}
	st = f.open()
	for _, key := range keys {
		f.mustGet(st, key, last[key])
		v := f.put(st, key, last[key].Version, []byte("after the last reopen"))
		log.add(t, key, v) // greater than every version before the reopen
	}
}

func (s *suite) testVersionsAfterDelete(t *testing.T) {
	f := s.setup(t, basicTimeout)
	d := deleter(t, f.store)
	log := newVersionLog()
	v1 := f.put(f.store, "k", 0, []byte("one"))
	log.add(t, "k", v1)
	v2 := f.put(f.store, "k", v1, []byte("two"))
	log.add(t, "k", v2)
	require.NoError(t, d.Delete(f.ctx, "k", v2))
	f.mustNotExist(f.store, "k")

	// Recreating after a delete must not restart the key's versions.
	v3 := f.put(f.store, "k", 0, []byte("three"))
	log.add(t, "k", v3)
	require.NoError(t, d.Delete(f.ctx, "k", v3))

	// Nor after a delete and a reopen.
	require.NoError(t, f.store.Close())
	st := f.open()
	f.mustNotExist(st, "k")
	v4 := f.put(st, "k", 0, []byte("four"))
	log.add(t, "k", v4)
	f.mustGet(st, "k", backend.Entry{Value: []byte("four"), Version: v4})

	// An expect naming a version from before the delete is a conflict.
	_, err := st.CompareAndPut(f.ctx, "k", v2, []byte("stale"))
	f.requireConflict(err, "k", v2, backend.Entry{Value: []byte("four"), Version: v4})
}
