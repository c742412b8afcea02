package redis

import (
	"context"
	"log/slog"
	"os"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// quietLogger drops go-redis's own log lines: the fault tests kill servers
// on purpose, and every refused dial would otherwise print a line.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// dropGoRedis is a slog handler that drops the go-redis lines a Store
// routes to slog.Default() and passes every other record on.
type dropGoRedis struct{ slog.Handler }

func (h dropGoRedis) Handle(ctx context.Context, r slog.Record) error {
	goRedis := false
	r.Attrs(func(a slog.Attr) bool {
		goRedis = a.Key == "source" && a.Value.String() == "go-redis"
		return !goRedis
	})
	if goRedis {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h dropGoRedis) WithAttrs(as []slog.Attr) slog.Handler {
	return dropGoRedis{h.Handler.WithAttrs(as)}
}

func (h dropGoRedis) WithGroup(name string) slog.Handler {
	return dropGoRedis{h.Handler.WithGroup(name)}
}

func TestMain(m *testing.M) {
	if os.Getenv(stderrChildEnv) != "" {
		// TestGoRedisLinesStayOffStderr's child: keep go-redis's defaults.
		os.Exit(m.Run())
	}
	// Until the first Store installs its router, and for lines routed to
	// slog.Default(), stay quiet about dials the tests make fail on purpose.
	goredis.SetLogger(quietLogger{})
	// (A fresh text handler: wrapping slog's default handler and setting
	// the result as default would loop through the log package.)
	slog.SetDefault(slog.New(dropGoRedis{slog.NewTextHandler(os.Stderr, nil)}))
	goleak.VerifyTestMain(m)
}
