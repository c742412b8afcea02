package conformance

// Contract tests of backend.Lister: listing by prefix, pages, deleted keys,
// foreign keys, concurrent writers, errors.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

func lister(t *testing.T, st backend.Store) backend.Lister {
	t.Helper()
	l, ok := st.(backend.Lister)
	if !ok {
		t.Skip("store does not implement backend.Lister")
	}
	return l
}

// listAll lists prefix and returns the set of keys passed (duplicates are
// allowed by the contract and merged here). It fails the test on an empty
// page or a key without the prefix.
func (f *fixture) listAll(l backend.Lister, prefix string) map[string]bool {
	f.t.Helper()
	got := map[string]bool{}
	err := l.List(f.ctx, prefix, func(keys []string) error {
		if len(keys) == 0 {
			return errors.New("List passed an empty page")
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, prefix) {
				return fmt.Errorf("List(%q) passed the foreign key %q", prefix, k)
			}
			got[k] = true
		}
		return nil
	})
	require.NoError(f.t, err, "List(%q)", prefix)
	return got
}

// requireKeys checks that got holds exactly want.
func requireKeys(t *testing.T, want []string, got map[string]bool, what string) {
	t.Helper()
	var missing, extra []string
	for _, k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if !slices.Contains(want, k) {
			extra = append(extra, k)
		}
	}
	require.Empty(t, missing, "%s: settled keys missing from the listing (%d listed, %d expected)", what, len(got), len(want))
	require.Empty(t, extra, "%s: keys listed that were never written under the prefix", what)
}

// testListPrefix: exactly the keys under a prefix, including keys with
// the characters glob patterns treat specially, none of their neighbours.
func (s *suite) testListPrefix(t *testing.T) {
	f := s.setup(t, basicTimeout)
	l := lister(t, f.store)
	in := []string{"a/1", "a/2", "a/x/y", "a/*", "a/[b]", "a/?", `a/\`, "a/é"}
	out := []string{"a", "a0", "ab/1", "b/a/1", "A/1", "*", "x/a/"}
	for _, k := range append(slices.Clone(in), out...) {
		f.put(f.store, k, 0, []byte(k))
	}
	requireKeys(t, in, f.listAll(l, "a/"), `List("a/")`)
	requireKeys(t, []string{"a/*"}, f.listAll(l, "a/*"), `List("a/*")`)
	requireKeys(t, []string{"a/[b]"}, f.listAll(l, "a/["), `List("a/[")`)
	requireKeys(t, nil, f.listAll(l, "zz/"), `List("zz/")`)
	// The empty prefix lists the whole namespace: every key written, and
	// nothing of other namespaces (each harness is its own).
	requireKeys(t, append(slices.Clone(in), out...), f.listAll(l, ""), `List("")`)
}

// testListPages: a listing of many keys (more than any sensible page)
// misses none and passes no other.
func (s *suite) testListPages(t *testing.T) {
	f := s.setup(t, stressTimeout)
	l := lister(t, f.store)
	n := s.scale(1500, 3000)
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("p/%05d", i)
		f.put(f.store, want[i], 0, []byte{byte(i)})
	}
	for i := range 50 {
		f.put(f.store, fmt.Sprintf("q/%05d", i), 0, []byte{byte(i)})
	}
	requireKeys(t, want, f.listAll(l, "p/"), `List("p/")`)
	// Another handle lists the same keys.
	requireKeys(t, want, f.listAll(lister(t, f.open()), "p/"), `List("p/") on another handle`)
}

// testListDeleted: deleted keys are not listed; re-created ones are.
func (s *suite) testListDeleted(t *testing.T) {
	f := s.setup(t, basicTimeout)
	l := lister(t, f.store)
	d := deleter(t, f.store)
	var want []string
	for i := range 20 {
		k := fmt.Sprintf("d/%02d", i)
		v := f.put(f.store, k, 0, []byte("x"))
		if i%2 == 0 {
			require.NoError(t, d.Delete(f.ctx, k, v), "Delete(%q)", k)
			continue
		}
		want = append(want, k)
	}
	f.put(f.store, "d/00", 0, []byte("again"))
	want = append(want, "d/00")
	requireKeys(t, want, f.listAll(l, "d/"), `List("d/") after deletes`)
}

// testListConcurrent: keys that exist for the whole listing are all
// listed while other writers create (and delete) keys beside them; no key
// outside the prefix, and none never written, is listed.
func (s *suite) testListConcurrent(t *testing.T) {
	f := s.setup(t, stressTimeout)
	l := lister(t, f.store)
	n := s.scale(600, 1500)
	settled := make([]string, n)
	for i := range n {
		settled[i] = fmt.Sprintf("c/s/%05d", i)
		f.put(f.store, settled[i], 0, []byte("settled"))
	}
	ctx, cancel := context.WithCancel(f.ctx)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written = map[string]bool{}
	)
	// However the listing checks end (a failed require ends this goroutine
	// early), the writers stop before the subtest does.
	defer func() {
		cancel()
		wg.Wait()
	}()
	for w := range 2 {
		st := f.open() // here: open fails the test from this goroutine only
		wg.Go(func() {
			d, _ := st.(backend.Deleter)
			for i := 0; ctx.Err() == nil; i++ {
				k := fmt.Sprintf("c/n/%d/%05d", w, i)
				mu.Lock()
				written[k] = true
				mu.Unlock()
				v, err := st.CompareAndPut(ctx, k, 0, []byte("new"))
				if err == nil && d != nil && i%3 == 0 {
					err = d.Delete(ctx, k, v)
				}
				if err == nil {
					_, err = st.CompareAndPut(ctx, fmt.Sprintf("c%d/%05d", w, i), 0, []byte("beside"))
				}
				if err != nil && ctx.Err() == nil {
					assert.NoError(t, err, "concurrent writer %d", w)
					return
				}
			}
		})
	}
	for range 3 {
		got := f.listAll(l, "c/")
		mu.Lock()
		var missing, foreign []string
		for _, k := range settled {
			if !got[k] {
				missing = append(missing, k)
			}
		}
		for k := range got {
			if !strings.HasPrefix(k, "c/s/") && !written[k] {
				foreign = append(foreign, k)
			}
		}
		mu.Unlock()
		require.Empty(t, missing, "settled keys missing from a listing made while others wrote")
		require.Empty(t, foreign, "keys listed that nobody wrote under the prefix")
	}
}

// testListStop: an error from the callback stops the listing and is
// returned; the callback may use the store.
func (s *suite) testListStop(t *testing.T) {
	f := s.setup(t, basicTimeout)
	l := lister(t, f.store)
	for i := range 10 {
		f.put(f.store, fmt.Sprintf("e/%d", i), 0, []byte("x"))
	}
	stop := errors.New("stop here")
	calls := 0
	err := l.List(f.ctx, "e/", func(keys []string) error {
		calls++
		_, err := f.store.Get(f.ctx, keys[0])
		require.NoError(t, err, "Get from inside the List callback")
		return stop
	})
	require.ErrorIs(t, err, stop, "List returns the callback's error")
	require.Equal(t, 1, calls, "List called the callback again after it failed")
}

// testListErrors: a listing on a closed handle or with a done context
// fails (ErrClosed; the context's error).
func (s *suite) testListErrors(t *testing.T) {
	f := s.setup(t, basicTimeout)
	lister(t, f.store)
	f.put(f.store, "k/1", 0, []byte("x"))
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	err := f.store.(backend.Lister).List(ctx, "k/", func([]string) error { return nil })
	require.ErrorIs(t, err, context.Canceled, "List with a canceled context")
	st := f.open()
	require.NoError(t, st.Close())
	err = st.(backend.Lister).List(f.ctx, "k/", func([]string) error { return nil })
	require.ErrorIs(t, err, backend.ErrClosed, "List on a closed handle")
}
