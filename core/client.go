// Package core implements the sticky publish/subscribe protocol and its
// client API on top of the compare-and-put contract of package backend.
//
// A Client publishes signed messages to topics and subscribes to topics.
// Each publisher appends batches of messages to its own log (immutable,
// content-addressed segments plus a head record only it writes); a small,
// mergeable coordinator per topic registers publishers and, in topic order,
// announces how far each log reaches and fixes one order of all messages
// (see Ordering: publisher order spares independent publishers that shared
// write). See docs/protocol.md for the algorithms and the argument that no
// message is lost or duplicated.
package core

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stickypub/stickypub/backend"
)

// MaxTopicLen is the longest topic name in bytes.
const MaxTopicLen = 1024

// Client is a sticky pub/sub client bound to one store and one identity.
// It is safe for concurrent use.
type Client struct {
	// eng is the engine: the store and the state shared with the other
	// clients of a Hub (a client without a hub has its own).
	eng       *engine
	ownEngine bool
	id        *Identity
	pid       PublisherID
	opts      options

	ctx    context.Context // cancelled by Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	pubs   map[string]*topicPublisher
	subs   subSet
	poller *poller
	stats  counters
	pols   policies
}

type options struct {
	onEvent        func(Event)
	logger         *slog.Logger
	retention      Retention
	maxBatch       int
	verifyInterval time.Duration
	cacheBytes     int
	prefetchBytes  int
	foldWindow     int
	now            func() time.Time
	hub            *Hub
	headAudit      time.Duration
	durableFloor   DurableFloor
	noReclaim      bool
	noOpenSegs     bool          // withoutOpenSegments
	orphanGrace    time.Duration // WithOrphanGrace, if orphanGraceSet
	orphanGraceSet bool
	ordering       Ordering
	owners         map[string]ed25519.PublicKey // WithTopicOwner
	// engineOpts names the options given that configure the engine (the
	// state a Hub's clients share): with WithHub they belong to NewHub.
	engineOpts []string
}

// engineOpt records that an engine option was given.
func (o *options) engineOpt(name string) { o.engineOpts = append(o.engineOpts, name) }

// Option configures a Client.
type Option func(*options)

// WithEventHandler sets a callback for every Event. It is called
// synchronously from the client's goroutines and must not block.
func WithEventHandler(fn func(Event)) Option { return func(o *options) { o.onEvent = fn } }

// WithLogger sets the logger for background errors (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRetention sets the retention policy applied when this client folds
// a topic's coordinator.
func WithRetention(r Retention) Option {
	return func(o *options) { o.retention = r; o.engineOpt("WithRetention") }
}

// WithMaxBatch bounds how many queued messages one log write takes
// (default 1024).
func WithMaxBatch(n int) Option { return func(o *options) { o.maxBatch = max(n, 1) } }

// WithVerifyInterval sets how often a publisher re-checks that its
// announcements are still in the coordinator, on backends that are not
// linearizable (default 500ms).
func WithVerifyInterval(d time.Duration) Option { return func(o *options) { o.verifyInterval = d } }

// WithFoldWindow sets how many announcements the coordinator keeps before
// folding them into a snapshot (default: as many as fit half a value, at
// most 64).
func WithFoldWindow(n int) Option {
	return func(o *options) { o.foldWindow = max(n, 2); o.engineOpt("WithFoldWindow") }
}

// DefaultCacheBytes bounds the cache of immutable blobs (segments,
// snapshots, registries) an engine keeps unless WithCacheBytes sets
// another bound. A catch-up reads its segments through it, so it is, with
// the prefetch bound (DefaultPrefetchBytes), what bounds a catch-up's
// memory, whatever the length of the history.
const DefaultCacheBytes = 8 << 20

// DefaultPrefetchBytes bounds the segment bytes a subscription reads and
// verifies ahead of delivery (see WithPrefetchBytes).
const DefaultPrefetchBytes = 4 << 20

// WithCacheBytes bounds the cache of immutable blobs (default
// DefaultCacheBytes; each entry is counted with its bookkeeping).
func WithCacheBytes(n int) Option {
	return func(o *options) { o.cacheBytes = n; o.engineOpt("WithCacheBytes") }
}

// WithPrefetchBytes bounds the segment bytes one poll of a subscription
// reads and verifies ahead of delivery, in parallel (default
// DefaultPrefetchBytes): a catch-up holds at most about this much beyond the
// blob cache and the Messages channel. Less prefetches fewer segments at a
// time (a slower catch-up on a store with slow reads), never fewer
// messages.
func WithPrefetchBytes(n int) Option { return func(o *options) { o.prefetchBytes = max(n, 1) } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now; o.engineOpt("WithClock") }
}

func buildOptions(opts []Option) options {
	o := options{maxBatch: 1024, verifyInterval: 500 * time.Millisecond, cacheBytes: DefaultCacheBytes, prefetchBytes: DefaultPrefetchBytes, now: time.Now,
		logger: slog.New(slog.DiscardHandler), headAudit: defaultHeadAudit}
	for _, fn := range opts {
		fn(&o)
	}
	return o
}

// New returns a client that uses store with identity id. The client does
// not own the store: Close leaves it open.
func New(store backend.Store, id *Identity, opts ...Option) (*Client, error) {
	if store == nil || id == nil {
		return nil, errors.New("core: New needs a store and an identity")
	}
	o := buildOptions(opts)
	e, own := (*engine)(nil), false
	if o.hub != nil {
		if o.hub.e.store != store {
			return nil, errors.New("core: WithHub: the hub uses another store")
		}
		e = o.hub.e
		if len(o.engineOpts) > 0 {
			// The hub's engine options apply to all its clients (folds,
			// retention of heads, clock, cache, reclaiming).
			o.logger.Warn("stickypub: options of a client made WithHub are ignored; give them to NewHub",
				"options", strings.Join(o.engineOpts, ", "))
		}
		if o.ordering != OrderDefault && o.ordering != e.order {
			return nil, fmt.Errorf("%w: WithOrdering(%s) on a client of a hub in %s order (give the ordering to NewHub)",
				ErrOrderingMismatch, o.ordering, e.order)
		}
	} else {
		var err error
		if e, err = newEngine(store, o); err != nil {
			return nil, err
		}
		own = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		eng: e, ownEngine: own, id: id, pid: id.ID(), opts: o,
		ctx: ctx, cancel: cancel,
		pubs: map[string]*topicPublisher{},
	}, nil
}

// Identity returns the client's identity.
func (c *Client) Identity() *Identity { return c.id }

func checkTopic(topic string) error {
	if topic == "" || len(topic) > MaxTopicLen || !utf8.ValidString(topic) {
		return fmt.Errorf("%w: %s (want 1-%d bytes of UTF-8)", ErrInvalidTopic, QuoteInput(topic), MaxTopicLen)
	}
	return nil
}

// Close stops background polling, flushes queued publishes, unsubscribes
// every subscription (best effort, within ctx), closes subscription
// channels and waits for every goroutine of the client to end.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	pubs := make([]*topicPublisher, 0, len(c.pubs))
	for _, p := range c.pubs {
		pubs = append(pubs, p)
	}
	subs := c.subs.list()
	c.mu.Unlock()

	c.StopPolling()
	var errs []error
	for _, p := range pubs {
		errs = append(errs, p.close(ctx))
	}
	for _, s := range subs {
		errs = append(errs, c.unsubscribe(ctx, s, true))
	}
	c.cancel()
	c.wg.Wait()
	if c.ownEngine {
		c.eng.close()
	}
	return errors.Join(errs...)
}
