package bolt

import (
	"errors"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// TestSharedBatchStaleHint: a remote handle's UpdateWith runs its function
// on the entry it last wrote (a hint). When another handle moved the key
// meanwhile, the owner refuses the stale hint and the function runs again
// on the current entry: nothing written on a stale view.
func TestSharedBatchStaleHint(t *testing.T) {
	ctx := testCtx(t)
	owner, a := ownerAndRemote(t)

	var calls int
	incr := func(cur backend.Entry) ([]byte, error) {
		calls++
		n := 0
		if cur.Version != 0 {
			n, _ = strconv.Atoi(string(cur.Value))
		}
		return []byte(strconv.Itoa(n + 1)), nil
	}
	v1, _, err := a.UpdateWith(ctx, []backend.Put{{Key: "p1", Value: []byte("x")}}, "n", incr)
	require.NoError(t, err)
	require.Equal(t, 1, calls, "no hint yet: one read, one run")

	// Another process writes the key: a's hint is now stale.
	_, err = owner.CompareAndPut(ctx, "n", v1, []byte("41"))
	require.NoError(t, err)

	calls = 0
	v3, vers, err := a.UpdateWith(ctx, []backend.Put{{Key: "p2", Value: []byte("y")}}, "n", incr)
	require.NoError(t, err)
	require.Len(t, vers, 1)
	require.Equal(t, 2, calls, "the stale hint is refused, fn runs again on the current entry")
	e, err := owner.Get(ctx, "n")
	require.NoError(t, err)
	require.Equal(t, "42", string(e.Value))
	require.Equal(t, v3, e.Version)

	// The hint is now the entry a wrote: the next batch is one run.
	calls = 0
	_, _, err = a.UpdateWith(ctx, nil, "n", incr)
	require.NoError(t, err)
	require.Equal(t, 1, calls)
}

// TestSharedBatchSameVersionOtherValue: the owner checks the value the
// function saw, not only its version, so a hint whose version matches but
// whose value differs (a file restored from a copy) is refused.
func TestSharedBatchSameVersionOtherValue(t *testing.T) {
	ctx := testCtx(t)
	owner, a := ownerAndRemote(t)
	v, err := owner.CompareAndPut(ctx, "k", 0, []byte("real"))
	require.NoError(t, err)
	a.hints.Put("k", backend.Entry{Version: v, Value: []byte("stale")})
	var saw []string
	_, _, err = a.UpdateWith(ctx, nil, "k", func(cur backend.Entry) ([]byte, error) {
		saw = append(saw, string(cur.Value))
		return append([]byte(nil), cur.Value...), nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"stale", "real"}, saw)
}

// TestSharedBatchFnRefusesHint: an update function that fails on the
// entry it was given is asked again about the current entry when what it
// saw was only a hint (a caller's function can depend on more than the
// key, e.g. blobs a stale entry names): its error is returned only for an
// entry read from the owner.
func TestSharedBatchFnRefusesHint(t *testing.T) {
	ctx := testCtx(t)
	owner, a := ownerAndRemote(t)
	v, err := owner.CompareAndPut(ctx, "k", 0, []byte("real"))
	require.NoError(t, err)
	a.hints.Put("k", backend.Entry{Version: v - 1, Value: []byte("stale")})
	errStale := errors.New("names a blob that is gone")
	fn := func(cur backend.Entry) ([]byte, error) {
		if string(cur.Value) == "stale" {
			return nil, errStale
		}
		return []byte("next"), nil
	}
	_, _, err = a.UpdateWith(ctx, nil, "k", fn)
	require.NoError(t, err, "fn's refusal of a hint is not the caller's error")

	// On an entry read from the owner, fn's error is returned.
	_, err = owner.CompareAndPut(ctx, "k2", 0, []byte("stale"))
	require.NoError(t, err)
	_, _, err = a.UpdateWith(ctx, nil, "k2", fn)
	require.ErrorIs(t, err, errStale)
}

// ownerAndRemote opens a shared file twice: the owner, and a handle that
// reaches it through the socket; both are closed when the test ends.
func ownerAndRemote(t *testing.T) (owner, remote *Shared) {
	t.Helper()
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "b.db")
	owner, err := OpenShared(ctx, path, remoteOpts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = owner.Close() })
	remote, err = OpenShared(ctx, path, remoteOpts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = remote.Close() })
	require.False(t, remote.IsOwner())
	return owner, remote
}
