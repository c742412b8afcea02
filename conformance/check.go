package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// requireBytes compares byte slices. Short ones go through testify for a
// readable diff; long ones report length and first difference only.
func requireBytes(t *testing.T, want, got []byte, msgAndArgs ...any) {
	t.Helper()
	if len(want) <= 256 && len(got) <= 256 {
		// nil and empty are the same value for a store.
		if len(want) == 0 && len(got) == 0 {
			return
		}
		require.Equal(t, want, got, msgAndArgs...)
		return
	}
	if bytes.Equal(want, got) {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	require.FailNow(t, fmt.Sprintf("values differ: want %d bytes, got %d bytes, first difference at byte %d", len(want), len(got), i), msgAndArgs...)
}

// requireConflict checks that err reports a version conflict on key for
// expect. When the error carries the current entry (Known), the entry must
// be want (Version 0: the key does not exist). Stores weaker than
// linearizable may report an older entry, but never one whose version is
// expect.
func (f *fixture) requireConflict(err error, key string, expect backend.Version, want backend.Entry) {
	f.t.Helper()
	require.Error(f.t, err, "CompareAndPut(%q, expect %d) succeeded; want a conflict (current version %d)", key, expect, want.Version)
	require.ErrorIs(f.t, err, backend.ErrConflict, "CompareAndPut(%q, expect %d)", key, expect)
	var ce *backend.ConflictError
	if !errors.As(err, &ce) || !ce.Known {
		return
	}
	require.Equal(f.t, key, ce.Key, "ConflictError.Key")
	require.Equal(f.t, expect, ce.Expected, "ConflictError.Expected")
	require.NotEqual(f.t, expect, ce.Current.Version, "ConflictError.Current has the expected version: then it was no conflict")
	if !f.linearizable() && ce.Current.Version != want.Version {
		f.t.Logf("conflict on %q carried version %d, latest is %d (allowed at %v)", key, ce.Current.Version, want.Version, f.caps.Consistency)
		return
	}
	require.Equal(f.t, want.Version, ce.Current.Version, "ConflictError.Current.Version")
	if want.Version != 0 {
		requireBytes(f.t, want.Value, ce.Current.Value, "ConflictError.Current.Value")
	}
}

// versionLog records the versions handed out for each key, in the order the
// test saw them, and checks that they strictly increase and never repeat.
type versionLog struct {
	seen map[string][]backend.Version
}

func newVersionLog() *versionLog { return &versionLog{seen: make(map[string][]backend.Version)} }

// add records v for key and fails when it is not greater than every
// version recorded for key before (which also rules out reuse).
func (l *versionLog) add(t *testing.T, key string, v backend.Version) {
	t.Helper()
	prev := l.seen[key]
	l.seen[key] = append(prev, v)
	require.NotZero(t, v, "version 0 handed out for %q", key)
	for _, p := range prev {
		require.NotEqual(t, p, v, "version %d handed out twice for %q (history %v)", v, key, l.seen[key])
	}
	if n := len(prev); n > 0 {
		require.Greater(t, v, prev[n-1], "version of %q went from %d to %d (history %v)", key, prev[n-1], v, l.seen[key])
	}
}
