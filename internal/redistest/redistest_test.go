package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestGlobEscape(t *testing.T) {
	require.Equal(t, `a\*b\?c\[d\]e\\f`, globEscape(`a*b?c[d]e\f`))
}

func TestPrefixIsUnique(t *testing.T) {
	a, b := Prefix(t), Prefix(t)
	require.NotEqual(t, a, b)
	require.True(t, strings.HasPrefix(a, PrefixRoot))
	require.True(t, strings.HasSuffix(a, ":"))
}

func TestLocalKillAndStartKeepsAOFData(t *testing.T) {
	l := StartLocal(t, LocalOptions{AOF: true, Fsync: "always"})
	require.True(t, l.Running())
	c := l.Server().Client(t)
	require.NoError(t, c.Set(ctx(t), "k", "v", 0).Err())
	l.Kill()
	require.False(t, l.Running())
	require.Error(t, c.Ping(ctx(t)).Err())
	l.Start()
	got, err := c.Get(ctx(t), "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", got)
}

func TestDeletePrefixTouchesOnlyThePrefix(t *testing.T) {
	srv := StartLocal(t, LocalOptions{}).Server()
	c := srv.Client(t)
	prefix := "p[1]*:"
	for i := range 2500 {
		require.NoError(t, c.Set(ctx(t), fmt.Sprint(prefix, i), "x", 0).Err())
	}
	require.NoError(t, c.Set(ctx(t), "p1:other", "x", 0).Err())
	require.NoError(t, c.Set(ctx(t), "p[1]other", "x", 0).Err())
	n, err := DeletePrefix(ctx(t), c, prefix)
	require.NoError(t, err)
	require.Equal(t, 2500, n)
	size, err := c.DBSize(ctx(t)).Result()
	require.NoError(t, err)
	require.Equal(t, int64(2), size)
}

func TestClusterFormsAndCleansUp(t *testing.T) {
	cl := StartCluster(t, LocalOptions{})
	srv := cl.Server()
	c := srv.Client(t)
	require.NoError(t, c.Ping(ctx(t)).Err())
	prefix := Prefix(t)
	for i := range 100 {
		require.NoError(t, c.Set(ctx(t), fmt.Sprint(prefix, i), "x", 0).Err())
	}
	for _, addr := range cl.Addrs {
		n, err := (&Server{Addrs: []string{addr}}).Client(t).DBSize(ctx(t)).Result()
		require.NoError(t, err)
		require.Positive(t, n, "keys spread over every master")
	}
	n, err := DeletePrefix(ctx(t), c, prefix)
	require.NoError(t, err)
	require.Equal(t, 100, n)
}

func TestRequirePrefersRedisAddr(t *testing.T) {
	l := StartLocal(t, LocalOptions{})
	t.Setenv(EnvAddr, "redis://"+l.Addr+"/2")
	srv := Require(t)
	require.Equal(t, "env", srv.Source)
	require.Equal(t, 2, srv.DB)
	require.False(t, srv.Private)
	t.Setenv(EnvAddr, "")
	srv = Require(t)
	require.Equal(t, "local", srv.Source)
	require.True(t, srv.Private)
}

// TestRequireWithoutRedis runs TestRequireInner in a subprocess where no
// Redis can be found: it must skip, or fail under STICKYPUB_REQUIRE_REDIS=1.
func TestRequireWithoutRedis(t *testing.T) {
	for _, strict := range []bool{false, true} {
		cmd := exec.CommandContext(ctx(t), os.Args[0], "-test.run=^TestRequireInner$", "-test.v")
		cmd.Env = append(os.Environ(), "STICKYPUB_REDISTEST_INNER=1", EnvAddr+"=", "PATH=/nonexistent",
			"DOCKER_HOST=unix:///nonexistent/docker.sock", fmt.Sprintf("%s=%v", EnvRequire, strict))
		out, err := cmd.CombinedOutput()
		for _, name := range []string{EnvAddr, ServerBinary, "Docker"} {
			require.Contains(t, string(out), name, "the message names every way to get Redis")
		}
		if strict {
			require.Error(t, err, string(out))
			require.Contains(t, string(out), "--- FAIL: TestRequireInner")
		} else {
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), "--- SKIP: TestRequireInner")
		}
	}
}

// TestExternalWithoutRedis runs TestExternalInner in a subprocess where
// nothing answers at the default address: External must skip, or fail under
// STICKYPUB_REQUIRE_REDIS=1 (it used to skip even then).
func TestExternalWithoutRedis(t *testing.T) {
	for _, strict := range []bool{false, true} {
		cmd := exec.CommandContext(ctx(t), os.Args[0], "-test.run=^TestExternalInner$", "-test.v")
		cmd.Env = append(os.Environ(), "STICKYPUB_REDISTEST_INNER=1", EnvAddr+"=", fmt.Sprintf("%s=%v", EnvRequire, strict))
		out, err := cmd.CombinedOutput()
		require.Contains(t, string(out), EnvAddr, "the message names REDIS_ADDR")
		if strict {
			require.Error(t, err, string(out))
			require.Contains(t, string(out), "--- FAIL: TestExternalInner")
		} else {
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), "--- SKIP: TestExternalInner")
		}
	}
}

func TestExternalInner(t *testing.T) {
	if os.Getenv("STICKYPUB_REDISTEST_INNER") == "" {
		t.Skip("runs only as TestExternalWithoutRedis's subprocess")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing answers there now
	externalAt(t, dead)
	t.Fatal("External returned without a server")
}

func TestRequireInner(t *testing.T) {
	if os.Getenv("STICKYPUB_REDISTEST_INNER") == "" {
		t.Skip("runs only as TestRequireWithoutRedis's subprocess")
	}
	Require(t)
	t.Fatal("Require returned without a server")
}
