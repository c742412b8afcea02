package redis

import (
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

func TestScriptSurvivesScriptFlush(t *testing.T) {
	srv := redistest.StartLocal(t, redistest.LocalOptions{}).Server()
	s := openStore(t, srv)
	ctx := testCtx(t)
	admin := srv.Client(t)

	v := mustPut(t, s, "k", 0, "a")
	exists, err := admin.ScriptExists(ctx, writeScript.Hash()).Result()
	require.NoError(t, err)
	require.Equal(t, []bool{true}, exists)

	require.NoError(t, admin.ScriptFlush(ctx).Err())
	exists, err = admin.ScriptExists(ctx, writeScript.Hash()).Result()
	require.NoError(t, err)
	require.Equal(t, []bool{false}, exists)

	v = mustPut(t, s, "k", v, "b") // NOSCRIPT, then EVAL
	require.Equal(t, backend.Version(2), v)
	require.NoError(t, s.Delete(ctx, "k", v))
	exists, err = admin.ScriptExists(ctx, writeScript.Hash()).Result()
	require.NoError(t, err)
	require.Equal(t, []bool{true}, exists, "EVAL caches the script again")
}

func TestScriptAndVersionsSurviveRestart(t *testing.T) {
	local := redistest.StartLocal(t, redistest.LocalOptions{AOF: true, Fsync: "always"})
	srv := local.Server()
	s := openStore(t, srv)
	ctx := testCtx(t)

	v1 := mustPut(t, s, "k", 0, "a")
	v2 := mustPut(t, s, "k", v1, "b")
	mustPut(t, s, "gone", 0, "x")
	require.NoError(t, s.Delete(ctx, "gone", 1))

	local.Restart() // SIGKILL: the script cache is gone, the AOF is not

	admin := srv.Client(t)
	exists, err := admin.ScriptExists(ctx, writeScript.Hash()).Result()
	require.NoError(t, err)
	require.Equal(t, []bool{false}, exists)

	var e backend.Entry
	require.Eventually(t, func() bool {
		e, err = s.Get(ctx, "k")
		return err == nil
	}, testTimeout/2, 20*time.Millisecond, "the store reconnects: %v", err)
	require.Equal(t, backend.Entry{Value: []byte("b"), Version: v2}, e)

	v3 := mustPut(t, s, "k", v2, "c")
	require.Greater(t, v3, v2)
	v := mustPut(t, s, "gone", 0, "y")
	require.Greater(t, v, backend.Version(1), "the tombstone survived the restart")
}

// setEntry writes an entry hash directly: version v, value d, token w
// ("" leaves a field out).
func setEntry(t *testing.T, admin goredis.UniversalClient, rkey, v, d, w string) {
	t.Helper()
	var args []any
	for _, f := range [][2]string{{"v", v}, {"d", d}, {"w", w}} {
		if f[1] != "" {
			args = append(args, f[0], f[1])
		}
	}
	require.NoError(t, admin.Del(testCtx(t), rkey).Err())
	require.NoError(t, admin.HSet(testCtx(t), rkey, args...).Err())
}

// TestScriptVersionArithmetic: the scripts compute the next version on its
// decimal string (they no longer HINCRBY), so carries and versions beyond
// 2^53 must come out exact, through both scripts.
func TestScriptVersionArithmetic(t *testing.T) {
	s, srv := anyStore(t)
	admin := srv.Client(t)
	ctx := testCtx(t)
	for _, tc := range []struct{ from, next string }{
		{"1", "2"}, {"8", "9"}, {"9", "10"}, {"19", "20"}, {"99", "100"}, {"109", "110"},
		{"1999", "2000"}, {"9007199254740992", "9007199254740993"}, // 2^53
		{"9007199254740993", "9007199254740994"},
		{"999999999999999999", "1000000000000000000"},
		{"9223372036854775806", "9223372036854775807"}, // the largest
	} {
		from, err := parseVersionString(tc.from)
		require.NoError(t, err)
		want, err := parseVersionString(tc.next)
		require.NoError(t, err)

		setEntry(t, admin, s.RedisKey("cas"), tc.from, "x", "")
		v, err := s.CompareAndPut(ctx, "cas", from, []byte("y"))
		require.NoError(t, err, tc.from)
		require.Equal(t, want, v, "compare-and-put after %s", tc.from)
		got, err := admin.HGet(ctx, s.RedisKey("cas"), "v").Result()
		require.NoError(t, err)
		require.Equal(t, tc.next, got, "stored after %s", tc.from)

		setEntry(t, admin, s.RedisKey("tomb"), tc.from, "", "t") // a tombstone
		v, err = s.CompareAndPut(ctx, "tomb", 0, []byte("y"))
		require.NoError(t, err, tc.from)
		require.Equal(t, want, v, "re-create after %s", tc.from)

		setEntry(t, admin, s.RedisKey("put"), tc.from, "x", "")
		setEntry(t, admin, s.RedisKey("key"), tc.from, "x", "")
		s.hints.Drop(s.RedisKey("key"))
		kv, vers, err := s.UpdateWith(ctx, []backend.Put{{Key: "put", Expect: from, Value: []byte("p")}}, "key",
			func(backend.Entry) ([]byte, error) { return []byte("k"), nil })
		require.NoError(t, err, tc.from)
		require.Equal(t, want, kv, "batch key after %s", tc.from)
		require.Equal(t, []backend.Version{want}, vers, "batch put after %s", tc.from)
	}
}

// TestScriptVersionOverflowWritesNothing: past 2^63-1 a write fails (as
// HINCRBY did), and a batch fails before writing any key (with HINCRBY
// the batch wrote the puts before the overflowing one).
func TestScriptVersionOverflowWritesNothing(t *testing.T) {
	s, srv := anyStore(t)
	admin := srv.Client(t)
	ctx := testCtx(t)
	const top = "9223372036854775807"
	max, err := parseVersionString(top)
	require.NoError(t, err)
	setEntry(t, admin, s.RedisKey("full"), top, "x", "")

	_, err = s.CompareAndPut(ctx, "full", max, []byte("y"))
	require.ErrorContains(t, err, "overflow")
	e, err := s.Get(ctx, "full")
	require.NoError(t, err)
	require.Equal(t, backend.Entry{Value: []byte("x"), Version: max}, e, "nothing changed")

	puts := []backend.Put{{Key: "fresh", Value: []byte("a")}, {Key: "full", Expect: max, Value: []byte("b")}}
	_, _, err = s.UpdateWith(ctx, puts, "key", func(backend.Entry) ([]byte, error) { return []byte("k"), nil })
	require.ErrorContains(t, err, "overflow")
	for _, k := range []string{"fresh", "key"} {
		n, err := admin.Exists(ctx, s.RedisKey(k)).Result()
		require.NoError(t, err)
		require.Zero(t, n, "%s written by a failed batch", k)
	}
}

// TestBatchScriptReportsCorruptHashes: every malformed hash of
// TestMalformedHashIsCorrupt is reported as corrupt by the batch script,
// as a put and as the updated key (read by the script when this handle
// has a hint for it), and nothing is written.
func TestBatchScriptReportsCorruptHashes(t *testing.T) {
	s, srv := anyStore(t)
	admin := srv.Client(t)
	ctx := testCtx(t)
	set := func(backend.Entry) ([]byte, error) { return []byte("k"), nil }
	for name, fields := range malformedHashes {
		require.NoError(t, admin.HSet(ctx, s.RedisKey(name), fields...).Err())
		for _, expect := range []backend.Version{0, 1} {
			puts := []backend.Put{{Key: "fresh-" + name, Value: []byte("a")}, {Key: name, Expect: expect, Value: []byte("b")}}
			_, _, err := s.UpdateWith(ctx, puts, "key-"+name, set)
			require.ErrorIs(t, err, backend.ErrCorrupt, "%s as a put", name)
		}

		// The updated key: a hint for it, then the hash goes bad.
		key := "hinted-" + name
		_, _, err := s.UpdateWith(ctx, nil, key, set)
		require.NoError(t, err)
		require.NoError(t, admin.Del(ctx, s.RedisKey(key)).Err())
		require.NoError(t, admin.HSet(ctx, s.RedisKey(key), fields...).Err())
		_, _, err = s.UpdateWith(ctx, []backend.Put{{Key: "fresh-" + name, Value: []byte("a")}}, key, set)
		require.ErrorIs(t, err, backend.ErrCorrupt, "%s as the updated key", name)

		for _, k := range []string{"fresh-" + name, "key-" + name} {
			n, err := admin.Exists(ctx, s.RedisKey(k)).Result()
			require.NoError(t, err)
			require.Zero(t, n, "%s: %s written by a refused batch", name, k)
		}
		for _, k := range []string{name, key} {
			n, err := admin.HLen(ctx, s.RedisKey(k)).Result()
			require.NoError(t, err)
			require.Equal(t, int64(len(fields)/2), n, "%s: %s changed", name, k)
		}
	}
}
