package core

// Subscribe options: where a subscription starts, its buffers, its record
// and push.

import "time"

// DefaultSubscriptionTTL is how long a subscription record lives unless
// renewed.
const DefaultSubscriptionTTL = 10 * time.Minute

// DefaultBuffer is the capacity of a pushed subscription's Messages
// channel unless WithBuffer sets another. It is small because every
// subscription holds its buffer (8 bytes a slot) even when idle; push
// delivers from a goroutine of its own that waits when the channel is full,
// so a small buffer loses nothing (it only hands messages over in smaller
// steps; 4 catches up as fast as 16 did, see docs/benchmarks.md).
const DefaultBuffer = 4

// DefaultPollBuffer is the capacity of the Messages channel of a
// subscription made WithoutPush unless WithBuffer sets another: there Poll
// delivers in the caller's goroutine, which cannot receive while it polls,
// so the channel must hold what one Poll delivers.
const DefaultPollBuffer = 1024

// gapBuffer is the capacity of a subscription's Gaps channel (a Gap is 64
// bytes; the channel is made when Gaps is first called or the first gap is
// reported). A gap that finds it full is still counted in Stats and sent
// as an event.
const gapBuffer = 4

// SubscribeOption configures Subscribe.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	fromStart  bool
	ttl        time.Duration
	buffer     int // -1: the default
	push       bool
	noRecord   bool
	cursor     Cursor
	durable    string
	durableTTL time.Duration
}

// keptOptions are the subscribe flags a subscription still needs after
// Subscribe (kept apart: every subscription holds them; the TTL is
// Subscription.ttl).
type keptOptions struct {
	fromStart bool
	noRecord  bool
}

// FromStart delivers the topic's whole retained history, then new
// messages (a late joiner).
func FromStart() SubscribeOption { return func(o *subscribeOptions) { o.fromStart = true } }

// FromNow delivers only messages announced after Subscribe returns (the
// default).
func FromNow() SubscribeOption { return func(o *subscribeOptions) { o.fromStart = false } }

// WithSubscriptionTTL sets the subscription record's TTL (default
// DefaultSubscriptionTTL).
func WithSubscriptionTTL(d time.Duration) SubscribeOption {
	return func(o *subscribeOptions) { o.ttl = d }
}

// WithBuffer sets the capacity of the Messages channel (default
// DefaultBuffer with push, DefaultPollBuffer WithoutPush).
// Delivery blocks, never drops, when the channel is full.
func WithBuffer(n int) SubscribeOption { return func(o *subscribeOptions) { o.buffer = max(n, 0) } }

// WithoutPush disables push delivery even when the backend can notify;
// the subscription then only advances on Poll, PollAll or background
// polling.
func WithoutPush() SubscribeOption { return func(o *subscribeOptions) { o.push = false } }

// WithoutRecord subscribes without writing a subscription record (nor
// renewing or removing one): the subscriber only reads, so it works on a
// store opened read-only, but Info does not list it.
func WithoutRecord() SubscribeOption { return func(o *subscribeOptions) { o.noRecord = true } }
