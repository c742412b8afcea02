package gateway

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/core"
)

// Defaults of Config's zero fields.
const (
	DefaultMaxBodyBytes = core.MaxPayload + 64<<10
	DefaultStreamBuffer = 256
	DefaultWriteTimeout = 10 * time.Second
	DefaultHeartbeat    = 15 * time.Second
	DefaultPollInterval = 500 * time.Millisecond
	DefaultTimeout      = 30 * time.Second
)

// Config configures a gateway Server.
type Config struct {
	// Store is the store the gateway's clients use (required). The gateway
	// does not close it.
	Store backend.Store
	// Identity signs every message published through the gateway (required).
	Identity *core.Identity
	// Token, when set, is required as "Authorization: Bearer TOKEN" on
	// publish requests. Reading stays open.
	Token string
	// MaxBodyBytes bounds a publish request's body (default
	// DefaultMaxBodyBytes); a larger body is answered 413.
	MaxBodyBytes int64
	// StreamBuffer is how many events a live SSE follower may lag behind
	// its topic's shared subscription before it is disconnected (default
	// DefaultStreamBuffer). A disconnected browser reconnects and resumes
	// from its Last-Event-ID when cursors are available.
	StreamBuffer int
	// WriteTimeout bounds each write to an SSE follower (default
	// DefaultWriteTimeout); a follower that does not read is disconnected.
	WriteTimeout time.Duration
	// Heartbeat is the interval of SSE comment lines that keep idle
	// connections open and detect dead ones (default DefaultHeartbeat).
	Heartbeat time.Duration
	// PollInterval is the background polling interval of subscriptions
	// (default DefaultPollInterval); stores that notify push at once.
	PollInterval time.Duration
	// Timeout bounds a publish or info request's work in the store
	// (default DefaultTimeout).
	Timeout time.Duration
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	// ClientOptions are applied to every core.Client the gateway creates
	// (for example a metrics event handler).
	ClientOptions []core.Option
	// Logger logs background errors (default: discard).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.StreamBuffer <= 0 {
		c.StreamBuffer = DefaultStreamBuffer
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
