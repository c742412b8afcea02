package redis

import (
	"testing"
	"time"

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
