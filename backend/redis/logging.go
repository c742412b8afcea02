package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// go-redis v9.23.0 has a single process-wide logger (internal.Logger, set
// with redis.SetLogger) and no per-client one; its pool logs failed dials
// with context.Background() (internal/pool/pool.go, dialConn), so neither a
// client option nor a context value can tell which client a line is about.
// The router below is therefore installed process-wide, once, and
// attributes each line to a Store by the server addresses it mentions.

// goRedisLogs is the router every Store registers with. It is the one
// package-level variable of the adapter, because the logger it replaces is
// one per process.
var goRedisLogs = &logRouter{sinks: make(map[*logSink]struct{})}

// logRouter implements go-redis's logging interface.
type logRouter struct {
	install sync.Once

	mu       sync.Mutex
	sinks    map[*logSink]struct{}
	fallback *logSink // lines no registered Store claims
}

// logSink is one Store's destination for go-redis lines.
type logSink struct {
	logger   *slog.Logger // nil: slog.Default() at the time of the line
	interval time.Duration
	addrs    []string // configured server addresses
	now      func() time.Time

	mu     sync.Mutex
	remote map[string]struct{}   // resolved addresses of failed dials
	kinds  map[string]*logBudget // by format string
}

// logBudget rate-limits one kind of line.
type logBudget struct {
	last       time.Time
	suppressed int
}

// newLogSink returns a sink logging to logger at most one line of a kind
// per interval.
func newLogSink(logger *slog.Logger, interval time.Duration, addrs []string) *logSink {
	return &logSink{
		logger:   logger,
		interval: interval,
		addrs:    addrs,
		now:      time.Now,
		remote:   make(map[string]struct{}),
		kinds:    make(map[string]*logBudget),
	}
}

// dialFailed records the resolved address of a failed dial (for example
// "[::1]:6379" for "localhost:6379"), which go-redis's line will name.
func (k *logSink) dialFailed(remote string) {
	k.mu.Lock()
	if len(k.remote) < 64 {
		k.remote[remote] = struct{}{}
	}
	k.mu.Unlock()
}

// claims reports whether msg names one of the sink's servers.
func (k *logSink) claims(msg string) bool {
	for _, a := range k.addrs {
		if a != "" && strings.Contains(msg, a) {
			return true
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for a := range k.remote {
		if strings.Contains(msg, a) {
			return true
		}
	}
	return false
}

// log writes msg unless a line of the same kind was written less than the
// interval ago; a written line reports how many were suppressed before it.
func (k *logSink) log(ctx context.Context, kind, msg string) {
	now := k.now()
	k.mu.Lock()
	b := k.kinds[kind]
	if b == nil {
		if len(k.kinds) >= 256 { // formats are constants; bound it anyway
			clear(k.kinds)
		}
		b = &logBudget{}
		k.kinds[kind] = b
	} else if now.Sub(b.last) < k.interval {
		b.suppressed++
		k.mu.Unlock()
		return
	}
	b.last = now
	suppressed := b.suppressed
	b.suppressed = 0
	k.mu.Unlock()
	attrs := []any{slog.String("source", "go-redis")}
	if len(k.addrs) > 0 {
		attrs = append(attrs, slog.String("server", strings.Join(k.addrs, ",")))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	logger := k.logger
	if logger == nil { // the fallback: whatever the default is now
		logger = slog.Default()
	}
	logger.WarnContext(ctx, msg, attrs...)
}

// register installs the router (once per process) and adds k.
func (r *logRouter) register(k *logSink) {
	r.install.Do(func() {
		r.mu.Lock()
		r.fallback = newLogSink(nil, DefaultLogInterval, nil)
		r.mu.Unlock()
		goredis.SetLogger(r)
	})
	r.mu.Lock()
	r.sinks[k] = struct{}{}
	r.mu.Unlock()
}

// unregister removes k.
func (r *logRouter) unregister(k *logSink) {
	r.mu.Lock()
	delete(r.sinks, k)
	r.mu.Unlock()
}

// Printf implements go-redis's internal.Logging: it routes the line to the
// one Store whose servers it names, else to the only Store registered, else
// to slog.Default(), rate-limited by its format.
func (r *logRouter) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	r.mu.Lock()
	var to *logSink
	for k := range r.sinks {
		if k.claims(msg) {
			to = k
			break
		}
	}
	if to == nil && len(r.sinks) == 1 {
		for k := range r.sinks {
			to = k
		}
	}
	if to == nil {
		to = r.fallback
	}
	r.mu.Unlock()
	to.log(ctx, format, msg)
}
