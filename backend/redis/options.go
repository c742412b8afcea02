package redis

import (
	"crypto/tls"
	"fmt"
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
)

// Options configures Open (all fields) and New (only Prefix, MaxKeySize
// and MaxValueSize; the client brings its own connection settings).
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
	// PoolSize is the connection pool size per node; 0 keeps the go-redis
	// default (10 per GOMAXPROCS).
	PoolSize int
	// MaxRetries is the number of command retries; 0 means
	// DefaultMaxRetries, -1 disables retries.
	MaxRetries int
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
	switch {
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

// newClient builds the go-redis client for (defaulted) options.
func (o Options) newClient() goredis.UniversalClient {
	// Redis 7.0 does not know CLIENT MAINT_NOTIFICATIONS; do not ask.
	maint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
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
			MaxRetries:               o.MaxRetries,
			ContextTimeoutEnabled:    true,
			MaintNotificationsConfig: maint,
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
		MaxRetries:               o.MaxRetries,
		ContextTimeoutEnabled:    true,
		MaintNotificationsConfig: maint,
	})
}
