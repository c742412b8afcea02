package redis

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stickypub/stickypub/backend"
)

// recordingHandler keeps every record it is given.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}

func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// matching returns the records whose message contains substr, with their
// attributes as a map.
func (h *recordingHandler) matching(substr string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.records {
		if !strings.Contains(r.Message, substr) {
			continue
		}
		attrs := map[string]string{"msg": r.Message, "level": r.Level.String()}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		out = append(out, attrs)
	}
	return out
}

// TestGoRedisLinesGoToTheStoreLogger dials a dead port: go-redis's "failed
// to dial" lines (one per dial round, three per failed command) reach the
// Store's slog logger as warnings naming the server, at most one per
// LogInterval, and the next line after the interval counts the ones
// suppressed.
func TestGoRedisLinesGoToTheStoreLogger(t *testing.T) {
	addr := closedPort(t)
	ctx := testCtx(t)
	rec := &recordingHandler{}
	now := time.Unix(1000, 0)
	var clockMu sync.Mutex
	s, err := New(mustClient(t, addr), Options{Logger: slog.New(rec), LogInterval: time.Minute})
	require.NoError(t, err)
	defer s.Close()
	s.logs.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }

	// A store of our own, opened on the same dead port through Open, has
	// its dials attributed too.
	_, err = Open(ctx, Options{Addrs: []string{addr}, DialTimeout: 200 * time.Millisecond,
		Logger: slog.New(rec), LogInterval: time.Minute})
	require.ErrorIs(t, err, backend.ErrUnavailable)

	for range 5 {
		_, err := s.Get(ctx, "k")
		require.ErrorIs(t, err, backend.ErrUnavailable)
	}
	lines := rec.matching("failed to dial")
	require.NotEmpty(t, lines, "go-redis's dial failures reach the store's logger")
	require.LessOrEqual(t, len(lines), 2, "one line per store per interval, not one per dial: %v", lines)
	for _, l := range lines {
		require.Equal(t, "WARN", l["level"])
		require.Equal(t, "go-redis", l["source"])
		require.Equal(t, addr, l["server"])
		require.Contains(t, l["msg"], addr)
		require.NotContains(t, l["msg"], "redis: redis:", "no doubled prefix")
	}
	before := len(lines)

	clockMu.Lock()
	now = now.Add(2 * time.Minute)
	clockMu.Unlock()
	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, backend.ErrUnavailable)
	lines = rec.matching("failed to dial")
	require.Len(t, lines, before+1, "a new interval allows one more line")
	require.NotEmpty(t, lines[len(lines)-1]["suppressed"], "it counts the suppressed lines: %v", lines[len(lines)-1])
}

// stderrChildEnv makes the test binary the child of
// TestGoRedisLinesStayOffStderr.
const stderrChildEnv = "STICKYPUB_REDIS_STDERR_CHILD"

// TestGoRedisLinesStayOffStderr runs the test binary again with go-redis's
// default logger (which writes to stderr) and has it open a Store with a
// discarding Logger on a dead port and fail a few calls: nothing from
// go-redis may reach the process's stderr.
func TestGoRedisLinesStayOffStderr(t *testing.T) {
	if os.Getenv(stderrChildEnv) != "" {
		addr := os.Getenv(stderrChildEnv)
		ctx := testCtx(t)
		discard := slog.New(slog.DiscardHandler)
		_, err := Open(ctx, Options{Addrs: []string{addr}, DialTimeout: 100 * time.Millisecond, Logger: discard})
		require.ErrorIs(t, err, backend.ErrUnavailable)
		s, err := New(mustClient(t, addr), Options{Logger: discard})
		require.NoError(t, err)
		defer s.Close()
		for range 3 {
			_, err = s.CompareAndPut(ctx, "k", 0, []byte("x"))
			require.ErrorIs(t, err, backend.ErrUnavailable)
		}
		return
	}
	ctx := testCtx(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGoRedisLinesStayOffStderr$", "-test.v")
	cmd.Env = append(os.Environ(), stderrChildEnv+"="+closedPort(t))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "child: %s\n%s", stdout.String(), stderr.String())
	require.Contains(t, stdout.String(), "--- PASS: TestGoRedisLinesStayOffStderr")
	require.NotContains(t, stderr.String(), "failed to dial", "go-redis wrote to stderr")
	require.NotContains(t, stderr.String(), "redis:", "go-redis wrote to stderr")
}
