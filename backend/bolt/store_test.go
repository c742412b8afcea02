package bolt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"
)

func TestCapabilities(t *testing.T) {
	s := newStore(t)
	c := s.Capabilities()
	assert.Equal(t, backend.Linearizable, c.Consistency)
	assert.True(t, c.Persistent)
	assert.Equal(t, 32768, c.MaxKeySize)
	assert.Equal(t, DefaultMaxValueSize, c.MaxValueSize)

	s2 := newStore(t, WithMaxValueSize(100))
	assert.Equal(t, 100, s2.Capabilities().MaxValueSize)
}

func TestOpenRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	for name, opt := range map[string]Option{
		"zero timeout":      WithLockTimeout(0),
		"negative timeout":  WithLockTimeout(-time.Second),
		"zero max value":    WithMaxValueSize(0),
		"huge max value":    WithMaxValueSize(MaxValueSizeLimit + 1),
		"negative max file": WithMaxFileSize(-1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Open(filepath.Join(dir, "x.db"), opt)
			require.Error(t, err)
		})
	}
	_, err := Open("")
	require.Error(t, err)
}

func TestCompareAndPut(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)

	_, err := s.Get(ctx, "k")
	require.ErrorIs(t, err, backend.ErrNotFound)

	v1, err := s.CompareAndPut(ctx, "k", 0, []byte("one"))
	require.NoError(t, err)
	require.Greater(t, v1, backend.Version(0))

	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("one"), Version: v1}, e)

	// Create-only on an existing key conflicts and carries the current entry.
	_, err = s.CompareAndPut(ctx, "k", 0, []byte("other"))
	require.ErrorIs(t, err, backend.ErrConflict)
	var ce *backend.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "k", ce.Key)
	assert.Equal(t, backend.Version(0), ce.Expected)
	assert.True(t, ce.Known)
	assert.Equal(t, backend.Entry{Value: []byte("one"), Version: v1}, ce.Current)

	// Wrong version conflicts.
	_, err = s.CompareAndPut(ctx, "k", v1+100, []byte("other"))
	require.ErrorIs(t, err, backend.ErrConflict)
	cur, ok := backend.CurrentEntry(err)
	require.True(t, ok)
	assert.Equal(t, v1, cur.Version)

	// Right version succeeds with a greater version.
	v2, err := s.CompareAndPut(ctx, "k", v1, []byte("two"))
	require.NoError(t, err)
	require.Greater(t, v2, v1)

	// The stale version now conflicts.
	_, err = s.CompareAndPut(ctx, "k", v1, []byte("three"))
	require.ErrorIs(t, err, backend.ErrConflict)

	// A non-zero expect on an absent key conflicts with a Known absent entry.
	_, err = s.CompareAndPut(ctx, "absent", 7, []byte("x"))
	require.ErrorAs(t, err, &ce)
	assert.True(t, ce.Known)
	assert.Equal(t, backend.Version(0), ce.Current.Version)
	_, err = s.Get(ctx, "absent")
	require.ErrorIs(t, err, backend.ErrNotFound)

	// Empty values round-trip.
	ve, err := s.CompareAndPut(ctx, "empty", 0, nil)
	require.NoError(t, err)
	e, err = s.Get(ctx, "empty")
	require.NoError(t, err)
	assert.Equal(t, ve, e.Version)
	assert.Empty(t, e.Value)

	// The value returned by Get is the caller's to keep and modify.
	e, err = s.Get(ctx, "k")
	require.NoError(t, err)
	e.Value[0] = 'X'
	e, err = s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, []byte("two"), e.Value)

	// Modifying the caller's buffer after the call changes nothing.
	buf := []byte("four")
	v4, err := s.CompareAndPut(ctx, "k", v2, buf)
	require.NoError(t, err)
	buf[0] = 'X'
	e, err = s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("four"), Version: v4}, e)
}

func TestBadInputChangesNothing(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t, WithMaxValueSize(8))
	v, err := s.CompareAndPut(ctx, "k", 0, []byte("v"))
	require.NoError(t, err)

	_, err = s.CompareAndPut(ctx, "", 0, []byte("v"))
	require.ErrorIs(t, err, backend.ErrInvalidKey)
	_, err = s.Get(ctx, "")
	require.ErrorIs(t, err, backend.ErrInvalidKey)
	require.ErrorIs(t, s.Delete(ctx, "", 0), backend.ErrInvalidKey)
	_, err = s.Update(ctx, "", func(backend.Entry) ([]byte, error) { return nil, nil })
	require.ErrorIs(t, err, backend.ErrInvalidKey)
	_, err = s.Watch(ctx, "")
	require.ErrorIs(t, err, backend.ErrInvalidKey)

	long := strings.Repeat("k", MaxKeySize+1)
	_, err = s.CompareAndPut(ctx, long, 0, []byte("v"))
	require.ErrorIs(t, err, backend.ErrInvalidKey)
	maxKey := strings.Repeat("k", MaxKeySize)
	_, err = s.CompareAndPut(ctx, maxKey, 0, []byte("v"))
	require.NoError(t, err, "a key of exactly MaxKeySize bytes is accepted")

	_, err = s.CompareAndPut(ctx, "k", v, []byte("123456789"))
	require.ErrorIs(t, err, backend.ErrTooLarge)
	_, err = s.Update(ctx, "k", func(backend.Entry) ([]byte, error) { return []byte("123456789"), nil })
	require.ErrorIs(t, err, backend.ErrTooLarge)
	_, err = s.Update(ctx, "k", nil)
	require.Error(t, err)

	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("v"), Version: v}, e)
}

// TestVersionsSurviveReopen writes, closes and reopens several times, and
// checks that every version is greater than all versions handed out before
// the reopen, and that no version is ever handed out twice.
func TestVersionsSurviveReopen(t *testing.T) {
	ctx := testCtx(t)
	path := tempPath(t)
	seen := map[backend.Version]string{}
	record := func(v backend.Version, what string) {
		t.Helper()
		prev, dup := seen[v]
		require.False(t, dup, "version %d handed out twice: %s and %s", v, prev, what)
		seen[v] = what
	}
	var maxBefore backend.Version
	for round := range 5 {
		s, err := Open(path)
		require.NoError(t, err)
		var maxThis backend.Version
		for k := range 3 {
			key := fmt.Sprintf("key%d", k)
			e, err := s.Get(ctx, key)
			if round == 0 {
				require.ErrorIs(t, err, backend.ErrNotFound)
			} else {
				require.NoError(t, err)
				require.LessOrEqual(t, e.Version, maxBefore)
			}
			ver := e.Version
			for i := range 4 {
				ver, err = s.CompareAndPut(ctx, key, ver, fmt.Appendf(nil, "r%d-%d", round, i))
				require.NoError(t, err)
				require.Greater(t, ver, maxBefore, "version after reopen must exceed all earlier ones")
				record(ver, fmt.Sprintf("round %d %s #%d", round, key, i))
				maxThis = max(maxThis, ver)
			}
		}
		// A key deleted in this round and re-created in the next.
		if round%2 == 0 {
			v, err := s.CompareAndPut(ctx, "transient", 0, []byte("x"))
			require.NoError(t, err)
			record(v, fmt.Sprintf("round %d transient", round))
			maxThis = max(maxThis, v)
			require.NoError(t, s.Delete(ctx, "transient", v))
		} else {
			v, err := s.CompareAndPut(ctx, "transient", 0, []byte("y"))
			require.NoError(t, err)
			require.Greater(t, v, maxBefore)
			record(v, fmt.Sprintf("round %d transient", round))
			maxThis = max(maxThis, v)
			require.NoError(t, s.Delete(ctx, "transient", v))
		}
		require.NoError(t, s.Close())
		maxBefore = maxThis
	}
	assert.Len(t, seen, 5*(3*4+1))
}

func TestDeleteThenCreate(t *testing.T) {
	ctx := testCtx(t)
	path := tempPath(t)
	s := openAt(t, path)

	err := s.Delete(ctx, "k", 0)
	require.ErrorIs(t, err, backend.ErrNotFound)
	err = s.Delete(ctx, "k", 5)
	require.ErrorIs(t, err, backend.ErrNotFound)

	v1, err := s.CompareAndPut(ctx, "k", 0, []byte("a"))
	require.NoError(t, err)
	err = s.Delete(ctx, "k", v1+1)
	require.ErrorIs(t, err, backend.ErrConflict)
	cur, ok := backend.CurrentEntry(err)
	require.True(t, ok)
	assert.Equal(t, backend.Entry{Value: []byte("a"), Version: v1}, cur)
	err = s.Delete(ctx, "k", 0)
	require.ErrorIs(t, err, backend.ErrConflict)

	require.NoError(t, s.Delete(ctx, "k", v1))
	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, backend.ErrNotFound)
	require.ErrorIs(t, s.Delete(ctx, "k", v1), backend.ErrNotFound)
	_, err = s.CompareAndPut(ctx, "k", v1, []byte("b"))
	require.ErrorIs(t, err, backend.ErrConflict, "the deleted version is gone")

	v2, err := s.CompareAndPut(ctx, "k", 0, []byte("b"))
	require.NoError(t, err)
	require.Greater(t, v2, v1)

	// And across a reopen.
	require.NoError(t, s.Delete(ctx, "k", v2))
	require.NoError(t, s.Close())
	s = openAt(t, path)
	v3, err := s.CompareAndPut(ctx, "k", 0, []byte("c"))
	require.NoError(t, err)
	require.Greater(t, v3, v2)
}

func TestSecondOpenOfLockedFileFails(t *testing.T) {
	path := tempPath(t)
	s := openAt(t, path)

	// The lock timeout is honoured and named (no wall-clock assertion: the
	// test's own deadline catches a hang).
	const timeout = 300 * time.Millisecond
	s2, err := Open(path, WithLockTimeout(timeout))
	require.Nil(t, s2)
	require.ErrorIs(t, err, backend.ErrUnavailable)
	assert.Contains(t, err.Error(), "locked")
	assert.Contains(t, err.Error(), "after "+timeout.String(), "the error names the lock timeout it waited")

	// Default timeout through the registry.
	ctx := testCtx(t)
	_, err = backend.Open(ctx, "bolt://"+path)
	require.ErrorIs(t, err, backend.ErrUnavailable)
	assert.Contains(t, err.Error(), "after "+DefaultLockTimeout.String(), "the default lock timeout applies")

	// A context deadline shorter than the lock timeout wins: the wait is
	// cut to the time the context has left, not the URI's 10 s.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = backend.Open(short, "bolt://"+path+"?timeout=10s")
	require.ErrorIs(t, err, backend.ErrUnavailable)
	assert.NotContains(t, err.Error(), "after 10s", "Open waited the URI's lock timeout instead of the context's deadline")

	// Once the first store is closed, the file opens.
	require.NoError(t, s.Close())
	s3, err := Open(path, WithLockTimeout(timeout))
	require.NoError(t, err)
	require.NoError(t, s3.Close())
}

// lockHolderEnv makes the test binary act as a second process that holds
// the store open (see TestLockedByAnotherProcess).
const lockHolderEnv = "STICKYPUB_BOLT_LOCK_HOLDER"

func TestLockedByAnotherProcess(t *testing.T) {
	if path := os.Getenv(lockHolderEnv); path != "" {
		s, err := Open(path)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println("locked")
		// Hold the lock until the parent closes our stdin.
		_, _ = os.Stdin.Read(make([]byte, 1))
		_ = s.Close()
		os.Exit(0)
	}

	ctx := testCtx(t)
	path := tempPath(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLockedByAnotherProcess$")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	_, err = Open(path, WithLockTimeout(250*time.Millisecond))
	require.ErrorIs(t, err, backend.ErrUnavailable)
	assert.Contains(t, err.Error(), "after 250ms", "the error names the lock timeout it waited")

	// After the other process exits the file is ours.
	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait())
	s := openAt(t, path, WithLockTimeout(2*time.Second))
	_, err = s.CompareAndPut(ctx, "k", 0, []byte("v"))
	require.NoError(t, err)
}

func TestCancelledContext(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	v, err := s.CompareAndPut(ctx, "k", 0, []byte("v"))
	require.NoError(t, err)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()

	for name, c := range map[string]context.Context{"cancelled": cancelled, "expired": expired} {
		t.Run(name, func(t *testing.T) {
			want := c.Err()
			_, err := s.Get(c, "k")
			require.ErrorIs(t, err, want)
			_, err = s.CompareAndPut(c, "k", v, []byte("changed"))
			require.ErrorIs(t, err, want)
			_, err = s.CompareAndPut(c, "new", 0, []byte("changed"))
			require.ErrorIs(t, err, want)
			require.ErrorIs(t, s.Delete(c, "k", v), want)
			_, err = s.Update(c, "k", func(backend.Entry) ([]byte, error) { return []byte("changed"), nil })
			require.ErrorIs(t, err, want)
			_, err = s.Watch(c, "k")
			require.ErrorIs(t, err, want)
		})
	}
	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("v"), Version: v}, e)
	_, err = s.Get(ctx, "new")
	require.ErrorIs(t, err, backend.ErrNotFound)
}

// TestCancelWhileQueuedWithdraws cancels an operation that is still queued
// behind a running commit: the call returns the context error and the
// operation never happens.
func TestCancelWhileQueuedWithdraws(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	v, err := s.CompareAndPut(ctx, "k", 0, []byte("v"))
	require.NoError(t, err)

	b := blockCommitter(t, ctx, s, "block")
	opCtx, cancel := context.WithCancel(ctx)
	casDone := async(func() (backend.Version, error) {
		return s.CompareAndPut(opCtx, "k", v, []byte("withdrawn"))
	})
	delDone := async(func() (backend.Version, error) {
		return 0, s.Delete(opCtx, "k", v)
	})
	waitQueued(t, ctx, s, 2)
	cancel()
	r := await(t, ctx, casDone)
	require.ErrorIs(t, r.err, context.Canceled)
	r = await(t, ctx, delDone)
	require.ErrorIs(t, r.err, context.Canceled)

	// An operation queued after the withdrawn ones still runs.
	kept := async(func() (backend.Version, error) {
		return s.CompareAndPut(ctx, "other", 0, []byte("kept"))
	})
	waitQueued(t, ctx, s, 1)
	require.NoError(t, b.unblock(t, ctx))
	r = await(t, ctx, kept)
	require.NoError(t, r.err)

	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("v"), Version: v}, e, "withdrawn operations must not apply")
}

// TestCancelAfterTakenWaitsForResult cancels an operation the committer is
// already running: the caller must get the real (successful) result.
func TestCancelAfterTakenWaitsForResult(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	opCtx, cancel := context.WithCancel(ctx)
	entered := make(chan struct{})
	release := make(chan struct{})
	done := async(func() (backend.Version, error) {
		return s.Update(opCtx, "k", func(backend.Entry) ([]byte, error) {
			close(entered)
			<-release
			return []byte("committed"), nil
		})
	})
	<-entered
	cancel()
	select {
	case r := <-done:
		t.Fatalf("Update returned %v, %v before its commit finished", r.ver, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	r := await(t, ctx, done)
	require.NoError(t, r.err)
	e, err := s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("committed"), Version: r.ver}, e)
}

func TestClosedStore(t *testing.T) {
	ctx := testCtx(t)
	s := newStore(t)
	v, err := s.CompareAndPut(ctx, "k", 0, []byte("v"))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")

	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, backend.ErrClosed)
	_, err = s.CompareAndPut(ctx, "k", v, []byte("x"))
	require.ErrorIs(t, err, backend.ErrClosed)
	require.ErrorIs(t, s.Delete(ctx, "k", v), backend.ErrClosed)
	_, err = s.Update(ctx, "k", func(backend.Entry) ([]byte, error) { return nil, nil })
	require.ErrorIs(t, err, backend.ErrClosed)
	_, err = s.Watch(ctx, "k")
	require.ErrorIs(t, err, backend.ErrClosed)
}

// TestCloseFailsQueuedOperations closes the store while operations wait
// behind a running commit: the running batch completes, the queued
// operations fail with ErrClosed and change nothing.
func TestCloseFailsQueuedOperations(t *testing.T) {
	ctx := testCtx(t)
	path := tempPath(t)
	s := openAt(t, path)
	b := blockCommitter(t, ctx, s, "block")
	queued := async(func() (backend.Version, error) {
		return s.CompareAndPut(ctx, "queued", 0, []byte("x"))
	})
	waitQueued(t, ctx, s, 1)

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	r := await(t, ctx, queued)
	require.ErrorIs(t, r.err, backend.ErrClosed)
	// A second Close waits for the first.
	second := make(chan error, 1)
	go func() { second <- s.Close() }()

	require.NoError(t, b.unblock(t, ctx), "the batch in progress completes")
	require.NoError(t, <-closed)
	require.NoError(t, <-second)

	s = openAt(t, path)
	e, err := s.Get(ctx, "block")
	require.NoError(t, err)
	assert.Equal(t, []byte("blocker"), e.Value)
	_, err = s.Get(ctx, "queued")
	require.ErrorIs(t, err, backend.ErrNotFound)
}

func TestCorruptRecord(t *testing.T) {
	ctx := testCtx(t)
	path := tempPath(t)
	s, err := Open(path)
	require.NoError(t, err)
	good, err := s.CompareAndPut(ctx, "good", 0, []byte("fine"))
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// Damage records behind the store's back.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		data := tx.Bucket([]byte(dataBucketName))
		if err := data.Put([]byte("short"), []byte("abc")); err != nil {
			return err
		}
		if err := data.Put([]byte("zero"), make([]byte, 12)); err != nil {
			return err
		}
		_, err := data.CreateBucket([]byte("nested"))
		return err
	}))
	require.NoError(t, db.Close())

	s = openAt(t, path)
	for _, key := range []string{"short", "zero", "nested"} {
		t.Run(key, func(t *testing.T) {
			_, err := s.Get(ctx, key)
			require.ErrorIs(t, err, backend.ErrCorrupt)
			_, err = s.CompareAndPut(ctx, key, 0, []byte("x"))
			require.ErrorIs(t, err, backend.ErrCorrupt)
			require.ErrorIs(t, s.Delete(ctx, key, 0), backend.ErrCorrupt)
			_, err = s.Update(ctx, key, func(backend.Entry) ([]byte, error) { return []byte("x"), nil })
			require.ErrorIs(t, err, backend.ErrCorrupt)
		})
	}
	e, err := s.Get(ctx, "good")
	require.NoError(t, err)
	assert.Equal(t, backend.Entry{Value: []byte("fine"), Version: good}, e)
}

func TestForeignFileIsCorrupt(t *testing.T) {
	path := tempPath(t)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucket([]byte("someone-else"))
		return err
	}))
	require.NoError(t, db.Close())
	_, err = Open(path)
	require.ErrorIs(t, err, backend.ErrCorrupt)

	path2 := tempPath(t)
	db, err = bbolt.Open(path2, 0o600, &bbolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte(metaBucketName))
		if err != nil {
			return err
		}
		return b.Put([]byte(formatKey), []byte("stickypub-bolt/999"))
	}))
	require.NoError(t, db.Close())
	_, err = Open(path2)
	require.ErrorIs(t, err, backend.ErrCorrupt)

	_, err = Open(filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"))
	require.Error(t, err)
	require.False(t, errors.Is(err, backend.ErrUnavailable))
}
