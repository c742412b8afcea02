package redis

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// quietLogger drops go-redis's own log lines: the fault tests kill servers
// on purpose, and every refused dial would otherwise print a line.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	goredis.SetLogger(quietLogger{})
	goleak.VerifyTestMain(m)
}
