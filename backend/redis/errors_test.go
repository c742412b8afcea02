package redis

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

func TestForeignKeyTypeIsCorrupt(t *testing.T) {
	s, srv := anyStore(t)
	ctx := testCtx(t)
	admin := srv.Client(t)
	require.NoError(t, admin.Set(ctx, s.RedisKey("str"), "foreign", 0).Err())
	require.NoError(t, admin.RPush(ctx, s.RedisKey("list"), "foreign").Err())

	for _, key := range []string{"str", "list"} {
		_, err := s.Get(ctx, key)
		require.ErrorIs(t, err, backend.ErrCorrupt, key)
		require.Contains(t, err.Error(), "WRONGTYPE")
		_, err = s.CompareAndPut(ctx, key, 0, []byte("x"))
		require.ErrorIs(t, err, backend.ErrCorrupt, key)
		require.ErrorIs(t, s.Delete(ctx, key, 1), backend.ErrCorrupt, key)
	}
	got, err := admin.Get(ctx, s.RedisKey("str")).Result()
	require.NoError(t, err)
	require.Equal(t, "foreign", got, "nothing changed")
}

// malformedHashes are entry hashes the adapter must report as corrupt,
// as HSET arguments.
var malformedHashes = map[string][]any{
	"no-version":      {"d", "x"},
	"garbage-version": {"v", "abc", "d", "x"},
	"zero-version":    {"v", "0", "d", "x"},
	"padded-version":  {"v", "007", "d", "x"},
	"negative":        {"v", "-3", "d", "x"},
	"huge-version":    {"v", "99999999999999999999999", "d", "x"},
	"foreign-field":   {"v", "1", "d", "x", "z", "1"},
	"foreign-no-d":    {"v", "1", "w", "t", "z", "1"}, // as many fields as a live entry
	"token-only":      {"w", "t"},
}

func TestMalformedHashIsCorrupt(t *testing.T) {
	s, srv := anyStore(t)
	ctx := testCtx(t)
	admin := srv.Client(t)
	for name, fields := range malformedHashes {
		require.NoError(t, admin.HSet(ctx, s.RedisKey(name), fields...).Err())
		_, err := s.Get(ctx, name)
		require.ErrorIs(t, err, backend.ErrCorrupt, name)
		_, err = s.CompareAndPut(ctx, name, 1, []byte("new"))
		require.ErrorIs(t, err, backend.ErrCorrupt, name)
		_, err = s.CompareAndPut(ctx, name, 0, []byte("new"))
		require.ErrorIs(t, err, backend.ErrCorrupt, name)
		require.ErrorIs(t, s.Delete(ctx, name, 1), backend.ErrCorrupt, name)
		n, err := admin.HLen(ctx, s.RedisKey(name)).Result()
		require.NoError(t, err)
		require.Equal(t, int64(len(fields)/2), n, "%s: nothing changed", name)
	}
}

// closedPort returns a local address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// requireOwnFailure checks that a call failed by itself, on the refused
// dial, and not because ctx ran out: a call that kept retrying until the
// test's deadline fails here however fast the machine is.
func requireOwnFailure(t *testing.T, ctx context.Context, err error, what string) {
	t.Helper()
	require.ErrorIs(t, err, backend.ErrUnavailable, what)
	require.NotErrorIs(t, err, context.DeadlineExceeded, "%s gave up only when the context ended", what)
	require.NoError(t, ctx.Err(), "%s returned only after the context ended", what)
}

func TestUnreachableServer(t *testing.T) {
	addr := closedPort(t)
	ctx := testCtx(t)

	start := time.Now()
	_, err := Open(ctx, Options{Addrs: []string{addr}, DialTimeout: 200 * time.Millisecond})
	requireOwnFailure(t, ctx, err, "Open")
	require.Contains(t, err.Error(), addr)
	t.Logf("Open: %v (%s)", err, time.Since(start))

	// Through the registry, too.
	_, err = backend.Open(ctx, "redis://"+addr+"/0?dial_timeout=200ms")
	require.ErrorIs(t, err, backend.ErrUnavailable)

	// A store built on a client that never connected.
	client := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer client.Close()
	s, err := New(client, Options{})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Get(ctx, "k")
	requireOwnFailure(t, ctx, err, "Get")
	require.Contains(t, err.Error(), addr)
	_, err = s.CompareAndPut(ctx, "k", 0, []byte("x"))
	requireOwnFailure(t, ctx, err, "CompareAndPut")
	require.NotErrorIs(t, err, ErrOutcomeUnknown, "a refused dial sent nothing: %v", err)
	_, err = s.Watch(ctx, "k")
	requireOwnFailure(t, ctx, err, "Watch")

	// A deadline shorter than the dial gives the context's error.
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	<-short.Done()
	_, err = s.Get(short, "k")
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestWrongPassword(t *testing.T) {
	local := redistest.StartLocal(t, redistest.LocalOptions{Password: "sesame"})
	ctx := testCtx(t)
	for name, pass := range map[string]string{"wrong": "open up", "missing": ""} {
		_, err := Open(ctx, Options{Addrs: []string{local.Addr}, Password: pass})
		require.ErrorIs(t, err, ErrAuth, name)
		require.ErrorIs(t, err, backend.ErrUnavailable, name)
		require.Contains(t, err.Error(), local.Addr)
		t.Logf("%s password: %v", name, err)
	}
	s := openStore(t, local.Server())
	mustPut(t, s, "k", 0, "x")

	_, err := backend.Open(ctx, "redis://:nope@"+local.Addr)
	require.ErrorIs(t, err, ErrAuth)
	st, err := backend.Open(ctx, "redis://:sesame@"+local.Addr+"/0?prefix="+s.Prefix())
	require.NoError(t, err)
	defer st.Close()
	e, err := st.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "x", string(e.Value))
}

func TestTLS(t *testing.T) {
	local := redistest.StartLocal(t, redistest.LocalOptions{TLS: true})
	ctx := testCtx(t)
	prefix := redistest.Prefix(t)
	st, err := backend.Open(ctx, "rediss://"+local.Addr+"?ca="+local.CAFile+"&prefix="+prefix)
	require.NoError(t, err)
	defer st.Close()
	v, err := st.CompareAndPut(ctx, "k", 0, []byte("secret"))
	require.NoError(t, err)
	require.Equal(t, backend.Version(1), v)

	_, err = backend.Open(ctx, "redis://"+local.Addr+"?dial_timeout=500ms&read_timeout=500ms")
	require.ErrorIs(t, err, backend.ErrUnavailable, "plain TCP to a TLS port")
	_, err = backend.Open(ctx, "rediss://"+local.Addr+"?dial_timeout=500ms")
	require.ErrorIs(t, err, backend.ErrUnavailable, "an untrusted certificate")
	t.Logf("untrusted: %v", err)
}

// reply is a fake server error reply.
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

func TestClassify(t *testing.T) {
	cases := []struct {
		err    error
		closed bool
		is     []error
		not    []error
		says   string
	}{
		{err: reply("WRONGTYPE Operation against a key holding the wrong kind of value"), is: []error{backend.ErrCorrupt}},
		{err: reply("STICKYPUB_CORRUPT missing version script: abc, on @user_script:12."), is: []error{backend.ErrCorrupt}, says: "missing version"},
		{err: reply("WRONGPASS invalid username-password pair"), is: []error{backend.ErrUnavailable, ErrAuth}},
		{err: reply("NOAUTH Authentication required."), is: []error{backend.ErrUnavailable, ErrAuth}},
		{err: reply("LOADING Redis is loading the dataset in memory"), is: []error{backend.ErrUnavailable}, not: []error{ErrAuth}},
		{err: reply("OOM command not allowed when used memory > 'maxmemory'."), is: []error{backend.ErrUnavailable}},
		{err: reply("READONLY You can't write against a read only replica."), is: []error{backend.ErrUnavailable}},
		{err: reply("MOVED 3999 127.0.0.1:6381"), not: []error{backend.ErrUnavailable}, says: "cluster mode"},
		{err: reply("ERR unknown command 'EVALSHA'"), not: []error{backend.ErrUnavailable, backend.ErrCorrupt}},
		{err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, is: []error{backend.ErrUnavailable}},
		{err: io.EOF, is: []error{backend.ErrUnavailable}},
		{err: goredis.ErrClosed, is: []error{backend.ErrClosed}},
		{err: io.EOF, closed: true, is: []error{backend.ErrClosed}},
	}
	for _, c := range cases {
		got := classify("redis op on here", c.err, c.closed)
		for _, target := range c.is {
			require.ErrorIs(t, got, target, "%v", c.err)
		}
		for _, target := range c.not {
			require.NotErrorIs(t, got, target, "%v", c.err)
		}
		require.Contains(t, got.Error(), "redis op on here")
		require.Contains(t, got.Error(), c.says)
		require.NotContains(t, got.Error(), "@user_script")
	}
}
