package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/stickypub/stickypub/backend"
)

// Defaults applied by Open and New to zero Options fields.
const (
	// DefaultAddr is the server Open connects to when Options.Addrs is empty.
	DefaultAddr = "127.0.0.1:6379"
	// DefaultPrefix is the key prefix when Options.Prefix is empty.
	DefaultPrefix = "stickypub:"
	// DefaultMaxKeySize is the longest key accepted, in bytes, not counting
	// the prefix.
	DefaultMaxKeySize = 1024
	// DefaultMaxValueSize is the largest value accepted, in bytes.
	DefaultMaxValueSize = 16 << 20
	// MaxValueSizeLimit is the most MaxValueSize may be: Redis refuses
	// strings and arguments over 512 MiB (proto-max-bulk-len), and the
	// script call carries a little more than the value.
	MaxValueSizeLimit = 512<<20 - 64<<10
	// DefaultDialTimeout bounds each connection attempt.
	DefaultDialTimeout = 2 * time.Second
	// DefaultDialerRetries is how many times go-redis dials before a command
	// attempt fails.
	DefaultDialerRetries = 2
	// DefaultMaxRetries is how many times go-redis retries a failed command.
	// Retrying writes is safe: the scripts recognise their own earlier run.
	DefaultMaxRetries = 2
	// DefaultPipelines is how many pipelines a Store keeps in flight at
	// once when Options.Pipelines is 0 (see Options.Pipelines).
	DefaultPipelines = 1
	// MaxPipelines is the most Options.Pipelines may be.
	MaxPipelines = 64
	// DefaultLogInterval is the least time between two log lines of the same
	// kind from go-redis for one Store when Options.LogInterval is 0.
	DefaultLogInterval = 10 * time.Second
)

// Options configures Open (all fields) and New (only Prefix, MaxKeySize,
// MaxValueSize, Pipelines, Logger and LogInterval; the client brings its own
// connection settings).
type Options struct {
	// Addrs are host:port addresses: one server, or seed nodes of a cluster.
	// Empty means DefaultAddr.
	Addrs []string
	// Cluster selects go-redis's ClusterClient. It is required for more than
	// one address.
	Cluster bool
	// Username and Password authenticate (AUTH / ACL users).
	Username, Password string
	// DB selects a database; it must be 0 on a cluster.
	DB int
	// TLS, when not nil, makes connections use TLS with this configuration.
	TLS *tls.Config

	// Prefix is prepended to every key, channel name included; empty means
	// DefaultPrefix. A hash tag in it ("{app}:") would put every key in one
	// cluster slot.
	Prefix string
	// MaxKeySize is the longest key in bytes (prefix not counted); 0 means
	// DefaultMaxKeySize.
	MaxKeySize int
	// MaxValueSize is the largest value in bytes; 0 means
	// DefaultMaxValueSize. It may not exceed MaxValueSizeLimit.
	MaxValueSize int

	// DialTimeout bounds one connection attempt; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound socket reads and writes; 0 keeps the
	// go-redis default (5 s). Context deadlines apply as well.
	ReadTimeout, WriteTimeout time.Duration
	// PoolSize is the size of go-redis's main connection pool per node; 0
	// keeps the go-redis default (10 per GOMAXPROCS). With pipelining on
	// (the default) the Store's own Get, CompareAndPut and Delete calls use
	// at most Pipelines connections of go-redis's separate pipeline pool
	// (sized to Pipelines by Open) plus one main-pool connection for a
	// call made while the Store is otherwise idle, however many goroutines
	// call it, so PoolSize only matters for Watch's PubSub connection and
	// for what the caller runs on Client(). With Pipelines -1 every
	// concurrent call holds a main-pool connection for its round trip: set
	// PoolSize to at least the number of goroutines that call the Store at
	// once, or they queue inside go-redis (and fail after its pool timeout)
	// on top of whatever retries the caller does.
	PoolSize int
	// MaxRetries is the number of command retries; 0 means
	// DefaultMaxRetries, -1 disables retries.
	MaxRetries int

	// Pipelines selects auto-pipelining and its width. Calls made while
	// the Store is idle run at once on the caller's goroutine; calls made
	// while others are in flight are queued, and up to Pipelines writer
	// loops each send everything queued as one pipeline and hand every
	// caller its own reply (each compare-and-put is still its own atomic
	// script). 0 means DefaultPipelines; -1 turns pipelining off, so that
	// every call is its own round trip on a pooled connection (the behaviour
	// before pipelining, kept for comparison). At most MaxPipelines.
	Pipelines int

	// Logger receives go-redis's own log lines (failed dials, pool and
	// cluster notices) that concern this Store's servers, at Warn level,
	// at most one line of each kind per LogInterval (the next line says
	// how many were suppressed). nil means slog.Default(). go-redis v9 has
	// one process-wide logger, so the first Store opened or created
	// installs a router with redis.SetLogger; lines it cannot attribute to
	// one Store go, equally rate-limited, to slog.Default(). A program that
	// calls redis.SetLogger itself afterwards takes the lines back.
	Logger *slog.Logger
	// LogInterval is the least time between two go-redis log lines of the
	// same kind for this Store; 0 means DefaultLogInterval.
	LogInterval time.Duration
}

// withDefaults fills zero fields and validates the result.
func (o Options) withDefaults() (Options, error) {
	o, err := o.storeDefaults()
	if err != nil {
		return o, err
	}
	if len(o.Addrs) == 0 {
		o.Addrs = []string{DefaultAddr}
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	switch {
	case !o.Cluster && len(o.Addrs) > 1:
		return o, fmt.Errorf("redis: %d addresses given without Cluster", len(o.Addrs))
	case o.Cluster && o.DB != 0:
		return o, fmt.Errorf("redis: a cluster has only database 0, not %d", o.DB)
	case o.DB < 0:
		return o, fmt.Errorf("redis: negative database %d", o.DB)
	}
	for _, a := range o.Addrs {
		if a == "" {
			return o, fmt.Errorf("redis: empty address")
		}
	}
	return o, nil
}

// storeDefaults fills and validates the fields New uses.
func (o Options) storeDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.MaxKeySize == 0 {
		o.MaxKeySize = DefaultMaxKeySize
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = DefaultMaxValueSize
	}
	if o.Pipelines == 0 {
		o.Pipelines = DefaultPipelines
	}
	if o.LogInterval == 0 {
		o.LogInterval = DefaultLogInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.Pipelines < -1 || o.Pipelines > MaxPipelines:
		return o, fmt.Errorf("redis: Pipelines %d is outside -1..%d", o.Pipelines, MaxPipelines)
	case o.LogInterval < 0:
		return o, fmt.Errorf("redis: LogInterval %s is negative", o.LogInterval)
	case o.MaxKeySize < 0:
		return o, fmt.Errorf("redis: MaxKeySize %d is negative", o.MaxKeySize)
	case o.MaxValueSize < 0 || o.MaxValueSize > MaxValueSizeLimit:
		return o, fmt.Errorf("redis: MaxValueSize %d is outside 1..%d", o.MaxValueSize, MaxValueSizeLimit)
	}
	return o, nil
}

// capabilities is what a store with these (defaulted) options declares.
func (o Options) capabilities() backend.Capabilities {
	return backend.Capabilities{
		Consistency:  backend.Linearizable,
		MaxKeySize:   o.MaxKeySize,
		MaxValueSize: o.MaxValueSize,
		Persistent:   true,
	}
}

// pipelinePoolSize is the size of go-redis's pipeline pool: one connection
// per pipeline loop, so that a pipeline never spills to the main pool.
func (o Options) pipelinePoolSize() int {
	if o.Pipelines > 0 {
		return o.Pipelines
	}
	return 0 // the go-redis default; only caller pipelines use it
}

// newClient builds the go-redis client for (defaulted) options. dialed,
// when not nil, is told the remote address of every failed dial, so that
// go-redis's log lines about it can be attributed to this client.
func (o Options) newClient(dialed func(remote string)) goredis.UniversalClient {
	// Redis 7.0 does not know CLIENT MAINT_NOTIFICATIONS; do not ask.
	maint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	dial := goredis.NewDialer(&goredis.Options{DialTimeout: o.DialTimeout, TLSConfig: o.TLS})
	dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil && dialed != nil {
			var oe *net.OpError
			if errors.As(err, &oe) && oe.Addr != nil {
				dialed(oe.Addr.String())
			}
		}
		return c, err
	}
	if o.Cluster {
		return goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs:                    o.Addrs,
			Username:                 o.Username,
			Password:                 o.Password,
			TLSConfig:                o.TLS,
			DialTimeout:              o.DialTimeout,
			DialerRetries:            DefaultDialerRetries,
			ReadTimeout:              o.ReadTimeout,
			WriteTimeout:             o.WriteTimeout,
			PoolSize:                 o.PoolSize,
			PipelinePoolSize:         o.pipelinePoolSize(),
			MaxRetries:               o.MaxRetries,
			ContextTimeoutEnabled:    true,
			MaintNotificationsConfig: maint,
			Dialer:                   dialer,
		})
	}
	return goredis.NewClient(&goredis.Options{
		Addr:                     o.Addrs[0],
		Username:                 o.Username,
		Password:                 o.Password,
		DB:                       o.DB,
		TLSConfig:                o.TLS,
		DialTimeout:              o.DialTimeout,
		DialerRetries:            DefaultDialerRetries,
		ReadTimeout:              o.ReadTimeout,
		WriteTimeout:             o.WriteTimeout,
		PoolSize:                 o.PoolSize,
		PipelinePoolSize:         o.pipelinePoolSize(),
		MaxRetries:               o.MaxRetries,
		ContextTimeoutEnabled:    true,
		MaintNotificationsConfig: maint,
		Dialer:                   dialer,
	})
}
