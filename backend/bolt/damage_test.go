package bolt

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// damagedOpenEnv makes the test binary open the file it names and print
// the outcome, in a child process, so that a crash (SIGBUS in bbolt) is a
// failed assertion of the parent rather than the end of the test binary.
const damagedOpenEnv = "STICKYPUB_BOLT_OPEN_DAMAGED"

// checkedValue is a value that carries the SHA-256 of its first part, so a
// test can tell a damaged value from a healthy one.
func checkedValue(i int) []byte {
	body := bytes.Repeat([]byte(fmt.Sprintf("<value %04d>", i)), 80)
	sum := sha256.Sum256(body)
	return append(body, sum[:]...)
}

func verifyChecked(_ string, v []byte) error {
	if len(v) < sha256.Size {
		return errors.New("short value")
	}
	body := v[:len(v)-sha256.Size]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], v[len(body):]) {
		return errors.New("value does not match its checksum")
	}
	return nil
}

// filledFile writes 40 records of about 1 KB into a new file (about 60 KB,
// so truncating it to 20000 bytes or less cuts pages in use) and closes it.
func filledFile(t *testing.T) string {
	t.Helper()
	ctx := testCtx(t)
	path := tempPath(t)
	s, err := Open(path)
	require.NoError(t, err)
	for i := range 40 {
		_, err := s.CompareAndPut(ctx, fmt.Sprintf("k%02d", i), 0, checkedValue(i))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	return path
}

func TestOpenTruncatedFileIsCorrupt(t *testing.T) {
	if path := os.Getenv(damagedOpenEnv); path != "" {
		s, err := Open(path, WithLockTimeout(time.Second))
		if err == nil {
			_, err = s.Get(t.Context(), "k00")
			_ = s.Close()
		}
		fmt.Printf("corrupt=%v\nerror: %v\n", errors.Is(err, backend.ErrCorrupt), err)
		os.Exit(0)
	}
	src := filledFile(t)
	for _, size := range []int64{20000, 16384, 8192} {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			ctx := testCtx(t)
			path := tempPath(t)
			data, err := os.ReadFile(src)
			require.NoError(t, err)
			require.Greater(t, int64(len(data)), size)
			require.NoError(t, os.WriteFile(path, data[:size], 0o600))

			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOpenTruncatedFileIsCorrupt$")
			cmd.Env = append(os.Environ(), damagedOpenEnv+"="+path)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "the child crashed:\n%s", out)
			assert.Contains(t, string(out), "corrupt=true")
			assert.Contains(t, string(out), path)
			assert.Contains(t, string(out), "truncated")
			assert.Contains(t, string(out), "restore the file from a backup")

			// In this process too, now that it is known not to crash.
			_, err = Open(path, WithLockTimeout(time.Second))
			require.ErrorIs(t, err, backend.ErrCorrupt)
			fi, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, size, fi.Size(), "opening must not change the damaged file")
		})
	}
}

func TestOpenErrorNamesThePathOnce(t *testing.T) {
	notDir := tempPath(t)
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	path := notDir + "/x.db" // a path under a regular file
	_, err := Open(path)
	require.Error(t, err)
	assert.Equal(t, 1, bytes.Count([]byte(err.Error()), []byte(path)), err.Error())
}

func TestReadOnly(t *testing.T) {
	ctx := testCtx(t)
	path := filledFile(t)
	require.NoError(t, os.Chmod(path, 0o400))
	rw, err := Open(path, WithLockTimeout(200*time.Millisecond))
	if err == nil { // root may open it anyway
		require.NoError(t, rw.Close())
	} else {
		require.ErrorIs(t, err, os.ErrPermission)
	}
	s := openAt(t, path, WithReadOnly())
	e, err := s.Get(ctx, "k07")
	require.NoError(t, err)
	assert.Equal(t, checkedValue(7), e.Value)
	_, err = s.CompareAndPut(ctx, "k07", e.Version, []byte("x"))
	require.ErrorIs(t, err, ErrReadOnly)
	_, err = s.Update(ctx, "k07", func(backend.Entry) ([]byte, error) { return []byte("x"), nil })
	require.ErrorIs(t, err, ErrReadOnly)
	require.ErrorIs(t, s.Delete(ctx, "k07", e.Version), ErrReadOnly)
	// Two read-only stores share the file.
	s2 := openAt(t, path, WithReadOnly(), WithLockTimeout(time.Second))
	_, err = s2.Get(ctx, "k00")
	require.NoError(t, err)
}

func TestCheck(t *testing.T) {
	ctx := testCtx(t)
	src := filledFile(t)
	data, err := os.ReadFile(src)
	require.NoError(t, err)

	t.Run("healthy", func(t *testing.T) {
		r, err := Check(ctx, src, time.Second, verifyChecked)
		require.NoError(t, err)
		assert.True(t, r.Healthy(), "%+v", r)
		assert.True(t, r.StructureChecked)
		assert.Equal(t, 40, r.Records)
	})
	t.Run("truncated", func(t *testing.T) {
		path := tempPath(t)
		require.NoError(t, os.WriteFile(path, data[:16384], 0o600))
		r, err := Check(ctx, path, time.Second, verifyChecked)
		require.NoError(t, err)
		assert.False(t, r.Healthy())
		require.ErrorIs(t, r.Damage, backend.ErrCorrupt)
		assert.Contains(t, r.Damage.Error(), "truncated")
		assert.False(t, r.StructureChecked)
		assert.Less(t, r.Records, 40)
		assert.NotEmpty(t, r.Incomplete)
	})
	t.Run("bit flipped in a value", func(t *testing.T) {
		path := tempPath(t)
		flipped := bytes.Clone(data)
		i := bytes.Index(flipped, []byte("<value 0013>"))
		require.Positive(t, i)
		flipped[i+3] ^= 0x01
		require.NoError(t, os.WriteFile(path, flipped, 0o600))
		r, err := Check(ctx, path, time.Second, verifyChecked)
		require.NoError(t, err)
		assert.False(t, r.Healthy())
		assert.Nil(t, r.Damage)
		assert.Empty(t, r.Structure, "bbolt does not checksum values")
		assert.Equal(t, 40, r.Records)
		assert.Equal(t, 1, r.BadCount)
		require.Len(t, r.BadRecords, 1)
		assert.Contains(t, r.BadRecords[0], `"k13"`)
	})
}
